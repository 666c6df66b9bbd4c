#!/usr/bin/env python3
"""Walk through the service as users do, through the front door, and report what happened.

  userflow.py --url https://localhost:8443 --ca site-ca.pem --secrets DIR \
      --user alice [--refused dave]

For each --user: log in with the password from DIR/ldap-user-<name>, start the server,
run 1+1 in a kernel over the websocket (expects 2), save a notebook, stop the server.
For each --refused: the login must be refused. Prints one JSON line; exits 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hubclient import HubError, HubUser

NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def password(secrets: Path, name: str) -> str:
    return (secrets / f"ldap-user-{name}").read_text().strip()


def walk(args: argparse.Namespace, name: str) -> dict:
    user = HubUser(args.url, name, password(args.secrets, name), args.ca)
    t0 = time.monotonic()
    user.login()
    t_login = time.monotonic() - t0
    t_spawn = user.start_server()
    result = user.run_code("1+1")
    if result != "2":
        raise HubError(f"1+1 gave {result!r}")
    saved = user.request(
        "PUT",
        f"/user/{name}/api/contents/userflow.ipynb",
        json={"type": "notebook", "content": NOTEBOOK},
    )
    if saved.status_code not in (200, 201):
        raise HubError(f"saving a notebook: HTTP {saved.status_code}")
    if not args.keep_running:
        user.stop_server()
    return {
        "user": name,
        "login_s": round(t_login, 3),
        "spawn_s": round(t_spawn, 3),
        "result": result,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", default=True)
    parser.add_argument("--secrets", type=Path, required=True)
    parser.add_argument("--user", action="append", default=[])
    parser.add_argument("--refused", action="append", default=[])
    parser.add_argument("--keep-running", action="store_true")
    args = parser.parse_args()
    report: dict = {"users": [], "refused": [], "errors": []}
    for name in args.user:
        try:
            report["users"].append(walk(args, name))
        except (HubError, OSError, ValueError) as error:
            report["errors"].append(f"{name}: {error}")
    for name in args.refused:
        try:
            HubUser(args.url, name, password(args.secrets, name), args.ca).login()
            report["errors"].append(f"{name}: login was accepted but must be refused")
        except HubError:
            report["refused"].append(name)
    print(json.dumps(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
