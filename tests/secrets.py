"""Generated secrets must never show up in Ansible output or in the repository.

A molecule scenario generates its secrets into its ephemeral directory: ``secrets/`` (the
``site_secrets_dir`` of the role scenarios), ``pki/`` (test CAs and their keys) and
``vault/`` (stand-ins for values an inventory takes from ansible-vault); the lab scenario
into ``inventories/lab/.secrets``. Molecule deletes an ephemeral directory's files at the
end of ``molecule test``, except those ``.config/molecule/config.yml`` lists as
``safe_files``: these three directories, so that tests/molecule/test_scenarios.py can
compare the whole output of a scenario (and the tracked files) with what it generated,
after the run. A check that finds no secret to compare with fails: it could never fail
otherwise.

By hand, e.g. against the lab's logs::

    .venv/bin/python -m tests.secrets --secrets inventories/lab/.secrets .cache/logs/*.log
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# The directories of a scenario's ephemeral directory that hold what it generated.
SCENARIO_SECRET_DIRS = ("secrets", "pki", "vault")
# Shorter values could turn up in any output by chance; generated ones have 32 characters.
MIN_LENGTH = 12
# Characters of a secret a report shows: enough to tell two apart, too few to use one.
SHOWN_CHARS = 3


@dataclass(frozen=True)
class Secret:
    """One value that must never be printed, and where it comes from."""

    source: str
    value: str

    def hint(self) -> str:
        """The source and the first characters of the value, never the whole value."""
        return f"{self.source} ({self.value[:SHOWN_CHARS]}...)"

    def forms(self) -> set[str]:
        """The value as it would show in output: as is, JSON-escaped, base64-encoded (slurp)."""
        found = {self.value, json.dumps(self.value)[1:-1]}
        for raw in (self.value, self.value + "\n"):
            found.add(base64.b64encode(raw.encode()).decode().rstrip("="))
        return found


@dataclass(frozen=True)
class Leak:
    """A secret found in a named text."""

    secret: Secret
    where: str
    line: int
    count: int

    def __str__(self) -> str:
        times = f", {self.count} times" if self.count > 1 else ""
        return f"{self.where}:{self.line}: {self.secret.hint()}{times}"


def secrets_of_file(path: Path, source: str) -> list[Secret]:
    """The values of one file: each of its lines, or the body lines of its private keys.

    Certificates and signing requests are public: a file of nothing but those gives none.
    """
    text = path.read_text(errors="replace").strip()
    if "-----BEGIN " not in text:
        lines = [line.strip() for line in text.splitlines()]
        if len(lines) == 1:
            return [Secret(source, lines[0])] if len(lines[0]) >= MIN_LENGTH else []
        return [
            Secret(f"{source} line {number}", line)
            for number, line in enumerate(lines, start=1)
            if len(line) >= MIN_LENGTH
        ]
    found = []
    in_key = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("-----BEGIN "):
            in_key = "PRIVATE KEY" in line
        elif line.startswith("-----END "):
            in_key = False
        elif in_key and len(line.strip()) >= MIN_LENGTH and ":" not in line:
            found.append(Secret(f"{source} line {number}", line.strip()))
    return found


def collect(directories: Iterable[Path], root: Path | None = None) -> list[Secret]:
    """Every secret in the files of the directories (not below them); missing ones are skipped.

    Sources are named relative to ``root`` when they are below it.
    """
    found: list[Secret] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if not path.is_file():
                continue
            source = str(path.relative_to(root) if root and path.is_relative_to(root) else path)
            found += secrets_of_file(path, source)
    return found


def leaks(secrets: Sequence[Secret], texts: Mapping[str, str]) -> list[Leak]:
    """Each secret that shows up in a text, with the line of its first appearance."""
    found = []
    for where, text in texts.items():
        for secret in secrets:
            positions = [p for form in secret.forms() if (p := text.find(form)) >= 0]
            if positions:
                first = min(positions)
                count = sum(text.count(form) for form in secret.forms())
                found.append(Leak(secret, where, text.count("\n", 0, first) + 1, count))
    return found


def check(secrets: Sequence[Secret], texts: Mapping[str, str], searched: str) -> list[str]:
    """What is wrong: no secret to compare with (``searched`` says where none was), or leaks."""
    if not secrets:
        return [f"no secret found in {searched}: the leak check has nothing to compare with"]
    return [f"secret in the output: {leak}" for leak in leaks(secrets, texts)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fail when a generated secret is in a file.")
    parser.add_argument("--secrets", type=Path, action="append", required=True, metavar="DIR")
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    secrets = collect(args.secrets)
    texts = {str(path): path.read_text(errors="replace") for path in args.files}
    problems = check(secrets, texts, ", ".join(map(str, args.secrets)))
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{len(secrets)} secrets, none in {len(texts)} files")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
