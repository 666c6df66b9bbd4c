#!/usr/bin/env python3
"""What one user's code can reach from her notebook: the lab verify's security step.

  attack.py --url URL --ca CA --secrets DIR --user alice --options JSON --targets JSON

The user logs in, starts a server (--options: its user_options, e.g. the Swarm or SLURM
backend) and runs Python in a kernel of it, as any user can. For each target (a JSON list
of {"name", "host", "port"} and optionally "source_port") the code opens a TCP connection
and reports what happened: "connected", "refused" (a reset or an ICMP rejection),
"timeout", "unreachable", or "bind-denied" when the source port cannot be had. Then it
posts settings of her spawner with her server's own token to the hub's route where batch
notebooks report their port (the hub must answer 400), and writes, reads and removes a file
in her home (her own work still runs). Prints one JSON object;
molecule/lab/verify_security.yml asserts on it.

Hosts are addresses: names of the site may not resolve inside a notebook container.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Runs in the user's kernel: standard library only; its value is one JSON text.
_PROBE = r"""
import errno, json, os, socket, time
def _try(target):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        if target.get("source_port"):
            try:
                s.bind(("0.0.0.0", target["source_port"]))
            except OSError as err:
                denied = err.errno in (errno.EACCES, errno.EPERM)
                return "bind-denied" if denied else "bind-" + str(err.errno)
        try:
            s.connect((target["host"], target["port"]))
            return "connected"
        except socket.timeout:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
        except OSError as err:
            if err.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM):
                return "unreachable"
            return "error-" + str(err.errno)
    finally:
        s.close()
_results = {t["name"]: _try(t) for t in TARGETS}
def _forge():
    # Her server's own token, to the route where batch notebooks report their port, with
    # settings of her spawner in the body: the hub must refuse all of it.
    import urllib.error, urllib.request
    body = json.dumps({"exclusive_servers": False, "maintenance_message": "", "port": 1})
    req = urllib.request.Request(
        os.environ["JUPYTERHUB_API_URL"].rstrip("/") + "/batchspawner", data=body.encode(),
        method="POST", headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"],
                                "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code
    except Exception as err:
        return repr(err)
_forged = _forge()
_path = os.path.join(os.path.expanduser("~"), ".attack-drill-" + str(os.getpid()))
with open(_path, "w") as f:
    f.write("still mine")
with open(_path) as f:
    _home = f.read() == "still mine"
os.remove(_path)
json.dumps({"results": _results, "forged_spawner_settings": _forged, "home_works": _home,
            "uid": os.getuid()})
"""


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:  # a value Ansible handed over as Python's repr
        return ast.literal_eval(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", default=True)
    parser.add_argument("--secrets", required=True)
    parser.add_argument("--user", default="alice")
    parser.add_argument("--options", required=True, help="user_options of her server, JSON")
    parser.add_argument("--targets", required=True, help="JSON list of {name, host, port}")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per connection")
    args = parser.parse_args()

    from hubclient import HubUser

    targets = _json(args.targets)
    password = (Path(args.secrets) / f"ldap-user-{args.user}").read_text().strip()
    user = HubUser(args.url, args.user, password, args.ca)
    user.login()
    user.stop_server(timeout=60)  # whatever ran before, on any backend
    user.start_server(timeout=180, options=_json(args.options))
    code = f"TIMEOUT = {args.timeout!r}\nTARGETS = {targets!r}\n{_PROBE}"
    try:
        out = user.run_code(code, timeout=60 + args.timeout * len(targets))
    finally:
        user.stop_server(timeout=60)
    report = json.loads(ast.literal_eval(out))  # the kernel shows the str's repr
    report.update({"user": args.user, "options": _json(args.options)})
    print(json.dumps({"attack": report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
