"""What users of hub instance a see, checked on the hub host by verify.yml.

    python3 verify_hub.py before    # logins, alice's server, a kernel, a notebook, proxy, metrics
    python3 verify_hub.py after     # after `systemctl restart jupyterhub`: alice's server lives on

Runs with the hub's virtualenv (requests and tornado come with JupyterHub). Passwords and
tokens come from the environment (JH_PASSWORD_<USER>, JH_METRICS_TOKEN, JH_PROXY_TOKEN) and
are never printed. Prints a JSON summary; exits 1 with the failed check on stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

PROXY = "http://127.0.0.1:8000"
PROXY_API = "http://127.0.0.1:8001"
STATE = Path("/root/jh-verify-state.json")
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "source": "1+1",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 4,
}


class CheckFailedError(Exception):
    """A check of what a user sees failed."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailedError(message)


def login(user: str, password: str) -> requests.Session | None:
    """Log in through the form; the session on success, None when the hub refuses."""
    session = requests.Session()
    page = session.get(f"{PROXY}/hub/login", timeout=30)
    expect(page.status_code == 200, f"GET /hub/login: HTTP {page.status_code}")
    form = {"username": user, "password": password, "_xsrf": session.cookies.get("_xsrf")}
    reply = session.post(f"{PROXY}/hub/login", data=form, allow_redirects=False, timeout=60)
    if reply.status_code == 302:
        return session
    expect(reply.status_code == 403, f"login of {user}: HTTP {reply.status_code}, not 302 or 403")
    return None


def new_token(session: requests.Session, user: str) -> str:
    """An API token of the logged-in user, asked for with the login cookie."""
    reply = session.post(
        f"{PROXY}/hub/api/users/{user}/tokens",
        json={"note": "molecule verify", "expires_in": 7200},
        headers={"X-XSRFToken": session.cookies.get("_xsrf")},
        timeout=30,
    )
    expect(reply.status_code in (200, 201), f"token of {user}: HTTP {reply.status_code}")
    return reply.json()["token"]


def api(method: str, path: str, token: str, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"token {token}"}
    return requests.request(method, f"{PROXY}{path}", headers=headers, timeout=60, **kwargs)


def stop_server(user: str, token: str, timeout: float = 60) -> None:
    """Stop a server left from an earlier run, so the start below is measured."""
    api("DELETE", f"/hub/api/users/{user}/server", token)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not api("GET", f"/hub/api/users/{user}", token).json().get("servers"):
            return
        time.sleep(0.5)
    raise CheckFailedError(f"the old server of {user} did not stop within {timeout} s")


def wait_ready(user: str, token: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = api("GET", f"/hub/api/users/{user}", token)
        if reply.status_code == 200:
            server = reply.json().get("servers", {}).get("", {})
            if server.get("ready"):
                return
        time.sleep(0.5)
    raise CheckFailedError(f"the server of {user} was not ready after {timeout} s")


async def run_code(kernel_url: str, token: str, code: str, timeout: float = 60) -> str:
    """Execute code on a kernel over its websocket; the text/plain of the result."""
    url = kernel_url.replace("http://", "ws://") + f"/channels?session_id={uuid.uuid4().hex}"
    connection = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {token}"}, request_timeout=timeout)
    )
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "username": "verify",
        "session": uuid.uuid4().hex,
        "msg_type": "execute_request",
        "version": "5.3",
    }
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}}
    request = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    await connection.write_message(json.dumps({**request, "channel": "shell", "buffers": []}))
    try:
        while True:
            raw = await asyncio.wait_for(connection.read_message(), timeout)
            expect(raw is not None, "the kernel websocket closed before the result came")
            if isinstance(raw, bytes):
                continue
            message = json.loads(raw)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message.get("msg_type") or message["header"]["msg_type"]
            if kind == "execute_result":
                return message["content"]["data"]["text/plain"]
            expect(kind != "error", f"the kernel answered with an error: {message['content']}")
    finally:
        connection.close()


def port_open(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(3)
        return probe.connect_ex((address, port)) == 0


def before() -> dict:
    summary: dict = {}
    page = requests.get(f"{PROXY}/hub/login", timeout=30)
    expect("JupyterHub instance a" in page.text, "the login page does not name instance a")
    expect(page.headers.get("X-JupyterHub-Instance") == "a", "no X-JupyterHub-Instance: a header")

    expect(
        login("alice", os.environ["JH_PASSWORD_ALICE"] + "-wrong") is None,
        "alice logged in with a wrong password",
    )
    expect(
        login("dave", os.environ["JH_PASSWORD_DAVE"]) is None,
        "dave, who is in no allowed group, logged in",
    )
    expect(login("nobody", "no-such-user") is None, "an unknown user logged in")

    started = time.monotonic()
    session = login("alice", os.environ["JH_PASSWORD_ALICE"])
    expect(session is not None, "alice (group jupyterhub-users) could not log in")
    token = new_token(session, "alice")
    logged_in = time.monotonic() - started
    stop_server("alice", token)
    spawn = time.monotonic()
    reply = api("POST", "/hub/api/users/alice/server", token)
    expect(reply.status_code in (201, 202), f"starting alice's server: HTTP {reply.status_code}")
    wait_ready("alice", token)
    summary["spawn_s"] = round(time.monotonic() - spawn, 1)
    summary["login_to_ready_s"] = round(logged_in + summary["spawn_s"], 1)
    user = api("GET", "/hub/api/user", token).json()
    expect(user["name"] == "alice" and not user["admin"], f"alice's model: admin={user['admin']}")

    reply = api("POST", "/user/alice/api/kernels", token, json={"name": "python3"})
    expect(reply.status_code == 201, f"starting a kernel: HTTP {reply.status_code}")
    kernel = reply.json()["id"]
    result = asyncio.run(run_code(f"{PROXY}/user/alice/api/kernels/{kernel}", token, "1+1"))
    expect(result == "2", f"1+1 gave {result!r}")
    summary["kernel_1_plus_1"] = result

    reply = api(
        "PUT",
        "/user/alice/api/contents/test.ipynb",
        token,
        json={"type": "notebook", "format": "json", "content": NOTEBOOK},
    )
    expect(reply.status_code in (200, 201), f"saving test.ipynb: HTTP {reply.status_code}")

    carol = login("carol", os.environ["JH_PASSWORD_CAROL"])
    expect(carol is not None, "carol (group jupyterhub-admins) could not log in")
    carol_token = new_token(carol, "carol")
    expect(api("GET", "/hub/api/user", carol_token).json()["admin"], "carol is not an admin")
    bob = login("bob", os.environ["JH_PASSWORD_BOB"])
    expect(bob is not None, "bob (group jupyterhub-users) could not log in")
    services = api("GET", "/hub/api/services", carol_token).json()
    culler = services.get("idle-culler", {})
    expect("idle-culler" in culler.get("roles", []), f"idle-culler service: {culler}")
    expect(culler.get("pid"), "the idle culler does not run")
    summary["services"] = sorted(services)

    expect(
        requests.get(f"{PROXY_API}/api/routes", timeout=10).status_code == 403,
        "the proxy API answered without a token",
    )
    routes = requests.get(
        f"{PROXY_API}/api/routes",
        timeout=10,
        headers={"Authorization": f"token {os.environ['JH_PROXY_TOKEN']}"},
    )
    expect(
        routes.status_code == 200 and "/user/alice" in routes.json(),
        f"the proxy API with its token: HTTP {routes.status_code}",
    )
    address = socket.gethostbyname(socket.gethostname())
    expect(port_open(address, 8000), f"the proxy does not serve users on {address}:8000")
    expect(not port_open(address, 8001), f"the proxy API is reachable on {address}:8001")
    expect(not port_open(address, 8081), f"the hub API is reachable on {address}:8081")

    metrics = requests.get(f"{PROXY}/hub/metrics", timeout=30)
    expect(metrics.status_code == 403, f"/hub/metrics without a token: HTTP {metrics.status_code}")
    metrics = api("GET", "/hub/metrics", os.environ["JH_METRICS_TOKEN"])
    expect(
        metrics.status_code == 200 and "jupyterhub_" in metrics.text,
        f"/hub/metrics with the monitoring token: HTTP {metrics.status_code}",
    )
    expect(
        api("GET", "/hub/api/users", os.environ["JH_METRICS_TOKEN"]).status_code == 403,
        "the monitoring token can list users",
    )

    STATE.write_text(json.dumps({"token": token, "kernel": kernel}))
    STATE.chmod(0o600)
    return summary


def after() -> dict:
    state = json.loads(STATE.read_text())
    token, kernel = state["token"], state["kernel"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{PROXY}/hub/health", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(1)
    wait_ready("alice", token, timeout=120)
    kernels = api("GET", "/user/alice/api/kernels", token)
    expect(kernels.status_code == 200, f"alice's kernels after restart: HTTP {kernels.status_code}")
    expect(kernel in [k["id"] for k in kernels.json()], "alice's server was restarted with the hub")
    notebook = api("GET", "/user/alice/api/contents/test.ipynb", token)
    expect(notebook.status_code == 200, f"test.ipynb after restart: HTTP {notebook.status_code}")
    expect(notebook.json()["content"]["cells"][0]["source"] == "1+1", "test.ipynb lost its cell")
    result = asyncio.run(run_code(f"{PROXY}/user/alice/api/kernels/{kernel}", token, "1+1"))
    expect(result == "2", f"1+1 after the restart gave {result!r}")
    STATE.unlink()
    return {"kernel_survived_restart": True, "notebook_survived_restart": True}


def main(argv: list[str]) -> int:
    phases = {"before": before, "after": after}
    if len(argv) != 2 or argv[1] not in phases:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(json.dumps(phases[argv[1]](), sort_keys=True))
    except CheckFailedError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
