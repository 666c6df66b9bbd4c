"""No generated secret is in a tracked file (the scenarios check their own output)."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO_ROOT
from tests.secrets import leaks


def test_no_secret_in_a_tracked_file() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    repo = {
        name: (REPO_ROOT / name).read_text(errors="replace")
        for name in tracked
        if name and (REPO_ROOT / name).is_file()
    }
    found = leaks(repo)
    assert not found, "secrets in tracked files:\n" + "\n".join(found)
