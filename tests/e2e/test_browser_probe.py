"""End to end: the browser probe (tools/probe.py) walks a user's whole path in a running lab.

A manual check: bin/test does not collect tests/e2e (pyproject's testpaths); the lab verify
runs the installed probe instead (docs/monitoring.md).

    pytest tests/e2e                            # the lab bin/lab brought up (prefix lab-)
    JHUB_LAB_PREFIX=ci- JHUB_LAB_HTTPS_PORT=18443 pytest tests/e2e   # the suite's copy

The probe runs inside the lab's monitoring container, where the monitoring role installed
Chromium and Playwright, against https://front/ as the account `probe`: this repository's
copy of the script, not the installed one. Where this machine has Debian's chromium and
Playwright, it also runs here against the published front door (https://localhost:<port>/).
Skips when no lab runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PROBE = REPO_ROOT / "tools/probe.py"
PREFIX = os.environ.get("JHUB_LAB_PREFIX", "lab-")
MONITOR = f"{PREFIX}monitor"
HTTPS_PORT = os.environ.get("JHUB_LAB_HTTPS_PORT", "8443")
SECRETS = REPO_ROOT / "inventories/lab/.secrets"


def container_running(name: str) -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() == "true"


def last_json_line(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert lines, f"the probe printed no report:\n{output[-2000:]}"
    return json.loads(lines[-1])


@pytest.mark.skipif(not container_running(MONITOR), reason=f"no lab runs ({MONITOR})")
def test_the_probe_passes_inside_the_monitoring_container() -> None:
    # Not /tmp: the lab mounts a tmpfs there, which docker cp cannot write into.
    work = "/var/tmp/jupyterhub-probe-e2e"
    subprocess.run(["docker", "exec", MONITOR, "mkdir", "-p", work], check=True)
    subprocess.run(["docker", "cp", str(PROBE), f"{MONITOR}:{work}/probe.py"], check=True)
    result = subprocess.run(
        [
            "docker",
            "exec",
            MONITOR,
            "/opt/jupyterhub-probe/venv/bin/python",
            f"{work}/probe.py",
            "--url",
            "https://front/",
            "--password-file",
            "/etc/jupyterhub-probe/password",
            "--ca",
            "/etc/jupyterhub-probe/site-ca.pem",
            "--output-dir",
            work,
            "--name",
            "e2e",
            "--timeout",
            "240",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = last_json_line(result.stdout)
    assert result.returncode == 0, f"{report}\n{result.stderr[-2000:]}"
    assert report["success"] is True
    assert report["output"] == "42"
    assert report["hub_instance"] in {"a", "b"}
    metrics = subprocess.run(
        ["docker", "exec", MONITOR, "cat", f"{work}/jupyterhub_probe_e2e.prom"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 'jupyterhub_probe_success{probe="e2e"} 1' in metrics.splitlines()


def local_browser() -> bool:
    return (
        Path("/usr/bin/chromium").exists()
        and importlib.util.find_spec("playwright") is not None
        and shutil.which("certutil") is not None
    )


@pytest.mark.skipif(not container_running(MONITOR), reason=f"no lab runs ({MONITOR})")
@pytest.mark.skipif(not local_browser(), reason="no chromium, playwright and certutil here")
def test_the_probe_passes_from_this_machine(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(PROBE),
            "--url",
            f"https://localhost:{HTTPS_PORT}/",
            "--password-file",
            str(SECRETS / "ldap-user-probe"),
            "--ca",
            str(SECRETS / "site-ca.pem"),
            "--output-dir",
            str(tmp_path),
            "--name",
            "e2e-local",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = last_json_line(result.stdout)
    assert result.returncode == 0, report
    assert report["output"] == "42"
