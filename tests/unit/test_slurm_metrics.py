"""slurm-metrics: SLURM's health (sinfo, squeue) as node exporter textfile metrics."""

from __future__ import annotations

from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "roles/slurm/files/usr/local/sbin/slurm-metrics"


def load():
    loader = SourceFileLoader("slurm_metrics", str(SCRIPT))
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


metrics = load()


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("idle", "idle"),
        ("mixed", "mixed"),
        ("allocated", "allocated"),
        ("drained", "drained"),
        ("draining", "drained"),
        ("idle+drain", "drained"),
        ("down*", "down"),
        ("idle~", "idle"),
        ("MIXED-", "mixed"),
    ],
)
def test_node_states_reduce_to_a_base_state(raw: str, state: str) -> None:
    assert metrics.node_state(raw) == state


def test_a_drained_partition_has_no_usable_node_and_the_other_keeps_its_own() -> None:
    nodes = metrics.partition_nodes("jhub|drained|1\nbatch|idle|2\nbatch|down*|1\n")
    jobs = metrics.partition_jobs("jhub|PENDING\n", sorted(nodes))
    lines = metrics.render(True, nodes, jobs, 1700000000.0).splitlines()
    assert 'slurm_partition_usable_nodes{partition="jhub"} 0' in lines
    assert 'slurm_partition_usable_nodes{partition="batch"} 2' in lines
    assert 'slurm_partition_nodes{partition="batch",state="down"} 1' in lines
    assert 'slurm_partition_jobs{partition="jhub",state="pending"} 1' in lines
    # Every usual job state is written, zero included, so an alert sees 0 and not nothing.
    assert 'slurm_partition_jobs{partition="batch",state="running"} 0' in lines
    assert "slurm_controller_up 1" in lines
    assert "slurm_metrics_last_run_timestamp_seconds 1700000000" in lines


def test_jobs_count_in_each_partition_they_were_submitted_to() -> None:
    jobs = metrics.partition_jobs("jhub,batch|RUNNING\njhub|RUNNING\n", ["batch", "jhub"])
    assert jobs["jhub"]["running"] == 2
    assert jobs["batch"]["running"] == 1


def test_a_silent_controller_writes_only_that_it_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "run", lambda argv: None)
    lines = metrics.collect().splitlines()
    assert "slurm_controller_up 0" in lines
    assert not [line for line in lines if line.startswith("slurm_partition")]


def test_the_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "slurm.prom"
    metrics.write_atomically(str(target), "slurm_controller_up 1\n")
    metrics.write_atomically(str(target), "slurm_controller_up 0\n")
    assert target.read_text() == "slurm_controller_up 0\n"
    assert [p.name for p in target.parent.iterdir()] == ["slurm.prom"]
    assert target.stat().st_mode & 0o777 == 0o644
