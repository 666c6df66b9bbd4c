"""The spawn form over several backends (jhub_site.spawner.SiteSpawner), with real JupyterHub
spawner classes. The two backends here are minimal Spawner subclasses that keep what they were
given, so the tests see exactly what the wrapper hands a backend."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import pytest
from jupyterhub.spawner import Spawner
from traitlets import Integer
from traitlets.config import Config

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "roles/jupyterhub/files"))

from jhub_site.spawner import SiteSpawner


class _Backend(Spawner):
    """A backend that accepts a number of CPUs up to its configured limit."""

    max_cpus = Integer(4, config=True)
    prefix = "x"

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
    cfg = Config()
    cfg.SiteSpawner.backends = BACKENDS
    cfg.SiteSpawner.backend_order = order
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
