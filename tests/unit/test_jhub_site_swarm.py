"""The Swarm backend of the spawn form (jhub_site.swarm.SiteSwarmSpawner): the form, option
checks (also of options sent without the form), names, the user's identity and mounts, and
where the hub connects, with dockerspawner's real classes and a recording stand-in for the
Docker API (no engine is contacted)."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import pytest
from docker.errors import NotFound
from traitlets.config import Config

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "roles/jupyterhub/files"))

from jhub_site import swarm
from jhub_site.swarm import SiteSwarmSpawner, node_address, published_port

IMAGES = {
    "scipy": {"image": "jhub-notebook/scipy:latest", "description": "SciPy <stack>"},
    "minimal": {"image": "jhub-notebook/minimal:latest", "description": "Python"},
    "gpu": {
        "image": "jhub-notebook/gpu:latest",
        "description": "CUDA",
        "constraints": ["node.labels.gpu == true"],
    },
}

# What NSS answers on the hub host: alice (10001) and bob (10002, also in belle2).
ACCOUNTS = {"alice": (10001, 10001), "bob": (10002, 10002), "daemon": (1, 1)}
GROUPS = {10001: "alice", 10002: "bob", 20001: "jupyterhub-users", 20003: "belle2"}
MEMBERS = {"alice": [20001], "bob": [20001, 20003], "daemon": []}


@pytest.fixture(autouse=True)
def directory(monkeypatch: pytest.MonkeyPatch) -> None:
    def getpwnam(name: str) -> SimpleNamespace:
        uid, gid = ACCOUNTS[name]
        return SimpleNamespace(pw_uid=uid, pw_gid=gid)

    monkeypatch.setattr(swarm.pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(
        swarm.os, "getgrouplist", lambda name, gid: [gid, *MEMBERS[name]], raising=False
    )
    monkeypatch.setattr(swarm.grp, "getgrgid", lambda gid: SimpleNamespace(gr_name=GROUPS[gid]))


def make(name: str = "alice", options: dict | None = None, **settings: object) -> SiteSwarmSpawner:
    cfg = Config()
    values = {
        "images": IMAGES,
        "default_image": "scipy",
        "name_template": "jupyter-a-{username}",
        "mem_limit": "4G",
        "cpu_limit": 2.0,
        "constraints": ["node.role == worker"],
        "network_name": "jhub-notebooks",
        "group_kernel_paths": {"belle2": "/shared/kernels/belle2"},
        **settings,
    }
    for key, value in values.items():
        setattr(cfg.SiteSwarmSpawner, key, value)
    user = SimpleNamespace(name=name, escaped_name=name, url=f"/user/{name}/", groups=[])
    hub = SimpleNamespace(api_url="http://10.0.0.5:8081/hub/api/", public_host="", base_url="/hub/")
    spawner = SiteSwarmSpawner(user=user, hub=hub, config=cfg, user_options=options or {})
    spawner._server = SimpleNamespace(base_url=f"/user/{name}/")
    return spawner


class FakeDocker:
    """Answers the Docker API calls of a spawn as a swarm with one worker would."""

    def __init__(self, states: list[str] | None = None) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.states = states or ["pending", "running"]
        self.created: dict = {}

    async def __call__(self, method: str, *args: object, **kwargs: object) -> object:
        self.calls.append((method, args, kwargs))
        if method == "inspect_service":
            if not self.created:
                raise NotFound("no such service", response=SimpleNamespace(status_code=404))
            return {"ID": "svc1", "Spec": {"Name": args[0]}}
        if method == "create_service":
            self.created = kwargs
            return {"ID": "svc1"}
        if method == "tasks":
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return [
                {
                    "ID": "task1",
                    "NodeID": "node1",
                    "Status": {
                        "State": state,
                        "Err": "no suitable node" if state == "rejected" else "",
                        "PortStatus": {
                            "Ports": [
                                {"TargetPort": 8888, "PublishedPort": 30123, "PublishMode": "host"}
                            ]
                        },
                    },
                }
            ]
        if method == "inspect_node":
            return {"ID": "node1", "Status": {"Addr": "10.0.0.21"}}
        raise AssertionError(f"unexpected Docker call {method}")


def start(spawner: SiteSwarmSpawner, docker: FakeDocker) -> tuple[str, int]:
    spawner.docker = docker  # type: ignore[method-assign]
    return asyncio.run(spawner.start())


# --- the form ----------------------------------------------------------------------------------


def test_form_offers_the_sites_images_escaped_with_the_default_picked() -> None:
    form = asyncio.run(make().site_form())
    assert 'name="swarm_image"' in form
    assert '<option value="scipy" selected>scipy: SciPy &lt;stack&gt;</option>' in form
    assert '<option value="minimal">' in form
    assert "memory 4 GB, 2 CPUs" in form


def test_form_opens_with_the_users_last_image() -> None:
    form = asyncio.run(make(options={"image": "minimal"}).site_form())
    assert '<option value="minimal" selected>' in form
    assert '<option value="scipy">' in form


def test_options_from_the_form() -> None:
    assert make().site_options({"swarm_image": ["minimal"]}) == {"image": "minimal"}
    assert make().site_options({}) == {"image": "scipy"}, "no choice: the default image"


@pytest.mark.parametrize("bad", ["debian:latest", "jhub-notebook/scipy:latest", "SCIPY", ""])
def test_an_image_the_site_does_not_list_is_refused_in_the_form(bad: str) -> None:
    with pytest.raises(
        ValueError, match=r"swarm_image: unknown image .*offers scipy, minimal, gpu"
    ):
        make().site_options({"swarm_image": [bad]})


# --- options sent without the form are checked again at start -----------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image": "evil/rootkit:latest"}, "unknown image 'evil/rootkit:latest'"),
        ({"image": ["scipy"]}, "unknown image 'list'"),
        ({"image": "scipy", "mem_limit": "64G"}, "Unknown options for a Swarm server: mem_limit"),
        ({"image": "scipy", "volumes": {"/": "/host"}}, "Unknown options .*: volumes"),
    ],
)
def test_forged_options_are_refused_before_anything_is_created(options: dict, message: str) -> None:
    docker = FakeDocker()
    with pytest.raises(ValueError, match=message):
        start(make(options=options), docker)
    assert docker.calls == [], "nothing reached the Docker API"


def test_root_and_system_accounts_never_get_a_server() -> None:
    docker = FakeDocker()
    with pytest.raises(ValueError, match="UID 1, below 1000"):
        start(make("daemon"), docker)
    with pytest.raises(ValueError, match="not known to this hub host's directory"):
        start(make("mallory"), docker)
    assert docker.calls == []


# --- what a start creates ------------------------------------------------------------------------


def test_a_start_creates_the_users_service_as_the_site_wants_it() -> None:
    docker = FakeDocker()
    spawner = make("bob", options={"image": "gpu"})
    assert start(spawner, docker) == ("10.0.0.21", 30123)

    spec = docker.created
    assert spec["name"] == "jupyter-a-bob", "names carry the instance's prefix"
    container = spec["task_template"]["ContainerSpec"]
    assert container["Image"] == "jhub-notebook/gpu:latest"
    assert container["User"] == "10002:10002"
    assert sorted(container["Groups"]) == ["20001", "20003"]
    assert container["Dir"] == "/home/bob"
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["Init"] is True
    assert container["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "1024"}
    assert [(m["Source"], m["Target"], m["Type"]) for m in container["Mounts"]] == [
        ("/home/bob", "/home/bob", "bind"),
        ("/shared", "/shared", "bind"),
    ]
    env = dict(item.split("=", 1) for item in container["Env"])
    assert env["HOME"] == "/home/bob"
    assert env["USER"] == "bob"
    assert env["JUPYTER_PATH"] == "/shared/kernels/belle2", "bob is in belle2"
    assert env["JUPYTERHUB_API_URL"] == "http://10.0.0.5:8081/hub/api/"

    task = spec["task_template"]
    assert task["Resources"]["Limits"] == {"MemoryBytes": 4 << 30, "NanoCPUs": 2_000_000_000}
    assert task["Placement"]["Constraints"] == ["node.role == worker", "node.labels.gpu == true"]
    assert task["RestartPolicy"]["Condition"] == "none"
    assert task["Networks"] == [{"Target": "jhub-notebooks"}]
    assert spec["endpoint_spec"] == {
        "Mode": "dnsrr",
        "Ports": [
            {"Protocol": "tcp", "PublishedPort": None, "TargetPort": 8888, "PublishMode": "host"}
        ],
    }


def test_members_of_no_kernel_group_get_no_jupyter_path() -> None:
    docker = FakeDocker()
    start(make("alice", options={"image": "minimal"}), docker)
    container = docker.created["task_template"]["ContainerSpec"]
    assert not any(item.startswith("JUPYTER_PATH=") for item in container["Env"])
    assert container["Image"] == "jhub-notebook/minimal:latest"
    assert [m["Source"] for m in container["Mounts"]] == ["/home/alice", "/shared"]


def test_no_shared_area_mounts_only_the_home() -> None:
    docker = FakeDocker()
    start(make(shared_dir=""), docker)
    mounts = docker.created["task_template"]["ContainerSpec"]["Mounts"]
    assert [m["Target"] for m in mounts] == ["/home/alice"]


def test_a_task_the_swarm_rejects_fails_the_start_with_its_reason() -> None:
    with pytest.raises(RuntimeError, match="jupyter-a-alice did not start: no suitable node"):
        start(make(poll_interval=0.0), FakeDocker(states=["pending", "rejected"]))


def test_the_instances_prefix_keeps_the_two_hubs_apart() -> None:
    assert make(name_template="jupyter-a-{username}").object_name == "jupyter-a-alice"
    assert make(name_template="jupyter-b-{username}").object_name == "jupyter-b-alice"


# --- where the hub connects ----------------------------------------------------------------------


def test_the_hub_connects_to_the_node_address_and_the_published_port() -> None:
    task = {
        "ID": "t",
        "Status": {"PortStatus": {"Ports": [{"TargetPort": 8888, "PublishedPort": 31000}]}},
    }
    assert published_port(task, 8888) == 31000
    assert node_address({"Status": {"Addr": "10.0.0.22"}}) == "10.0.0.22"


def test_a_manager_reporting_0000_is_reached_at_its_manager_address() -> None:
    node = {"Status": {"Addr": "0.0.0.0"}, "ManagerStatus": {"Addr": "10.0.0.2:2377"}}
    assert node_address(node) == "10.0.0.2"


def test_a_task_without_a_published_port_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="publishes no port for 8888"):
        published_port({"ID": "t", "Status": {}}, 8888)


# --- the user's services of the other hub instances ------------------------------------------

PREFIXES = {"a": "jupyter-a-", "b": "jupyter-b-"}


def service(service_id: str, name: str) -> dict:
    return {
        "ID": service_id,
        "Version": {"Index": 1043},
        "CreatedAt": "2026-12-07T09:12:44.118205311Z",
        "Spec": {"Name": name, "Labels": {}, "Mode": {"Replicated": {"Replicas": 1}}},
        "Endpoint": {"Spec": {"Mode": "dnsrr"}},
    }


def task(task_id: str, service_id: str, state: str) -> dict:
    return {
        "ID": task_id,
        "ServiceID": service_id,
        "NodeID": "node1",
        "Slot": 1,
        "DesiredState": "running" if state in ("running", "pending") else "shutdown",
        "Status": {"Timestamp": "2026-12-07T09:12:46Z", "State": state, "Message": state},
    }


class FakeSwarm:
    """Services and tasks as a manager lists them, with Docker's filters: ``name`` and ``id``
    match prefixes, ``service`` names one service (404 once it is removed). A removed service
    disappears at once; its tasks stay listed by ID, running, for ``linger`` more looks (the
    container gets SIGTERM and stops), then as shut down."""

    def __init__(self, services: list[dict], tasks: list[dict], linger: int = 1) -> None:
        self.services = {s["ID"]: s for s in services}
        self.tasks = tasks
        self.linger = linger
        self.calls: list[tuple[str, tuple, dict]] = []
        self.removed: list[str] = []

    async def __call__(self, method: str, *args: object, **kwargs: object) -> object:
        self.calls.append((method, args, kwargs))
        filters: dict = kwargs.get("filters") or {}  # type: ignore[assignment]
        if method == "services":
            found = list(self.services.values())
            if "name" in filters:
                found = [s for s in found if s["Spec"]["Name"].startswith(filters["name"])]
            if "id" in filters:
                found = [s for s in found if s["ID"].startswith(filters["id"])]
            return found
        if method == "tasks":
            if "service" in filters:
                wanted = filters["service"]
                match = [
                    s for s in self.services.values() if wanted in (s["ID"], s["Spec"]["Name"])
                ]
                if not match:
                    raise NotFound(f"service {wanted} not found")
                return [t for t in self.tasks if t["ServiceID"] == match[0]["ID"]]
            found = [t for t in self.tasks if t["ID"].startswith(filters["id"])]
            for t in found:
                if t["ServiceID"] in self.removed:
                    self.linger -= 1
                    if self.linger < 0:
                        t["Status"]["State"] = "shutdown"
            return found
        if method == "remove_service":
            service_id = str(args[0])
            if service_id not in self.services:
                raise NotFound(f"service {service_id} not found")
            del self.services[service_id]
            self.removed.append(service_id)
            return True
        raise AssertionError(f"unexpected Docker call {method}")


def site() -> FakeSwarm:
    """alice's server of instance a, and servers of alice2 and bob whose names start alike."""
    return FakeSwarm(
        [
            service("svcalice", "jupyter-a-alice"),
            service("svcalice2", "jupyter-a-alice2"),
            service("svcbob", "jupyter-a-bob"),
        ],
        [
            task("taskalice", "svcalice", "running"),
            task("taskalice2", "svcalice2", "running"),
            task("taskbob", "svcbob", "running"),
        ],
    )


def instance_b(name: str = "alice", swarm: FakeSwarm | None = None) -> SiteSwarmSpawner:
    spawner = make(
        name, name_template="jupyter-b-{username}", instance="b", instance_prefixes=PREFIXES
    )
    if swarm is not None:
        spawner.docker = swarm  # type: ignore[method-assign]
    return spawner


def test_the_other_instances_service_is_found_by_its_exact_name() -> None:
    swarm = site()
    spawner = instance_b(swarm=swarm)
    found = asyncio.run(spawner.find_other_servers())
    assert [(s.instance, s.name, s.ident, s.detail) for s in found] == [
        ("a", "jupyter-a-alice", "svcalice", "running")
    ], "not jupyter-a-alice2, which Docker's name filter also returns"
    assert found[0].handles == ("taskalice",)
    assert swarm.calls[0] == ("services", (), {"filters": {"name": "jupyter-a-alice"}})
    assert asyncio.run(spawner.other_instance_servers()) == [
        "instance a (jupyter-a-alice: Swarm service, running)"
    ]


def test_a_service_whose_container_ended_is_no_server_and_a_new_one_is() -> None:
    swarm = FakeSwarm(
        [service("svcalice", "jupyter-a-alice")],
        [task("t1", "svcalice", "failed"), task("t2", "svcalice", "complete")],
    )
    assert asyncio.run(instance_b(swarm=swarm).find_other_servers()) == []
    fresh = FakeSwarm([service("svcalice", "jupyter-a-alice")], [])
    found = asyncio.run(instance_b(swarm=fresh).find_other_servers())
    assert [s.detail for s in found] == ["starting"], "created, no task yet"


def test_own_instance_and_no_prefixes_look_for_nothing() -> None:
    swarm = site()
    swarm.services = {"svcown": service("svcown", "jupyter-b-alice")}
    assert asyncio.run(instance_b(swarm=swarm).find_other_servers()) == []
    bare = site()
    unconfigured = make(name_template="jupyter-b-{username}")
    unconfigured.docker = bare  # type: ignore[method-assign]
    assert asyncio.run(unconfigured.find_other_servers()) == []
    assert bare.calls == [], "no instance_prefixes: nothing to look for"


def test_escaped_user_names_match_the_other_instances_escaping() -> None:
    spawner = instance_b("jo.doe")
    assert spawner.own_server_name() == "jupyter-b-jo-2edoe"
    assert spawner.other_instance_names() == {"a": "jupyter-a-jo-2edoe"}


def test_a_takeover_removes_only_that_service_and_waits_for_its_container() -> None:
    swarm = site()
    swarm.linger = 2
    spawner = instance_b(swarm=swarm)

    async def takeover() -> list[bool]:
        (server,) = await spawner.find_other_servers()
        await spawner.stop_other_server(server)
        looks = [await spawner.other_server_gone(server) for _ in range(4)]
        await spawner.stop_other_server(server)  # removed already: no error
        return looks

    assert asyncio.run(takeover()) == [False, False, True, True], "gone once its task stopped"
    assert swarm.removed == ["svcalice"]
    assert set(swarm.services) == {"svcalice2", "svcbob"}
