#!/usr/bin/env python3
"""Drills against the front door of a running site, as users and attackers do them.

Each prints one JSON object; the lab's verify (molecule/lab/verify_frontdoor.yml) asserts on
it, and docs/benchmarks.md quotes it.

  frontdoor.py dead-server   --url URL --ca CA --secrets DIR [--user alice]
      The user kills her own notebook server from its kernel and keeps asking for it, while
      another client polls /hub/health 10 times a second for 30 s: which instances answered.
  frontdoor.py proxy-restart --url URL --ca CA --secrets DIR --restart 'docker exec ...'
      With a kernel holding state, the hub's proxy unit restarts: seconds until the user's
      server answers through the front door again, and whether the kernel kept its state.
  frontdoor.py login-flood   --url URL [--ca CA] [--count 20] [--seconds 10]
      Wrong passwords for one user as fast as allowed, from where it runs (standard library
      only, so that it runs inside any lab container): statuses counted.
  frontdoor.py headers       --url URL --ca CA [--internal NAME ...]
      Response headers of the hub's pages: none may carry an internal address or one of
      the internal host names.
  frontdoor.py failover      --url URL --ca CA --secrets DIR --stop CMD --start CMD --servers CMD
      With the user's server running on the active instance (and a notebook saved), the
      active hub host dies (--stop) while a client polls production: the failed-request
      window; the user logs in again and starts a server: which servers of hers run in the
      cluster (--servers lists every server name, one a line) and whether the notebook is
      there. Then the host comes back (--start) and the user starts on it again.
  frontdoor.py try-spawn     --url URL --ca CA --secrets DIR [--user alice] [--keep] [--notebook P]
      The user logs in and asks for a server: started (then stopped again, or with --keep
      kept after stopping what ran before) or refused, with the message the hub gave her;
      with --notebook, the HTTP status of reading that notebook through the new server.

Where a server starts, --options JSON gives its user_options (the lab verify picks the Swarm
backend); without it the hub uses the user's last choices.

Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import http.cookiejar
import ipaddress
import json
import re
import shlex
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _options(args: argparse.Namespace) -> dict | None:
    """The server's user_options (--options JSON); None: the user's last choices."""
    if not args.options:
        return None
    try:
        return json.loads(args.options)
    except ValueError:  # a mapping Ansible handed over as Python's repr
        return ast.literal_eval(args.options)


def _user(args: argparse.Namespace, name: str):
    from hubclient import HubUser

    password = (Path(args.secrets) / f"ldap-user-{name}").read_text().strip()
    return HubUser(args.url, name, password, args.ca)


def dead_server(args: argparse.Namespace) -> dict:
    """A user's dead server must not move production to the other instance."""
    from bench import Poller

    user = _user(args, args.user)
    user.login()
    first = user.served_by()
    user.start_server(timeout=180, options=_options(args))
    poller = Poller(args.url, args.ca, 0.1, args.seconds + 30)
    poller.start()
    time.sleep(1.0)
    since = time.monotonic()
    # The kernel's parent is the notebook server: the user kills it as a crash would.
    with contextlib.suppress(Exception):  # the websocket dies with the server
        user.run_code("import os, signal; os.kill(os.getppid(), signal.SIGKILL)", timeout=10)
    statuses: dict[str, int] = {}
    while time.monotonic() - since < args.seconds:
        try:
            reply = user.session.get(
                user.url(f"/user/{args.user}/api/status"),
                verify=args.ca,
                timeout=10,
                allow_redirects=False,
            )
            key = str(reply.status_code)
        except Exception as err:
            key = type(err).__name__
        statuses[key] = statuses.get(key, 0) + 1
        time.sleep(0.25)
    poller.stop_event.set()
    poller.join()
    report = poller.report(since)
    try:
        user.stop_server(timeout=60)
    except Exception as err:
        report["stop_error"] = str(err)
    return {"user": args.user, "instance_before": first, "user_requests": statuses, **report}


def proxy_restart(args: argparse.Namespace) -> dict:
    """Routes come back after the proxy unit restarts; the kernel keeps its state."""
    user = _user(args, args.user)
    user.login()
    instance = user.served_by()
    user.start_server(timeout=180, options=_options(args))
    user.open_lab()
    reply = user.request("POST", f"/user/{args.user}/api/kernels", json={"name": "python3"})
    reply.raise_for_status()
    kernel = reply.json()["id"]
    before = user._execute(kernel, "x = 41; x", 60)
    subprocess.run(shlex.split(args.restart), check=True, capture_output=True, timeout=60)
    restarted = time.monotonic()
    back_after = None
    statuses: dict[str, int] = {}
    while time.monotonic() - restarted < args.seconds:
        try:
            # Her server's own answer, not a redirect through the hub (the proxy's default
            # target) that ends somewhere else.
            status = user.session.get(
                user.url(f"/user/{args.user}/api/status"),
                headers={"Accept": "application/json"},
                verify=args.ca,
                timeout=10,
                allow_redirects=False,
            ).status_code
        except Exception:
            status = 0
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 200:
            back_after = time.monotonic() - restarted
            break
        time.sleep(0.2)
    after = user._execute(kernel, "x + 1", 60) if back_after is not None else None
    # While the proxy restarted, NGINX saw the active hub refuse connections and sent hub
    # pages to the other instance for its fail_timeout: wait until production is back.
    production_back = _wait_for_instance(args, instance, 60)
    user.request("DELETE", f"/user/{args.user}/api/kernels/{kernel}")
    user.stop_server(timeout=60)
    return {
        "user": args.user,
        "instance": instance,
        "before": before,
        "after": after,
        "back_after_s": None if back_after is None else round(back_after, 2),
        "statuses": statuses,
        "production_back_after_s": production_back,
    }


def _wait_for_instance(args: argparse.Namespace, instance: str, seconds: float) -> float | None:
    """Seconds until the production URL answers from instance again (None: not within)."""
    import requests

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            reply = requests.get(args.url + "/hub/health", verify=args.ca, timeout=5)
            if reply.headers.get("X-JupyterHub-Instance") == instance:
                return round(time.monotonic() - started, 2)
        except requests.RequestException:
            pass
        time.sleep(0.5)
    return None


def login_flood(args: argparse.Namespace) -> dict:
    """Wrong passwords from one client address, standard library only."""
    context = (
        ssl.create_default_context(cafile=args.ca) if args.ca else ssl.create_default_context()
    )
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPCookieProcessor(jar),
        urllib.request.HTTPSHandler(context=context),
    )
    login = args.url.rstrip("/") + "/hub/login"
    with opener.open(login, timeout=10) as page:
        page.read()
    xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
    statuses: dict[str, int] = {}
    started = time.monotonic()
    gap = args.seconds / max(args.count, 1)
    for i in range(args.count):
        body = urllib.parse.urlencode(
            {"username": args.username, "password": f"wrong-{i}", "_xsrf": xsrf}
        ).encode()
        try:
            with opener.open(urllib.request.Request(login, data=body), timeout=10) as reply:
                status = reply.status
        except urllib.error.HTTPError as err:
            status = err.code
        except OSError as err:
            status = type(err).__name__
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        time.sleep(max(0.0, started + (i + 1) * gap - time.monotonic()))
    return {
        "sent": args.count,
        "seconds": round(time.monotonic() - started, 2),
        "statuses": statuses,
    }


_HEADER_TOKENS = re.compile(r"[\s,;=()<>\"'\[\]/]+")
# An IPv4 address anywhere in a token (user@10.0.0.1, upstream:10.0.0.1:8000).
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def internal_parts(value: str, names: frozenset[str] = frozenset()) -> list[str]:
    """The IPv4 or IPv6 addresses (with or without a port, IPv4 also inside a longer token)
    and the internal host names (a whole token, compared without case, with or without a
    port) that a header value carries."""
    found = []
    for token in _HEADER_TOKENS.split(value):
        host = token.rsplit(":", 1)[0] if token.count(":") == 1 else token
        if host.lower() in names or _is_address(host):
            found.append(token)
        else:
            found.extend(match for match in _IPV4.findall(token) if _is_address(match))
    return found


def headers(args: argparse.Namespace) -> dict:
    """Every response header of a few pages; those that carry an address or the name of an
    internal host are listed."""
    import requests

    names = frozenset(name.lower() for name in args.internal)
    leaks = []
    seen = {}
    for path in ("/hub/login", "/hub/health", "/hub/api/", "/user/nobody/", "/no-such-page"):
        reply = requests.get(
            args.url.rstrip("/") + path, verify=args.ca, timeout=10, allow_redirects=False
        )
        seen[path] = sorted(reply.headers)
        for name, value in reply.headers.items():
            if internal_parts(value, names):
                leaks.append({"path": path, "header": name, "value": value})
    return {"leaks": leaks, "headers": seen}


def _servers_of(command: str, name: str) -> list[str]:
    done = subprocess.run(shlex.split(command), check=True, capture_output=True, text=True)
    return sorted(line for line in done.stdout.split() if line.endswith(f"-{name}"))


def _notebook(user, path: str) -> int:
    return user.request("GET", f"/user/{user.name}/api/contents/{path}?content=0").status_code


def failover(args: argparse.Namespace) -> dict:
    """Unplanned failover: the window, one server per user, the notebook kept."""
    from bench import Poller

    user = _user(args, args.user)
    user.login()
    active = user.served_by()
    user.start_server(timeout=180, options=_options(args))
    saved = user.request(
        "PUT",
        f"/user/{args.user}/api/contents/failover-drill.ipynb",
        json={"type": "notebook", "content": NOTEBOOK},
    ).status_code
    before = _servers_of(args.servers, args.user)
    poller = Poller(args.url, args.ca, 0.1, 300)
    poller.start()
    time.sleep(1.0)
    since = time.monotonic()
    subprocess.run(shlex.split(args.stop), check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        ok and who != active for t, ok, who, _ in list(poller.samples) if t >= since
    ):
        time.sleep(0.2)
    time.sleep(2.0)
    poller.stop_event.set()
    poller.join()
    window = poller.report(since)
    # She comes back to the same URL: logged out (the other instance's cookie), logs in.
    again = _user(args, args.user)
    again.login()
    other = again.served_by()
    again.start_server(timeout=180, options=_options(args))
    during = _servers_of(args.servers, args.user)
    notebook = _notebook(again, "failover-drill.ipynb")
    # The failed host returns; production goes back to it; she starts there again.
    subprocess.run(shlex.split(args.start), check=True, capture_output=True, timeout=120)
    # Back means five answers from it in a row: while its hub starts, a request it does not
    # accept in time still goes to the other instance (and marks it failed for a while).
    deadline = time.monotonic() + 180
    in_a_row = 0
    while time.monotonic() < deadline and in_a_row < 5:
        try:
            reply = again.session.get(args.url + "/hub/health", verify=args.ca, timeout=5)
            from_active = reply.headers.get("X-JupyterHub-Instance") == active
            in_a_row = in_a_row + 1 if reply.status_code == 200 and from_active else 0
        except Exception:
            in_a_row = 0
        time.sleep(0.5)
    back = in_a_row >= 5
    # She logs in again; her start must reach the returned instance, not the other one
    # (where her server runs and a start would only answer "already running").
    deadline = time.monotonic() + 60
    while True:
        third = _user(args, args.user)
        third.login()
        third_instance = third.served_by()
        if third_instance == active or time.monotonic() > deadline:
            break
        time.sleep(3.0)
    third.start_server(timeout=180, options=_options(args))
    after = _servers_of(args.servers, args.user)
    notebook_after = _notebook(third, "failover-drill.ipynb")
    third.stop_server(timeout=60)
    return {
        "user": args.user,
        "active": active,
        "saved": saved,
        "servers_before": before,
        "window": window,
        "failover_instance": other,
        "servers_during": during,
        "notebook_during": notebook,
        "active_back": back,
        "login_after_return_on": third_instance,
        "servers_after_return": after,
        "notebook_after_return": notebook_after,
    }


def try_spawn(args: argparse.Namespace) -> dict:
    """Started or refused, and what the hub said."""
    from hubclient import HubError

    user = _user(args, args.user)
    user.login()
    instance = user.served_by()
    if args.keep:
        user.stop_server(timeout=60)  # whatever ran before, on any backend
    try:
        seconds = user.start_server(timeout=180, options=_options(args))
    except HubError as err:
        return {"user": args.user, "instance": instance, "started": False, "message": str(err)}
    result = {"user": args.user, "instance": instance, "started": True}
    result["spawn_s"] = round(seconds, 2)
    if args.notebook:
        result["notebook"] = _notebook(user, args.notebook)
    if not args.keep:
        user.stop_server(timeout=60)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    names = ("dead-server", "proxy-restart", "login-flood", "headers", "try-spawn", "failover")
    for name in names:
        p = sub.add_parser(name)
        p.add_argument("--url", required=True)
        p.add_argument("--ca", default=None)
    for name in ("dead-server", "proxy-restart", "try-spawn", "failover"):
        sub.choices[name].add_argument("--secrets", required=True)
        sub.choices[name].add_argument("--user", default="alice")
        sub.choices[name].add_argument(
            "--options", help="user_options as JSON (default: the user's last choices)"
        )
    sub.choices["try-spawn"].add_argument(
        "--keep", action="store_true", help="stop what ran before, keep the new server running"
    )
    sub.choices["try-spawn"].add_argument(
        "--notebook", help="path in her home: the status of reading it through her new server"
    )
    for option in ("--stop", "--start", "--servers"):
        sub.choices["failover"].add_argument(option, required=True)
    sub.choices["headers"].add_argument(
        "--internal", nargs="*", default=[], help="internal host names no header may carry"
    )
    sub.choices["dead-server"].add_argument("--seconds", type=float, default=30)
    sub.choices["proxy-restart"].add_argument("--restart", required=True)
    sub.choices["proxy-restart"].add_argument("--seconds", type=float, default=60)
    sub.choices["login-flood"].add_argument("--username", default="alice")
    sub.choices["login-flood"].add_argument("--count", type=int, default=20)
    sub.choices["login-flood"].add_argument("--seconds", type=float, default=10)
    sub.choices["login-flood"].add_argument("--insecure", action="store_true")
    args = parser.parse_args()
    if args.command != "login-flood" and args.ca is None:
        args.ca = True
    run = {
        "dead-server": dead_server,
        "proxy-restart": proxy_restart,
        "login-flood": login_flood,
        "headers": headers,
        "try-spawn": try_spawn,
        "failover": failover,
    }[args.command]
    print(json.dumps({args.command: run(args)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
