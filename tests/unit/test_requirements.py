"""requirements.yml is satisfied offline by the pinned ansible package."""

from __future__ import annotations

import json
from pathlib import Path

import ansible_collections
import pytest
import yaml
from packaging.specifiers import SpecifierSet

from tests.conftest import REPO_ROOT

COLLECTIONS = yaml.safe_load((REPO_ROOT / "requirements.yml").read_text())["collections"]


# ansible_collections is a namespace package: ansible-core adds its own internal part to it
# once some of its modules are imported, so look in every part for the collection.
def installed_manifest(namespace: str, name: str) -> Path:
    for part in ansible_collections.__path__:
        manifest = Path(part) / namespace / name / "MANIFEST.json"
        if manifest.is_file():
            return manifest
    return Path(next(iter(ansible_collections.__path__))) / namespace / name / "MANIFEST.json"


@pytest.mark.parametrize("entry", COLLECTIONS, ids=[c["name"] for c in COLLECTIONS])
def test_installed_collection_satisfies_requirement(entry: dict) -> None:
    namespace, name = entry["name"].split(".")
    manifest = installed_manifest(namespace, name)
    assert manifest.is_file(), f"{entry['name']} is not installed with the ansible package"
    version = json.loads(manifest.read_text())["collection_info"]["version"]
    assert version in SpecifierSet(entry["version"]), f"{entry['name']} {version}"


def test_every_collection_used_by_a_role_is_required() -> None:
    required = {c["name"] for c in COLLECTIONS}
    used = set()
    for path in [
        *REPO_ROOT.glob("roles/**/*.yml"),
        *REPO_ROOT.glob("playbooks/*.yml"),
        *REPO_ROOT.glob("molecule/**/*.yml"),
    ]:
        for word in path.read_text().split():
            parts = word.strip("'\":,[]{}").split(".")
            if len(parts) >= 3 and parts[0] in {"community", "ansible"} and parts[1] != "builtin":
                used.add(f"{parts[0]}.{parts[1]}")
    missing = {u for u in used if u not in required and u not in {"ansible.cfg"}}
    assert not missing, f"collections used but not in requirements.yml: {missing}"
