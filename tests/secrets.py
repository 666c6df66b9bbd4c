"""Generated secrets must never show up in Ansible output or in the repository."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import REPO_ROOT


def secret_values() -> dict[str, str]:
    """Secret file -> a value that must never be printed (public certificates excluded)."""
    files = [
        *REPO_ROOT.glob("inventories/*/.secrets/*"),
        *Path.home().glob(".ansible/tmp/molecule.*/**/secrets/*"),
    ]
    values = {}
    for path in files:
        if not path.is_file() or path.suffix in {".pem", ".crt", ".csr"}:
            continue
        text = path.read_text(errors="replace").strip()
        if "PRIVATE KEY" in text:
            lines = [line for line in text.splitlines() if not line.startswith("-----")]
            text = max(lines, key=len) if lines else ""
        if len(text) >= 12:
            values[str(path)] = text
    return values


def leaks(texts: dict[str, str]) -> list[str]:
    """Which secret shows up where, for each named text."""
    values = secret_values()
    return [
        f"{secret} in {where}"
        for secret, value in values.items()
        for where, text in texts.items()
        if value in text
    ]
