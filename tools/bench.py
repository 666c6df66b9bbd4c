#!/usr/bin/env python3
"""Benchmarks of the running lab, through the front door. Results go to stdout as JSON.

  bench.py spawn    --url URL --ca CA --secrets DIR [--user alice] [--count 20] [--options JSON]
  bench.py users    --secrets DIR --directory lab-directory [--count 60]
  bench.py burst    --url URL --ca CA --secrets DIR [--count 60] [--options JSON]
  bench.py failover --url URL --ca CA --stop 'docker stop lab-hub-a' \
      --start 'docker start lab-hub-a'
  bench.py switch   --url URL --ca CA --flip 'ansible-playbook playbooks/switch.yml -e ...'

users adds load users load001.. to the lab directory (members of jupyterhub-users, one
password in DIR/bench-load-password); burst logs them all in and starts their servers at
once, measuring login to ready for each.

failover and switch poll /hub/health every 100 ms (bounded: --seconds) while the command
runs, and count requests that failed and which instance answered (X-JupyterHub-Instance).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hubclient import HubUser


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return round(ordered[index], 3)


def summary(times: list[float]) -> dict:
    if not times:
        return {"count": 0}
    return {
        "count": len(times),
        "p50_s": percentile(times, 50),
        "p95_s": percentile(times, 95),
        "max_s": round(max(times), 3),
        "mean_s": round(statistics.mean(times), 3),
    }


def bench_spawn(args: argparse.Namespace) -> dict:
    password = (args.secrets / f"ldap-user-{args.user}").read_text().strip()
    user = HubUser(args.url, args.user, password, args.ca)
    user.login()
    options = json.loads(args.options) if args.options else None
    times = []
    for _ in range(args.count):
        times.append(user.start_server(timeout=300, options=options))
        user.stop_server()
    return {"spawns": summary(times)}


LOAD_USER_UID = 11000


def load_users(count: int) -> list[tuple[str, int]]:
    return [(f"load{i:03d}", LOAD_USER_UID + i) for i in range(1, count + 1)]


def bench_users(args: argparse.Namespace) -> dict:
    """Add the load users to the directory container (idempotent: existing ones are kept)."""
    secret = args.secrets / "bench-load-password"
    if not secret.exists():
        secret.write_text(
            subprocess.run(
                ["openssl", "rand", "-hex", "16"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        secret.chmod(0o600)
    password = secret.read_text().strip()
    suffix = args.suffix
    entries = []
    for name, uid in load_users(args.count):
        entries.append(
            f"dn: uid={name},ou=people,{suffix}\nobjectClass: inetOrgPerson\n"
            f"objectClass: posixAccount\nuid: {name}\ncn: Load {name}\nsn: {name}\n"
            f"uidNumber: {uid}\ngidNumber: 100\nhomeDirectory: /home/{name}\n"
            f"loginShell: /bin/bash\nuserPassword: {password}\n"
        )
    members = "".join(f"memberUid: {name}\n" for name, _ in load_users(args.count))
    group = (
        f"dn: cn=jupyterhub-users,ou=groups,{suffix}\nchangetype: modify\nadd: memberUid\n{members}"
    )
    # Root in the container over ldapi:/// with SASL EXTERNAL, which the ldap role's access
    # rules let manage the tree: no password on a command line (ps would show it).
    bind = ["-Q", "-Y", "EXTERNAL", "-H", "ldapi:///"]
    add = subprocess.run(
        ["docker", "exec", "-i", args.directory, "ldapadd", "-c", *bind],
        input="\n".join(entries),
        capture_output=True,
        text=True,
        check=False,
    )
    modify = subprocess.run(
        ["docker", "exec", "-i", args.directory, "ldapmodify", "-c", *bind],
        input=group,
        capture_output=True,
        text=True,
        check=False,
    )
    # 68: already exists, 20: value already in the group: a second run changes nothing.
    for step in (add, modify):
        if step.returncode not in (0, 20, 68):
            raise SystemExit(f"directory update failed: {step.stderr[-500:]}")
    return {"users": args.count, "first_uid": LOAD_USER_UID + 1}


def bench_burst(args: argparse.Namespace) -> dict:
    """All load users log in and start their servers at the same moment."""
    password = (args.secrets / "bench-load-password").read_text().strip()
    options = json.loads(args.options) if args.options else None
    users = [HubUser(args.url, name, password, args.ca) for name, _ in load_users(args.count)]
    times: dict[str, float] = {}
    errors: dict[str, str] = {}
    barrier = threading.Barrier(len(users))

    def one(user: HubUser) -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            user.login()
            user.start_server(timeout=args.timeout, options=options)
            times[user.name] = time.monotonic() - started
        except Exception as exc:
            errors[user.name] = str(exc)[:200]

    began = time.monotonic()
    threads = [threading.Thread(target=one, args=(u,), daemon=True) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.timeout + 60)
    all_ready = round(time.monotonic() - began, 3)
    for user in users:
        try:
            user.stop_server(timeout=120)
        except Exception as exc:
            errors.setdefault(user.name, f"stop: {exc}"[:200])
    return {
        "users": len(users),
        "ready": len(times),
        "failed": len(errors),
        "all_ready_after_s": all_ready if not errors else None,
        "login_to_ready": summary(list(times.values())),
        "errors": dict(list(errors.items())[:5]),
    }


class Poller(threading.Thread):
    """Polls the health endpoint every interval until stopped; bounded by a deadline."""

    def __init__(self, url: str, ca: str | bool, interval: float, seconds: float) -> None:
        super().__init__(daemon=True)
        self.url, self.ca, self.interval = url.rstrip("/") + "/hub/health", ca, interval
        self.deadline = time.monotonic() + seconds
        self.samples: list[tuple[float, bool, str, float]] = []
        # Why each failed request failed (status or exception), by its start time.
        self.reasons: dict[float, str] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            started = time.monotonic()
            try:
                reply = session.get(self.url, verify=self.ca, timeout=10)
                ok, who = reply.status_code == 200, reply.headers.get("X-JupyterHub-Instance", "?")
                if not ok:
                    self.reasons[started] = f"HTTP {reply.status_code} from {who}"
            except requests.RequestException as err:
                ok, who = False, "-"
                self.reasons[started] = f"{type(err).__name__}: {str(err)[:160]}"
            self.samples.append((started, ok, who, time.monotonic() - started))
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def report(self, since: float) -> dict:
        after = [s for s in self.samples if s[0] >= since]
        failed = [s for s in after if not s[1]]
        answered = {}
        for _, ok, who, _ in after:
            if ok:
                answered[who] = answered.get(who, 0) + 1
        window = (failed[-1][0] - failed[0][0] + failed[-1][3]) if failed else 0.0
        first = next((s[2] for s in after if s[1]), "")
        other = next((s for s in after if s[1] and s[2] != first), None)
        return {
            "other_instance_after_s": round(other[0] + other[3] - since, 3) if other else None,
            "requests": len(after),
            "failed": len(failed),
            "answered_by": answered,
            "failure_window_s": round(window, 3),
            "slowest_s": round(max((s[3] for s in after), default=0.0), 3),
            # The first failures: seconds after the command started, and why.
            "failures": [[round(s[0] - since, 3), self.reasons.get(s[0], "?")] for s in failed[:5]],
        }


def poll_around(args: argparse.Namespace, command: str) -> dict:
    poller = Poller(args.url, args.ca, 0.1, args.seconds)
    poller.start()
    time.sleep(1.0)
    since = time.monotonic()
    done = subprocess.run(shlex.split(command), check=False, capture_output=True, text=True)
    command_s = time.monotonic() - since
    if done.returncode != 0:
        poller.stop_event.set()
        poller.join()
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"{command!r} failed with exit code {done.returncode}:\n{tail}")
    time.sleep(args.settle)
    poller.stop_event.set()
    poller.join()
    return {**poller.report(since), "command_s": round(command_s, 1)}


def bench_failover(args: argparse.Namespace) -> dict:
    report = poll_around(args, args.stop)
    subprocess.run(shlex.split(args.start), check=True, capture_output=True)
    return report


def bench_switch(args: argparse.Namespace) -> dict:
    return poll_around(args, args.flip)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    users = sub.add_parser("users")
    users.add_argument("--secrets", type=Path, required=True)
    users.add_argument("--directory", default="lab-directory", help="directory container")
    users.add_argument("--suffix", default="dc=jhub,dc=example")
    users.add_argument("--count", type=int, default=60)
    for name in ("spawn", "failover", "switch", "burst"):
        p = sub.add_parser(name)
        p.add_argument("--url", required=True)
        p.add_argument("--ca", default=True)
        p.add_argument("--seconds", type=float, default=600, help="upper bound of polling")
        p.add_argument("--settle", type=float, default=10, help="polling after the command")
    sub.choices["spawn"].add_argument("--secrets", type=Path, required=True)
    sub.choices["spawn"].add_argument("--user", default="alice")
    sub.choices["spawn"].add_argument("--count", type=int, default=20)
    sub.choices["burst"].add_argument("--secrets", type=Path, required=True)
    sub.choices["burst"].add_argument("--count", type=int, default=60)
    sub.choices["burst"].add_argument("--timeout", type=float, default=300)
    for name in ("spawn", "burst"):
        sub.choices[name].add_argument("--options", help="user_options as JSON")
    sub.choices["failover"].add_argument("--stop", required=True)
    sub.choices["failover"].add_argument("--start", required=True)
    sub.choices["switch"].add_argument("--flip", required=True)
    args = parser.parse_args()
    bench = {
        "spawn": bench_spawn,
        "users": bench_users,
        "burst": bench_burst,
        "failover": bench_failover,
        "switch": bench_switch,
    }
    print(json.dumps({args.command: bench[args.command](args)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
