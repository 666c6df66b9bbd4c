"""The spawn form over several backends (jhub_site.spawner.SiteSpawner), with real JupyterHub
spawner classes. The two backends here are minimal Spawner subclasses that keep what they were
given, so the tests see exactly what the wrapper hands a backend. For one server per user they
answer from a fake site (``SITE``: the servers each backend runs, by name) and record what
they stop and start in ``EVENTS``; the real backends' queries are tested in their own files."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import pytest
from jupyterhub.spawner import Spawner
from tornado import web
from tornado.httputil import HTTPHeaders
from traitlets import Bool, Integer, Unicode
from traitlets.config import Config

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "roles/jupyterhub/files"))

from jhub_site.exclusive import InstanceServers, OtherServer, sudo_refused
from jhub_site.spawner import SiteSpawner

PREFIXES = {"a": "jupyter-a-", "b": "jupyter-b-"}

# The servers each backend runs on the fake site: backend -> server name -> looks after a
# stop until it has ended (None: not stopped).
SITE: dict[str, dict[str, dict]] = {}
EVENTS: list[str] = []


@pytest.fixture(autouse=True)
def site() -> None:
    SITE.clear()
    SITE.update({"swarm": {}, "slurm": {}})
    EVENTS.clear()


def running(backend: str, name: str, linger: int = 1) -> None:
    """A server of the fake site that ends `linger` looks after it was stopped."""
    SITE[backend][name] = {"stopped": False, "linger": linger}


class _Backend(InstanceServers, Spawner):
    """A backend that accepts a number of CPUs up to its configured limit."""

    max_cpus = Integer(4, config=True)
    name_template = Unicode("jupyter-b-{username}", config=True)
    unreachable = Bool(False, config=True)
    prefix = "x"

    def own_server_name(self) -> str:
        return self.name_template.format(username=self.user.name)

    async def find_other_servers(self) -> list[OtherServer]:
        EVENTS.append(f"look {self.prefix}")
        if self.unreachable:
            raise RuntimeError(f"{self.prefix} does not answer")
        servers = SITE[self.prefix]
        return [
            OtherServer(instance, name, f"{self.prefix} job", ident=name, detail="running")
            for instance, name in self.other_instance_names().items()
            if name in servers
        ]

    async def stop_other_server(self, server: OtherServer) -> None:
        EVENTS.append(f"stop {self.prefix} {server.name}")
        SITE[self.prefix][server.ident]["stopped"] = True

    async def other_server_gone(self, server: OtherServer) -> bool:
        entry = SITE[self.prefix].get(server.ident)
        if entry is None:
            return True
        entry["linger"] -= 1
        if entry["stopped"] and entry["linger"] <= 0:
            del SITE[self.prefix][server.ident]
            return True
        return False

    async def site_form(self) -> str:
        last = self.user_options.get("cpus", 1)
        return f'<input name="{self.prefix}_cpus" value="{last}">'

    def site_options(self, formdata: dict[str, list[str]]) -> dict:
        cpus = int(formdata.get(f"{self.prefix}_cpus", ["1"])[0])
        if not 1 <= cpus <= self.max_cpus:
            raise ValueError(f"CPUs must be between 1 and {self.max_cpus}, not {cpus}.")
        return {"cpus": cpus}

    async def start(self) -> tuple[str, int]:
        self.site_options({f"{self.prefix}_cpus": [str(self.user_options.get("cpus", 1))]})
        self.started_with = dict(self.user_options)
        EVENTS.append(f"start {self.prefix} {self.own_server_name()}")
        SITE[self.prefix][self.own_server_name()] = {"stopped": False, "linger": 1}
        return ("127.0.0.1", 8888)

    async def stop(self, now: bool = False) -> None:
        self.stopped = True

    async def poll(self) -> int | None:
        return None

    def get_state(self) -> dict:
        return {**super().get_state(), "job": "42"}


class SwarmLike(_Backend):
    prefix = "swarm"


class SlurmLike(_Backend):
    prefix = "slurm"


BACKENDS = {
    "swarm": {"class": f"{__name__}.SwarmLike", "display": "Container"},
    "slurm": {"class": f"{__name__}.SlurmLike", "display": "Batch <job>"},
}


def make(order: list[str], stored: dict | None = None, **config: dict) -> SiteSpawner:
    """Instance b of the site, whose spawns come through the production front unless the
    test sets the front (``front()``)."""
    cfg = Config()
    cfg.SiteSpawner.backends = BACKENDS
    cfg.SiteSpawner.backend_order = order
    cfg.SiteSpawner.instance = "b"
    cfg.SiteSpawner.instance_prefixes = PREFIXES
    cfg.SiteSpawner.exclusive_poll_interval = 0.01
    for cls, values in config.items():
        for key, value in values.items():
            setattr(getattr(cfg, cls), key, value)
    orm = SimpleNamespace(user_options=stored or {}, server=None, state=None, name="")
    user = SimpleNamespace(name="alice", groups=[], url="/user/alice/")
    return SiteSpawner(user=user, orm_spawner=orm, config=cfg, user_options=stored or {})


def run(coro):
    return asyncio.run(coro)


def test_form_offers_each_backend_in_order_with_the_first_picked() -> None:
    form = run(make(["slurm", "swarm"]).render_form())
    assert form.index('value="slurm" checked') < form.index('value="swarm"')
    assert 'name="slurm_cpus"' in form
    assert 'name="swarm_cpus"' in form
    assert "Batch &lt;job&gt;" in form, "backend names are escaped"


def test_single_backend_shows_no_choice() -> None:
    form = run(make(["swarm"]).render_form())
    assert 'type="radio"' not in form
    assert 'type="hidden" name="backend" value="swarm"' in form
    assert 'name="slurm_cpus"' not in form


def test_form_opens_with_the_last_choices() -> None:
    stored = {"backend": "swarm", "options": {"cpus": 3}}
    form = run(make(["slurm", "swarm"], stored).render_form())
    assert 'value="swarm" checked' in form
    assert 'name="swarm_cpus" value="3"' in form
    assert 'name="slurm_cpus" value="1"' in form, "the other backend keeps its own defaults"


def test_options_from_form_delegates_to_the_picked_backend() -> None:
    spawner = make(["swarm", "slurm"])
    options = spawner.options_from_form(
        {"backend": ["slurm"], "slurm_cpus": ["2"], "swarm_cpus": ["9"]}
    )
    assert options == {"backend": "slurm", "options": {"cpus": 2}}


def test_bad_values_are_refused_with_the_backends_message() -> None:
    spawner = make(["swarm"], SwarmLike={"max_cpus": 2})
    with pytest.raises(ValueError, match="between 1 and 2, not 3"):
        spawner.options_from_form({"backend": ["swarm"], "swarm_cpus": ["3"]})


def test_a_backend_the_hub_does_not_offer_is_refused() -> None:
    spawner = make(["swarm"])
    with pytest.raises(ValueError, match=r"Unknown compute backend 'slurm'.*offers swarm"):
        spawner.options_from_form({"backend": ["slurm"], "slurm_cpus": ["1"]})


def test_start_gives_the_child_only_its_options() -> None:
    spawner = make(["swarm", "slurm"])
    spawner.user_options = {"backend": "slurm", "options": {"cpus": 2}}
    assert run(spawner.start()) == ("127.0.0.1", 8888)
    assert isinstance(spawner.child_spawner, SlurmLike)
    assert spawner.child_spawner.started_with == {"cpus": 2}
    assert spawner.get_state()["backend"] == "slurm"


def test_forged_options_through_the_api_are_refused_at_start() -> None:
    spawner = make(["swarm"], SwarmLike={"max_cpus": 2})
    spawner.user_options = {"backend": "swarm", "options": {"cpus": 64}}
    with pytest.raises(ValueError, match="not 64"):
        run(spawner.start())
    spawner.user_options = {"backend": "condor", "options": {}}
    with pytest.raises(ValueError, match="Unknown compute backend 'condor'"):
        run(spawner.start())


def test_no_options_start_the_default_backend() -> None:
    spawner = make(["swarm", "slurm"])
    run(spawner.start())
    assert isinstance(spawner.child_spawner, SwarmLike)


def test_state_brings_back_the_backend_after_a_hub_restart() -> None:
    spawner = make(["swarm", "slurm"])
    spawner.user_options = {"backend": "slurm", "options": {"cpus": 1}}
    run(spawner.start())
    state = spawner.get_state()

    restarted = make(["swarm", "slurm"])
    restarted.load_state(state)
    assert isinstance(restarted.child_spawner, SlurmLike)
    assert restarted.child_spawner.get_state()["job"] == "42"


def test_the_port_a_batch_notebook_reports_reaches_the_backend() -> None:
    """batchspawner's API handler sets the port on the spawner JupyterHub holds (the wrapper)."""
    spawner = make(["swarm", "slurm"])
    spawner.user_options = {"backend": "slurm", "options": {"cpus": 1}}
    run(spawner.start())
    spawner.port = 43117
    assert spawner.child_spawner.port == 43117


# --- one server per user, site-wide -----------------------------------------------------------


def front(spawner: SiteSpawner, value: str | None) -> SiteSpawner:
    """The request handler JupyterHub gives the spawner, with NGINX's front header (or none)."""
    headers = HTTPHeaders()
    if value is not None:
        headers["X-JupyterHub-Front"] = value
    spawner.handler = SimpleNamespace(request=SimpleNamespace(headers=headers))
    return spawner


def refused(spawner: SiteSpawner, status: int) -> str:
    """The start's refusal: its status and the message JupyterHub shows the user."""
    with pytest.raises(web.HTTPError) as failure:
        run(spawner.start())
    assert failure.value.status_code == status
    message = failure.value.jupyterhub_message
    assert failure.value.log_message % failure.value.args == message, "the REST API says it too"
    return message


def test_backends_get_the_sites_instances_from_the_wrapper() -> None:
    spawner = make(["swarm", "slurm"])
    spawner.user_options = {"backend": "slurm", "options": {"cpus": 1}}
    child = spawner.construct_child()
    assert (child.instance, child.instance_prefixes) == ("b", PREFIXES)
    assert child.other_instance_names() == {"a": "jupyter-a-alice"}
    running("slurm", "jupyter-a-alice")
    assert run(child.other_instance_servers()) == [
        "instance a (jupyter-a-alice: slurm job, running)"
    ]


def test_production_takes_the_other_instances_server_over_then_starts() -> None:
    """alice has a SLURM job of instance a and starts a Swarm server on b."""
    running("slurm", "jupyter-a-alice", linger=3)
    spawner = front(make(["swarm", "slurm"]), "production")
    spawner.user_options = {"backend": "swarm", "options": {"cpus": 1}}

    async def scenario() -> tuple[tuple[str, int], list[str]]:
        start = asyncio.ensure_future(spawner.start())
        await asyncio.sleep(0.005)
        messages = [event["message"] async for event in spawner.progress()]
        return await start, messages

    result, messages = run(scenario())
    assert result == ("127.0.0.1", 8888)
    assert [e for e in EVENTS if not e.startswith("look")] == [
        "stop slurm jupyter-a-alice",
        "start swarm jupyter-b-alice",
    ], "stopped, gone, then started"
    assert "jupyter-a-alice" not in SITE["slurm"]
    assert (
        messages[0]
        == "Stopping your server on instance a (jupyter-a-alice): one server per user..."
    )
    assert "Stopped your server on instance a (jupyter-a-alice): one server per user." in messages
    assert messages[-1] == "Spawning server...", "then the backend's own progress"


def test_every_enabled_backend_is_looked_at() -> None:
    spawner = front(make(["swarm", "slurm"]), "production")
    run(spawner.start())
    assert sorted(EVENTS[:2]) == ["look slurm", "look swarm"]
    assert EVENTS[2] == "start swarm jupyter-b-alice"


def test_test_front_refuses_and_names_the_other_instance() -> None:
    running("swarm", "jupyter-a-alice")
    spawner = front(make(["swarm", "slurm"]), "test")
    spawner.user_options = {"backend": "slurm", "options": {"cpus": 1}}
    message = refused(spawner, 409)
    assert "You already have a notebook server on instance a (jupyter-a-alice" in message
    assert "stop that server on instance a first" in message
    assert not [e for e in EVENTS if not e.startswith("look")], "nothing stopped, nothing started"
    assert "jupyter-a-alice" in SITE["swarm"]
    assert spawner.child_spawner is None


def test_no_other_server_starts_normally() -> None:
    for value in ("production", "test"):
        EVENTS.clear()
        spawner = front(make(["swarm", "slurm"]), value)
        assert run(spawner.start()) == ("127.0.0.1", 8888)
        assert [e for e in EVENTS if not e.startswith("look")] == ["start swarm jupyter-b-alice"]
        SITE["swarm"].clear()


def test_other_users_servers_are_never_touched() -> None:
    running("swarm", "jupyter-a-alice2")
    running("swarm", "jupyter-a-bob")
    running("slurm", "jupyter-b-alice2")
    spawner = front(make(["swarm", "slurm"]), "production")
    run(spawner.start())
    assert [e for e in EVENTS if not e.startswith("look")] == ["start swarm jupyter-b-alice"]
    assert set(SITE["swarm"]) == {"jupyter-a-alice2", "jupyter-a-bob", "jupyter-b-alice"}
    assert set(SITE["slurm"]) == {"jupyter-b-alice2"}


@pytest.mark.parametrize(("role", "takes_over"), [("production", True), ("test", False)])
def test_without_the_front_header_the_instance_role_decides(role: str, takes_over: bool) -> None:
    """A start through the REST API from inside the site, or before NGINX sets the header."""
    for handler_front in (None, "no-such-front"):
        SITE["slurm"].clear()
        running("slurm", "jupyter-a-alice")
        spawner = make(["swarm", "slurm"], SiteSpawner={"instance_role": role})
        if handler_front is not None:
            front(spawner, handler_front)
        if takes_over:
            run(spawner.start())
            assert "jupyter-a-alice" not in SITE["slurm"]
        else:
            assert "instance a" in refused(spawner, 409)
            assert "jupyter-a-alice" in SITE["slurm"]


def test_the_front_header_wins_over_the_instance_role() -> None:
    running("swarm", "jupyter-a-alice")
    spawner = front(make(["swarm"], SiteSpawner={"instance_role": "test"}), "Production")
    run(spawner.start())
    assert "stop swarm jupyter-a-alice" in EVENTS


def test_takeover_off_refuses_on_the_production_front_too() -> None:
    running("swarm", "jupyter-a-alice")
    spawner = front(make(["swarm"], SiteSpawner={"takeover_servers": False}), "production")
    assert "stop that server on instance a first" in refused(spawner, 409)
    assert "jupyter-a-alice" in SITE["swarm"]


def test_exclusive_servers_off_skips_the_look() -> None:
    running("swarm", "jupyter-a-alice")
    spawner = front(
        make(
            ["swarm", "slurm"],
            SiteSpawner={"exclusive_servers": False},
            SlurmLike={"unreachable": True},
        ),
        "test",
    )
    assert run(spawner.start()) == ("127.0.0.1", 8888)
    assert EVENTS == ["start swarm jupyter-b-alice"], "no backend was asked"


def test_a_backend_that_cannot_tell_refuses_the_start() -> None:
    spawner = front(make(["swarm", "slurm"], SlurmLike={"unreachable": True}), "production")
    message = refused(spawner, 503)
    assert "Cannot check whether you have a server on another JupyterHub instance" in message
    assert "Batch <job>: slurm does not answer" in message
    assert not [e for e in EVENTS if e.startswith("start")]


def test_a_server_that_does_not_end_in_time_refuses_the_start() -> None:
    running("slurm", "jupyter-a-alice", linger=10_000)
    spawner = front(make(["swarm", "slurm"], SiteSpawner={"takeover_timeout": 0.05}), "production")
    message = refused(spawner, 503)
    assert "Your server on instance a (jupyter-a-alice: slurm job, running) did not end" in message
    assert not [e for e in EVENTS if e.startswith("start")]


def test_a_start_on_the_other_instance_at_the_same_moment_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both instances' first looks find nothing; the second look, once the server runs,
    finds the other one: test gives its server up, production takes over."""
    started = SwarmLike.start

    async def racing_start(self: SwarmLike) -> tuple[str, int]:
        running("slurm", "jupyter-a-alice")
        return await started(self)

    monkeypatch.setattr(SwarmLike, "start", racing_start)
    message = refused(front(make(["swarm", "slurm"]), "test"), 409)
    assert "Meanwhile a notebook server started on instance a (jupyter-a-alice" in message

    SITE["slurm"].clear()
    EVENTS.clear()
    run(front(make(["swarm", "slurm"]), "production").start())
    assert [e for e in EVENTS if not e.startswith("look")] == [
        "start swarm jupyter-b-alice",
        "stop slurm jupyter-a-alice",
    ]


# --- maintenance ---------------------------------------------------------------------------------


def test_maintenance_refuses_every_start_with_the_message() -> None:
    text = "Maintenance until 14:00: the hub is being upgraded <today>."
    spawner = front(
        make(["swarm", "slurm"], SiteSpawner={"maintenance_message": text}), "production"
    )
    assert refused(spawner, 503) == text
    assert EVENTS == [], "refused at once: no backend asked, nothing started"


def test_maintenance_message_tops_the_form_escaped() -> None:
    text = "Maintenance until 14:00 <b>today</b>"
    form = run(make(["swarm", "slurm"], SiteSpawner={"maintenance_message": text}).render_form())
    assert form.index("Maintenance until 14:00 &lt;b&gt;today&lt;/b&gt;") < form.index(
        'name="backend"'
    )
    assert "alert" not in run(make(["swarm"]).render_form())


def test_maintenance_leaves_running_servers_alone() -> None:
    spawner = make(["swarm", "slurm"])
    spawner.user_options = {"backend": "slurm", "options": {"cpus": 1}}
    run(spawner.start())
    spawner.maintenance_message = "Maintenance"
    assert run(spawner.poll()) is None
    assert not hasattr(spawner.child_spawner, "stopped")


@pytest.mark.parametrize(
    ("stderr", "refused_by_sudo"),
    [
        ("sudo: a password is required", True),
        (
            "Sorry, user jupyterhub is not allowed to execute '/usr/bin/squeue' as bob on hub-a.",
            True,
        ),
        ("sudo: a terminal is required to read the password; either use the -S option", True),
        ("slurm_load_jobs error: Unable to contact slurm controller (connect failure)", False),
        ("Error: Couldn't contact the condor_collector on condor-cm:9619.", False),
        ("", False),
    ],
)
def test_sudo_refusals_are_told_from_scheduler_errors(stderr: str, refused_by_sudo: bool) -> None:
    """A refusal means the hub may not act as this user, so no hub started a batch job for
    them; any other error means the backend cannot tell, and the start is refused."""
    assert sudo_refused(stderr) is refused_by_sudo
