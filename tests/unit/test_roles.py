"""Every role documents and validates its variables the same way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from tests.conftest import REPO_ROOT

ROLES = sorted(p.name for p in (REPO_ROOT / "roles").iterdir() if p.is_dir())


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def spec_options(role: str) -> dict:
    return load(REPO_ROOT / "roles" / role / "meta/argument_specs.yml")["argument_specs"]["main"][
        "options"
    ]


def defaults_files(role: str) -> list[Path]:
    """defaults/main.yml, or every file of a defaults/main/ directory (Ansible loads both)."""
    base = REPO_ROOT / "roles" / role / "defaults"
    if (base / "main").is_dir():
        return sorted((base / "main").glob("*.yml"))
    return [base / "main.yml"]


def defaults(role: str) -> dict:
    merged: dict = {}
    for path in defaults_files(role):
        merged |= load(path)
    return merged


@pytest.mark.parametrize("role", ROLES)
def test_role_has_its_parts(role: str) -> None:
    for part in (
        "README.md",
        "meta/main.yml",
        "meta/argument_specs.yml",
        "tasks/main.yml",
    ):
        assert (REPO_ROOT / "roles" / role / part).is_file(), f"roles/{role}/{part} is missing"
    assert all(p.is_file() for p in defaults_files(role)), f"roles/{role}/defaults/main is missing"


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_specified_prefixed_and_commented(role: str) -> None:
    options = spec_options(role)
    for path in defaults_files(role):
        text = path.read_text().splitlines()
        for name in load(path):
            assert name.startswith(f"{role}_"), f"{name} lacks the role prefix {role}_"
            assert name in options, f"{name} is not in roles/{role}/meta/argument_specs.yml"
            line = next(i for i, t in enumerate(text) if t.startswith(f"{name}:"))
            assert text[line - 1].startswith("#"), f"{name} has no comment line above it"


@pytest.mark.parametrize("role", ROLES)
def test_every_specified_option_has_a_default_or_is_required(role: str) -> None:
    role_defaults = defaults(role)
    for name, option in spec_options(role).items():
        assert option.get("required") or name in role_defaults, (
            f"{name} is neither required nor given a default in roles/{role}/defaults/"
        )
        assert option.get("description"), f"{name} has no description in the argument spec"


@pytest.mark.parametrize("role", ROLES)
def test_literal_defaults_satisfy_the_spec(role: str) -> None:
    literal = {k: v for k, v in defaults(role).items() if "{{" not in str(v)}
    options = {k: v for k, v in spec_options(role).items() if k in literal}
    result = ArgumentSpecValidator(options).validate(literal)
    assert not result.error_messages, result.error_messages


@pytest.mark.parametrize("role", ROLES)
def test_readme_lists_every_variable(role: str) -> None:
    readme = (REPO_ROOT / "roles" / role / "README.md").read_text()
    for name in spec_options(role):
        assert f"`{name}`" in readme, f"roles/{role}/README.md does not document {name}"


def test_preflight_validates_every_role() -> None:
    mapping = load(REPO_ROOT / "roles/preflight/vars/main.yml")["__preflight_role_groups"]
    assert set(mapping) == set(ROLES) - {"preflight"}


def test_site_wide_group_vars_are_not_shadowed_by_an_inventory() -> None:
    """Top-level group_vars/all wins over an inventory's group_vars/all (playbook group_vars
    rank higher): a value set in both would be silently ignored in the inventory."""
    site = set()
    for path in (REPO_ROOT / "group_vars/all").glob("*.yml"):
        site |= set(load(path))
    for inventory in (REPO_ROOT / "inventories").iterdir():
        for path in (inventory / "group_vars/all").glob("*.yml"):
            text = path.read_text()
            clash = {k for k in site if re.search(rf"^{re.escape(k)}:", text, re.M)}
            assert not clash, f"{path} sets {clash}, which group_vars/all overrides"
