"""Drive the hub's SLURM backend (roles/jupyterhub/files/jhub_site/slurm.py) against the real
cluster of this scenario, on a SLURM host, with the notebook environment's Python (which has
jupyterhub and batchspawner):

  python spawner_check.py DIR USER CASE

DIR holds jhub_site/. CASE "drained": a start must fail with SLURM's reason (the node is
drained by the verifier); "start": a start must return the node the job runs on, then stop;
"reservation": what the form would offer USER. Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, sys.argv[1])

from jhub_site.slurm import SiteSlurmSpawner
from tornado import web
from traitlets.config import Config


def make(user: str) -> tuple[SiteSlurmSpawner, SimpleNamespace]:
    cfg = Config()
    cfg.SiteSlurmSpawner.job_name = "jupyter-t-{username}"
    # The verifier runs as root on the node: runuser instead of the hub's sudo rule.
    cfg.SiteSlurmSpawner.exec_prefix = "runuser -u {username} --"
    cfg.SiteSlurmSpawner.startup_poll_interval = 0.5
    # No hub answers here: the job only sleeps, and the port is reported below.
    cfg.SiteSlurmSpawner.batchspawner_singleuser_cmd = "/usr/bin/env"
    cfg.SiteSlurmSpawner.cmd = ["sleep", "300"]
    hub = SimpleNamespace(
        api_url="http://127.0.0.1:8081/hub/api", public_host="", base_url="/hub/", url="/hub/"
    )
    account = SimpleNamespace(name=user, url=f"/user/{user}/", groups=[], spawners={})
    orm = SimpleNamespace(user_options={}, server=None, state=None, name="")
    spawner = SiteSlurmSpawner(
        user=account,
        orm_spawner=orm,
        hub=hub,
        config=cfg,
        user_options={"partition": "jhub", "runtime": 10},
    )
    wrapper = SimpleNamespace(child_spawner=spawner, port=0)
    account.spawners[""] = wrapper
    return spawner, wrapper


async def drained(user: str) -> dict:
    spawner, _ = make(user)
    started = time.monotonic()
    try:
        await asyncio.wait_for(spawner.start(), 90)
    except web.HTTPError as error:
        return {"error": str(error), "seconds": round(time.monotonic() - started, 1)}
    await spawner.stop(now=True)
    return {"error": None, "seconds": round(time.monotonic() - started, 1)}


async def start(user: str) -> dict:
    spawner, wrapper = make(user)
    task = asyncio.ensure_future(spawner.start())
    # What batchspawner's API handler does when the server reports its port.
    for _ in range(120):
        if spawner.state_isrunning():
            wrapper.port = 48123
            break
        await asyncio.sleep(0.5)
    host, port = await asyncio.wait_for(task, 60)
    job = spawner.job_id
    await spawner.stop()
    return {"host": host, "port": port, "job": job, "polled_after_stop": await spawner.poll()}


async def reservation(user: str) -> dict:
    spawner, _ = make(user)
    cluster = await spawner.read_cluster()
    groups = spawner.user_groups()
    offered = spawner.entitled(cluster, groups)
    return {
        "offered": [r.name for r in offered],
        "minutes_left": {r.name: r.minutes_left(cluster.now) for r in offered},
        "partitions": [p.name for p in spawner.usable(cluster, groups)],
    }


def main() -> int:
    user, case = sys.argv[2], sys.argv[3]
    cases = {"drained": drained, "start": start, "reservation": reservation}
    print(json.dumps(asyncio.run(cases[case](user))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
