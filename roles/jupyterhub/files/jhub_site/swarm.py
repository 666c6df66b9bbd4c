"""Notebook servers as Docker Swarm services (dockerspawner's SwarmSpawner, for the site).

``SiteSwarmSpawner`` runs each user's server as a one-task service ``<prefix><user>`` with

- an image the user picks among the images the site lists (``images``), refused otherwise;
- the memory and CPU limits of the site (``mem_limit``, ``cpu_limit``) and its placement
  constraints, plus those of the image (e.g. ``node.labels.gpu == true``);
- the user's home ``<home_root>/<user>`` of the node mounted at the same path, and the
  shared area, both from the site's NFS mounts on the nodes;
- the user's own UID, primary GID and groups from the directory (looked up on the hub host
  through NSS), no capabilities, and ``JUPYTER_PATH`` extended by the kernel directories of
  the user's groups (``group_kernel_paths``).

Networking works with and without IPVS: the notebook port is published in ``host`` mode on
the node the task landed on, the service uses endpoint mode ``dnsrr`` (no virtual IP), and
the hub connects to that node's address and the published port, both read from the task.
No service VIP or ingress mesh is involved, so a kernel without IPVS (the lab) behaves like a
production cluster.

The user's services of the other hub instances (``<other prefix><user>``) are found by exact
name and stopped by removing the service: the swarm stops its container gracefully (SIGTERM,
then SIGKILL after the service's stop grace period, 10 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import html
import os
import pwd
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
from docker.types import Mount, RestartPolicy
from docker.utils import kwargs_from_env
from dockerspawner import SwarmSpawner
from traitlets import Dict, Float, Int, List, Unicode, default

from jhub_site.exclusive import InstanceServers, OtherServer

# Task states on the way to "running"; anything else (failed, rejected, shutdown, ...) ends
# the start with the task's error.
_PENDING_STATES = frozenset(
    {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)
# Task states of a container that may still run (or is about to).
_LIVE_STATES = _PENDING_STATES | {"running"}


class SiteSwarmSpawner(InstanceServers, SwarmSpawner):
    """A notebook server as a Swarm service, with the site's images, limits and storage."""

    images = Dict(
        config=True,
        help="""Images users may choose, by key: {"scipy": {"image": "jhub-notebook/scipy:latest",
        "description": "...", "constraints": ["node.labels.gpu == true"]}}.""",
    )
    default_image = Unicode(
        "", config=True, help="Key of the image preselected in the form (first key if empty)."
    )
    constraints = List(
        Unicode(),
        config=True,
        help="Placement constraints of every notebook service, e.g. ['node.role == worker'].",
    )
    home_root = Unicode(
        "/home", config=True, help="Parent of the users' home directories on the nodes."
    )
    shared_dir = Unicode(
        "/shared",
        config=True,
        help="Shared area on the nodes, mounted at the same path; empty to mount none.",
    )
    group_kernel_paths = Dict(
        Unicode(),
        config=True,
        help="""Group name -> directory added to JUPYTER_PATH for the group's members, e.g.
        {"belle2": "/shared/kernels/belle2"} (kernels in <dir>/kernels/<name>/kernel.json).""",
    )
    min_uid = Int(
        1000,
        config=True,
        help="Lowest UID a notebook may run as: system accounts and root are refused.",
    )
    poll_interval = Float(0.25, config=True, help="Seconds between two looks at a starting task.")
    docker_threads = Int(
        8, config=True, help="Threads for Docker API calls, shared by all users' spawners."
    )

    _executor: ThreadPoolExecutor | None = None
    _client = None

    # --- defaults that make the spawner work without a service VIP ---------------------------

    @default("use_internal_ip")
    def _default_use_internal_ip(self) -> bool:
        return False

    @default("extra_endpoint_spec")
    def _default_endpoint_spec(self) -> dict:
        # Published on the node the task runs on (no ingress mesh, no IPVS); dnsrr: no VIP.
        return {"mode": "dnsrr", "ports": {None: (self.port, "tcp", "host")}}

    @default("extra_task_spec")
    def _default_task_spec(self) -> dict:
        # A notebook server that dies stays dead: the hub notices and the user starts a new
        # one. A restarted task would come back on another port the proxy does not know.
        return {"restart_policy": RestartPolicy(condition="none")}

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        # Named, so that a start needs no look at the image on the manager.
        return ["jupyterhub-singleuser"]

    @default("allowed_images")
    def _default_allowed_images(self) -> dict:
        return {key: spec["image"] for key, spec in self.images.items()}

    @property
    def executor(self) -> ThreadPoolExecutor:
        cls = self.__class__
        if cls._executor is None:
            cls._executor = ThreadPoolExecutor(self.docker_threads)
        return cls._executor

    @property
    def client(self) -> Any:
        """One Docker API client for all users (as upstream), reaching the manager directly."""
        cls = self.__class__
        if cls._client is None:
            kwargs: dict[str, Any] = {"version": "auto"}
            if self.tls_config:
                kwargs["tls"] = docker.tls.TLSConfig(**self.tls_config)
            kwargs.update(kwargs_from_env())
            kwargs.update(self.client_kwargs)
            cls._client = _DirectAPIClient(**kwargs)
        return cls._client

    # --- the form and the options -------------------------------------------------------------

    def _default_image_key(self) -> str:
        if self.default_image in self.images:
            return self.default_image
        return next(iter(self.images), "")

    async def site_form(self) -> str:
        last = (self.user_options or {}).get("image")
        picked = last if last in self.images else self._default_image_key()
        options = []
        for key, spec in self.images.items():
            text = spec.get("description") or spec["image"]
            selected = " selected" if key == picked else ""
            options.append(
                f'<option value="{html.escape(key)}"{selected}>'
                f"{html.escape(key)}: {html.escape(text)}</option>"
            )
        limits = []
        if self.mem_limit:
            limits.append(f"memory {_human_bytes(self.mem_limit)}")
        if self.cpu_limit:
            limits.append(f"{self.cpu_limit:g} CPUs")
        note = (
            f'<p class="help-block">Limits of every server: {html.escape(", ".join(limits))}.</p>'
            if limits
            else ""
        )
        return (
            '<div class="form-group">'
            '<label for="swarm_image">Image</label>'
            '<select class="form-control" id="swarm_image" name="swarm_image">'
            + "".join(options)
            + "</select>"
            + note
            + "</div>"
        )

    def site_options(self, formdata: dict[str, list[str]]) -> dict:
        values = formdata.get("swarm_image") or [self._default_image_key()]
        return {"image": self._check_image(values[0])}

    def _check_image(self, key: object) -> str:
        if not isinstance(key, str) or key not in self.images:
            offered = ", ".join(self.images) or "none"
            shown = key if isinstance(key, str) else type(key).__name__
            raise ValueError(
                f"swarm_image: unknown image {shown[:40]!r}; this site offers {offered}."
            )
        return key

    def checked_options(self, options: dict | None) -> dict:
        """The user's options, checked again: the REST API accepts them without the form."""
        options = dict(options or {})
        unknown = sorted(set(options) - {"image"})
        if unknown:
            raise ValueError(
                f"Unknown options for a Swarm server: {', '.join(map(str, unknown))[:80]}; "
                "only swarm_image (image) may be chosen."
            )
        return {"image": self._check_image(options.get("image", self._default_image_key()))}

    # --- who the server runs as ----------------------------------------------------------------

    def _account(self) -> tuple[int, int, list[int], list[str]]:
        """UID, GID, supplementary GIDs and group names of the user, from NSS on the hub host."""
        name = self.user.name
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ValueError(
                f"{name} is not known to this hub host's directory (NSS): cannot choose the "
                "UID the server runs as."
            ) from None
        if entry.pw_uid < self.min_uid:
            raise ValueError(
                f"{name} has UID {entry.pw_uid}, below {self.min_uid}: servers never run as "
                "root or a system account."
            )
        gids = sorted(set(os.getgrouplist(name, entry.pw_gid)) - {entry.pw_gid})
        names = []
        for gid in [entry.pw_gid, *gids]:
            try:
                names.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                continue
        return entry.pw_uid, entry.pw_gid, gids, names

    def home_dir(self) -> str:
        return f"{self.home_root.rstrip('/')}/{self.user.name}"

    def kernel_paths(self, group_names: list[str]) -> list[str]:
        """JUPYTER_PATH entries of the user's groups (directory groups and hub groups)."""
        hub_groups = [getattr(g, "name", g) for g in (getattr(self.user, "groups", None) or [])]
        member_of = set(group_names) | {str(g) for g in hub_groups}
        return [
            path for group, path in sorted(self.group_kernel_paths.items()) if group in member_of
        ]

    @property
    def mounts(self) -> list[Mount]:
        mounts = [Mount(target=self.home_dir(), source=self.home_dir(), type="bind")]
        if self.shared_dir:
            mounts.append(Mount(target=self.shared_dir, source=self.shared_dir, type="bind"))
        return mounts

    def get_env(self) -> dict:
        env = super().get_env()
        home = self.home_dir()
        env.update({"HOME": home, "USER": self.user.name, "LOGNAME": self.user.name})
        paths = getattr(self, "_site_kernel_paths", [])
        if paths:
            env["JUPYTER_PATH"] = os.pathsep.join(paths)
        return env

    # --- starting --------------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        options = self.checked_options(self.user_options)
        self.user_options = options
        spec = self.images[options["image"]]
        uid, gid, gids, group_names = self._account()
        self._site_kernel_paths = self.kernel_paths(group_names)
        self.extra_container_spec = {
            **self.extra_container_spec,
            "user": f"{uid}:{gid}",
            "groups": [str(g) for g in gids],
            "workdir": self.home_dir(),
            "cap_drop": ["ALL"],
            "init": True,
            # Docker lets every container bind ports below 1024 (it sets 0 here): with the
            # host's default, her code cannot claim a privileged source port, which NFS
            # servers take as proof of a trusted client.
            "sysctls": {"net.ipv4.ip_unprivileged_port_start": "1024"},
        }
        self.extra_placement_spec = {
            **self.extra_placement_spec,
            "constraints": [*self.constraints, *spec.get("constraints", [])],
        }
        return await super().start()

    async def start_object(self) -> None:
        """Wait until the task runs; fail at once with the swarm's reason otherwise."""
        while True:
            task = await self.get_task()
            if not task:
                raise RuntimeError(f"Service {self.service_name} has no task")
            status = task["Status"]
            state = status["State"].lower()
            if state == "running":
                return
            if state not in _PENDING_STATES:
                reason = status.get("Err") or status.get("Message") or state
                raise RuntimeError(f"Server {self.service_name} did not start: {reason}")
            await asyncio.sleep(self.poll_interval)

    async def get_ip_and_port(self) -> tuple[str, int]:
        """The address of the node the task landed on and the port published there."""
        task = await self.get_task()
        if not task:
            raise RuntimeError(f"Service {self.service_name} has no task")
        node = await self.docker("inspect_node", task["NodeID"])
        return node_address(node), published_port(task, self.port)

    # --- the user's services of the other hub instances ----------------------------------------

    def own_server_name(self) -> str:
        return self.object_name

    async def find_other_servers(self) -> list[OtherServer]:
        found = []
        for instance, name in self.other_instance_names().items():
            # Docker's name filter matches prefixes (jupyter-a-alice2 for jupyter-a-alice).
            services = await self.docker("services", filters={"name": name})
            for service in services:
                if (service.get("Spec") or {}).get("Name") != name:
                    continue
                tasks = await self.docker("tasks", filters={"service": service["ID"]})
                state = service_state(service["ID"], tasks)
                if state is None:
                    continue  # its container ended; nothing of it runs
                found.append(
                    OtherServer(
                        instance=instance,
                        name=name,
                        kind="Swarm service",
                        ident=service["ID"],
                        detail=state,
                        handles=tuple(sorted(live_tasks(service["ID"], tasks))),
                    )
                )
        return found

    async def stop_other_server(self, server: OtherServer) -> None:
        self.log.info(
            "Removing Swarm service %s (%s) of %s, a server of instance %s",
            server.name,
            server.ident[:12],
            self.user.name,
            server.instance,
        )
        with contextlib.suppress(docker.errors.NotFound):  # removed already
            await self.docker("remove_service", server.ident)

    async def other_server_gone(self, server: OtherServer) -> bool:
        """Whether the service is removed and its containers have stopped: the service
        disappears at once, its tasks stay listed (by ID) until their containers ended."""
        services = await self.docker("services", filters={"id": server.ident})
        if any(service.get("ID") == server.ident for service in services):
            return False
        for task_id in server.handles:
            tasks = await self.docker("tasks", filters={"id": task_id})
            mine = [task for task in tasks if task.get("ID") == task_id]
            if live_tasks(server.ident, mine):
                return False
        return True


def live_tasks(service_id: str, tasks: list[dict]) -> dict[str, str]:
    """Task ID -> state of the tasks of a service whose container may still run."""
    live = {}
    for task in tasks:
        state = ((task.get("Status") or {}).get("State") or "").lower()
        if task.get("ServiceID") == service_id and state in _LIVE_STATES:
            live[str(task.get("ID"))] = state
    return live


def service_state(service_id: str, tasks: list[dict]) -> str | None:
    """What runs of a service that exists, from its tasks: "running", "starting" (also a
    service without tasks yet), or None when every task has ended (failed, complete, shut
    down): its container no longer runs."""
    own = [task for task in tasks if task.get("ServiceID") == service_id]
    if not own:
        return "starting"
    live = live_tasks(service_id, own)
    if not live:
        return None
    return "running" if "running" in live.values() else "starting"


class _DirectAPIClient(docker.APIClient):
    """A Docker API client that ignores HTTP proxies and REQUESTS_CA_BUNDLE of the
    environment: requests would prefer that bundle to the site's Docker API CA."""

    @property
    def trust_env(self) -> bool:
        return False

    @trust_env.setter
    def trust_env(self, value: bool) -> None:
        pass


def node_address(node: dict) -> str:
    """A node's address as the other nodes see it (a manager may report 0.0.0.0)."""
    address = (node.get("Status") or {}).get("Addr") or ""
    if address in ("", "0.0.0.0", "127.0.0.1"):
        manager = (node.get("ManagerStatus") or {}).get("Addr") or ""
        address = manager.rsplit(":", 1)[0]
    if not address:
        raise RuntimeError(f"Node {node.get('ID', '?')[:12]} reports no address")
    return address


def published_port(task: dict, target: int) -> int:
    """The node port a task publishes its target port on (host mode)."""
    ports = ((task.get("Status") or {}).get("PortStatus") or {}).get("Ports") or []
    for port in ports:
        if port.get("TargetPort") == target and port.get("PublishedPort"):
            return int(port["PublishedPort"])
    raise RuntimeError(f"Task {task.get('ID', '?')[:12]} publishes no port for {target}")


def _human_bytes(value: Any) -> str:
    number = int(value)
    for unit in ("T", "G", "M", "K"):
        size = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
        if number >= size and number % size == 0:
            return f"{number // size} {unit}B"
    return f"{number} bytes"
