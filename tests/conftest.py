"""Shared helpers of the test suite."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import types
from pathlib import Path

import pytest
from hypothesis import settings

# The suite runs its property tests beside molecule scenarios on two cores: a per-example
# time limit would fail them for the machine's load, not for what they check.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = REPO_ROOT / ".cache" / "logs"


def run(
    cmd: list[str],
    *,
    cwd: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
    log_name: str | None = None,
    timeout: int = 3600,
) -> subprocess.CompletedProcess[str]:
    """Run a command, keep its whole output in .cache/logs/, return the result."""
    full_env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "PY_COLORS": "0",
        **(env or {}),
    }
    try:
        result = subprocess.run(
            cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as expired:
        # What the command printed until it was stopped is what tells why it took so long.
        if log_name:
            write_log(log_name, _text(expired.stdout) + _text(expired.stderr))
        raise
    if log_name:
        write_log(log_name, result.stdout + result.stderr)
    return result


def _text(output: bytes | str | None) -> str:
    if output is None:
        return ""
    return output if isinstance(output, str) else output.decode(errors="replace")


def write_log(name: str, text: str) -> None:
    """Keep a command's whole output in .cache/logs/<name>.log."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / f"{name}.log").write_text(text)


def load_module(name: str, path: Path) -> types.ModuleType:
    """A file of the repository (a filter plugin, a tool) loaded as a module under name."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tail(result: subprocess.CompletedProcess[str], lines: int = 120) -> str:
    """The last lines of a command's output, for an assertion message."""
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


def failed_tasks(result: subprocess.CompletedProcess[str], after: int = 25) -> str:
    """Each failed Ansible task of a command's output: its TASK line and what follows.

    A molecule log is long and a report may show only its two ends, so an assertion
    message starts with these blocks.
    """
    lines = (result.stdout + result.stderr).splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if not line.lstrip().startswith(("fatal: [", "failed: [")):
            continue
        start = number
        while start > 0 and not lines[start].startswith("TASK ["):
            start -= 1
        blocks.append("\n".join(lines[start : number + after]))
    return "\n...\n".join(blocks)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


# The test that takes longest, first: with bin/test's work-stealing workers it starts at
# once on one worker while the other takes everything else (and steals the tests queued
# behind it), instead of starting after the cheap tests and ending last. The unit tests
# come right after it: pytest-xdist never steals a worker's last two tests (the running one
# counts), so the test next in line runs only after the lab and had better be a cheap one.
LONGEST_FIRST = ("tests/molecule/test_scenarios.py::test_scenario[site-lab]",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(
        key=lambda item: (
            item.nodeid not in LONGEST_FIRST,
            not item.nodeid.startswith("tests/unit/"),
        )
    )
