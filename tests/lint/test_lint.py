"""The linters the project holds itself to: each must report nothing."""

from __future__ import annotations

import pytest

from tests.conftest import run, tail

LINTERS = {
    "yamllint": ["yamllint", "--strict", "."],
    "ansible-lint": ["ansible-lint", "--profile", "production"],
    "ruff-check": ["ruff", "check", "."],
    "ruff-format": ["ruff", "format", "--check", "."],
}


@pytest.mark.parametrize("name", sorted(LINTERS))
def test_linter_is_clean(name: str) -> None:
    result = run(LINTERS[name], log_name=f"lint-{name}")
    assert result.returncode == 0, f"{name} reported findings:\n{tail(result, 60)}"
