#!/usr/bin/env python3
"""Start or stop a notebook server with the hub's own SiteSwarmSpawner, as the hub does it,
against a real swarm: the spawner, its TLS client and the swarm are real; only the hub
around it is a stand-in (its API is not needed until a user opens the server).

  spawn_probe.py --docker-url tcp://10.0.0.2:2376 --tls-dir DIR --user alice:10001:10001 \
      --image minimal=jhub-notebook/minimal:latest [--mem-limit 4G] [--prefix jupyter-t-] \
      [--group-kernels belle2=/shared/kernels/belle2 --groups belle2] start|stop

The hub host knows users through NSS; the controller running this probe does not, so the
user's UID and GID come from --user. Prints one JSON line: the service, the node the task
runs on and the address and port the hub would connect to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from traitlets.config import Config


def load_spawner_module(repo: Path):
    sys.path.insert(0, str(repo / "roles/jupyterhub/files"))
    from jhub_site import swarm

    return swarm


def make_spawner(args: argparse.Namespace, swarm):
    name, uid, gid = args.user.split(":")
    groups = [g for g in args.groups.split(",") if g]

    # What NSS on a hub host answers for this user.
    swarm.pwd = SimpleNamespace(
        getpwnam=lambda n: (
            SimpleNamespace(pw_uid=int(uid), pw_gid=int(gid))
            if n == name
            else (_ for _ in ()).throw(KeyError(n))
        )
    )
    gids = {int(gid): name, **{30000 + i: g for i, g in enumerate(groups)}}
    swarm.os = SimpleNamespace(getgrouplist=lambda n, g: list(gids), pathsep=":")
    swarm.grp = SimpleNamespace(getgrgid=lambda g: SimpleNamespace(gr_name=gids[g]))

    key, image = args.image.split("=", 1)
    cfg = Config()
    cfg.SiteSwarmSpawner.images = {key: {"image": image, "description": "probe"}}
    cfg.SiteSwarmSpawner.name_template = args.prefix + "{username}"
    cfg.SiteSwarmSpawner.mem_limit = args.mem_limit
    cfg.SiteSwarmSpawner.cpu_limit = 1.0
    cfg.SiteSwarmSpawner.constraints = ["node.role == worker"]
    cfg.SiteSwarmSpawner.network_name = "jhub-notebooks"
    cfg.SiteSwarmSpawner.group_kernel_paths = dict(
        item.split("=", 1) for item in args.group_kernels if item
    )
    cfg.SiteSwarmSpawner.client_kwargs = {"base_url": args.docker_url}
    cfg.SiteSwarmSpawner.tls_config = {
        "ca_cert": f"{args.tls_dir}/ca.pem",
        "client_cert": [f"{args.tls_dir}/cert.pem", f"{args.tls_dir}/key.pem"],
        "verify": True,
    }
    cfg.SiteSwarmSpawner.cmd = ["jupyterhub-singleuser"]
    user = SimpleNamespace(name=name, escaped_name=name, url=f"/user/{name}/", groups=[])
    hub = SimpleNamespace(api_url=args.hub_api, public_host="", base_url="/hub/", url="")
    spawner = swarm.SiteSwarmSpawner(user=user, hub=hub, config=cfg, user_options={"image": key})
    spawner.api_token = "probe-token-not-a-secret"
    # The server's URL prefix, which the hub's database record would give.
    spawner._server = SimpleNamespace(base_url=f"/user/{name}/")
    return spawner


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--docker-url", required=True)
    parser.add_argument("--tls-dir", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--mem-limit", default="4G")
    parser.add_argument("--prefix", default="jupyter-t-")
    parser.add_argument("--hub-api", default="http://127.0.0.1:8081/hub/api/")
    parser.add_argument("--groups", default="")
    parser.add_argument("--group-kernels", action="append", default=[])
    parser.add_argument("action", choices=["start", "stop"])
    args = parser.parse_args()
    spawner = make_spawner(args, load_spawner_module(args.repo))
    if args.action == "stop":
        spawner.object_id = spawner.object_name
        await spawner.stop()
        print(json.dumps({"service": spawner.object_name, "stopped": True}))
        return 0
    ip, port = await spawner.start()
    task = await spawner.get_task()
    node = await spawner.docker("inspect_node", task["NodeID"])
    service = await spawner.get_object()
    print(
        json.dumps(
            {
                "service": spawner.object_name,
                "ip": ip,
                "port": port,
                "node": node["Description"]["Hostname"],
                "container": task["Status"]["ContainerStatus"]["ContainerID"],
                "endpoint_mode": service["Spec"]["EndpointSpec"]["Mode"],
                "env": spawner.get_env().get("JUPYTER_PATH", ""),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
