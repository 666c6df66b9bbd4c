"""No generated secret shows up in any Ansible output or in the repository.

Runs after the scenarios (file order): their whole output is kept in .cache/logs/.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import LOG_DIR, REPO_ROOT


def secret_values() -> dict[str, str]:
    """Secret file -> a value that must never be printed (public certificates excluded)."""
    files = [
        *REPO_ROOT.glob("inventories/*/.secrets/*"),
        *Path.home().glob(".ansible/tmp/molecule.*/**/secrets/*"),
    ]
    values = {}
    for path in files:
        if not path.is_file() or path.suffix == ".pem":
            continue
        text = path.read_text(errors="replace").strip()
        if "PRIVATE KEY" in text:
            lines = [line for line in text.splitlines() if not line.startswith("-----")]
            text = max(lines, key=len) if lines else ""
        if len(text) >= 12:
            values[str(path)] = text
    return values


@pytest.mark.molecule
def test_no_secret_in_ansible_output_or_repository() -> None:
    values = secret_values()
    if not values:
        pytest.skip("no generated secrets on this machine (no scenario ran)")
    logs = {p.name: p.read_text(errors="replace") for p in LOG_DIR.glob("*.log")}
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    repo = {
        name: (REPO_ROOT / name).read_text(errors="replace")
        for name in tracked
        if name and (REPO_ROOT / name).is_file()
    }
    leaks = [
        f"{secret} in {where}"
        for secret, value in values.items()
        for where, text in {**logs, **repo}.items()
        if value in text
    ]
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)
