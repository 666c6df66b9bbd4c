"""The browser probe's bookkeeping (tools/probe.py): metrics, files, arguments.

The browser part runs for real in the monitoring scenario (failure path) and in the lab
(the whole user path); these tests cover what the probe writes, without a browser.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SPEC = importlib.util.spec_from_file_location("jupyterhub_probe", REPO_ROOT / "tools/probe.py")
assert SPEC
assert SPEC.loader
probe = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = probe
SPEC.loader.exec_module(probe)


def samples(text: str) -> dict[str, str]:
    """Sample lines of a textfile: 'name{labels}' -> value."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = value
    return out


def test_a_passed_run_reports_success_steps_and_the_production_instance() -> None:
    outcome = probe.Outcome(name="production", started=1_800_000_000.0)
    outcome.success = True
    outcome.duration = 12.3456
    outcome.steps = {"login": 0.5, "spawn": 4.25}
    outcome.hub_instance = "a"
    got = samples(probe.render_metrics(outcome, production="a", interval=900))
    assert got == {
        'jupyterhub_probe_success{probe="production"}': "1",
        'jupyterhub_probe_duration_seconds{probe="production"}': "12.346",
        'jupyterhub_probe_last_run_timestamp_seconds{probe="production"}': "1800000012",
        'jupyterhub_probe_step_duration_seconds{probe="production",step="login"}': "0.5",
        'jupyterhub_probe_step_duration_seconds{probe="production",step="spawn"}': "4.25",
        'jupyterhub_probe_answered_by{probe="production",hub_instance="a",'
        'hub_role="production"}': "1",
        'jupyterhub_probe_interval_seconds{probe="production"}': "900",
    }


def test_a_failed_run_names_the_step_and_writes_no_empty_families() -> None:
    outcome = probe.Outcome(name="production", started=0.0)
    outcome.failed_step = "spawn"
    outcome.hub_instance = "b"
    text = probe.render_metrics(outcome, production="a")
    got = samples(text)
    assert got['jupyterhub_probe_success{probe="production"}'] == "0"
    assert got['jupyterhub_probe_failed_step{probe="production",step="spawn"}'] == "1"
    assert (
        got['jupyterhub_probe_answered_by{probe="production",hub_instance="b",hub_role="test"}']
        == "1"
    )
    assert "jupyterhub_probe_step_duration_seconds" not in text
    assert "jupyterhub_probe_interval_seconds" not in text
    # Every family that is announced has a sample.
    announced = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert announced == {key.split("{")[0] for key in got}


def test_no_answer_means_no_instance() -> None:
    outcome = probe.Outcome(name="production")
    assert "answered_by" not in probe.render_metrics(outcome, production="a")
    assert probe.hub_role("", "a") == "unknown"
    assert probe.hub_role("b", "") == "unknown"


def test_label_values_are_escaped() -> None:
    assert probe.label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_the_textfile_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "jupyterhub_probe_production.prom"
    probe.write_atomically(target, "first 1\n")
    probe.write_atomically(target, "second 2\n")
    assert target.read_text() == "second 2\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_old_failure_records_are_pruned_per_probe(tmp_path: Path) -> None:
    for stamp in ("20260101T000000Z", "20260102T000000Z", "20260103T000000Z"):
        for suffix in (".png", ".log"):
            (tmp_path / f"probe-production-{stamp}{suffix}").write_text("x")
    (tmp_path / "probe-production-test-20250101T000000Z.log").write_text("other probe")
    (tmp_path / "notes.txt").write_text("not a record")
    probe.prune_failures(tmp_path, "production", keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt",
        "probe-production-20260102T000000Z.log",
        "probe-production-20260102T000000Z.png",
        "probe-production-20260103T000000Z.log",
        "probe-production-20260103T000000Z.png",
        "probe-production-test-20250101T000000Z.log",
    ]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JHUB_PROBE_URL", "https://front")
    monkeypatch.setenv("JHUB_PROBE_PASSWORD_FILE", "/etc/jupyterhub-probe/password")
    monkeypatch.setenv("JHUB_PROBE_CA_FILE", "")
    monkeypatch.setenv("JHUB_PROBE_OUTPUT_DIR", "/var/lib/prometheus/node-exporter")
    monkeypatch.setenv("JHUB_PROBE_TIMEOUT", "60")
    args = probe.parse_args([])
    assert args.url == "https://front/"
    assert args.ca is None
    assert args.timeout == 60
    assert args.failure_dir == args.output_dir == Path("/var/lib/prometheus/node-exporter")
    assert probe.parse_args(["--url", "https://other/x/"]).url == "https://other/x/"


@pytest.mark.parametrize("argv", [[], ["--url", "https://front/"], ["--name", "a b"]])
def test_bad_arguments_exit_2(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URL", "PASSWORD_FILE"):
        monkeypatch.delenv(f"JHUB_PROBE_{name}", raising=False)
    extra = ["--url", "https://front/", "--password-file", "/x"] if "--name" in argv else []
    with pytest.raises(SystemExit) as exit_info:
        probe.parse_args([*argv, *extra])
    assert exit_info.value.code == 2


def test_a_run_that_cannot_start_still_reports_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No password file: no browser starts, yet Prometheus learns the probe failed."""
    code = probe.main(
        [
            "--url",
            "https://front/",
            "--password-file",
            str(tmp_path / "missing"),
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 1
    got = samples((tmp_path / "jupyterhub_probe_production.prom").read_text())
    assert got['jupyterhub_probe_success{probe="production"}'] == "0"
    assert got['jupyterhub_probe_failed_step{probe="production",step="start"}'] == "1"
    report = json.loads(capsys.readouterr().out)
    assert report["success"] is False
    assert "missing" in report["error"]
    assert len(list(tmp_path.glob("probe-production-*.log"))) == 1


def test_the_password_never_reaches_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "Zq8vN3xK1pL0sT7w"
    password_file = tmp_path / "password"
    password_file.write_text(secret + "\n")

    def fail(*_args: object) -> None:
        raise RuntimeError(f"the browser said: wrong password {secret}")

    monkeypatch.setattr(probe, "run_probe", fail)
    argv = ["--url", "https://front/", "--password-file", str(password_file)]
    code = probe.main([*argv, "--output-dir", str(tmp_path)])
    assert code == 1
    written = capsys.readouterr().out + "".join(
        p.read_text() for p in tmp_path.iterdir() if p.suffix in {".log", ".prom"}
    )
    assert secret not in written
    assert "***" in written
    assert os.environ.get("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD") == "1"
