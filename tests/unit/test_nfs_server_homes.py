"""The nfs_server role's site-nfs-homes script: who gets directories, and how they are made."""

from __future__ import annotations

import grp
import importlib.util
import os
import pwd
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "roles/nfs_server/files/site-nfs-homes.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("site_nfs_homes", SCRIPT)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


homes = load()


def passwd(name: str, uid: int, gid: int) -> pwd.struct_passwd:
    return pwd.struct_passwd((name, "*", uid, gid, name, f"/home/{name}", "/bin/bash"))


GROUPS = {
    "jupyterhub-users": grp.struct_group(
        ("jupyterhub-users", "*", 20001, ["alice", "bob", "ghost"])
    ),
    "belle2": grp.struct_group(("belle2", "*", 20003, ["bob", "Bad;Name"])),
}
USERS = {
    "alice": passwd("alice", 10001, 100),
    "bob": passwd("bob", 10002, 100),
    # Primary group jupyterhub-users, not a listed member.
    "carol": passwd("carol", 10003, 20001),
    "daemonish": passwd("daemonish", 999, 20003),
    "dave": passwd("dave", 10004, 100),
}


def lookup_group(name: str) -> grp.struct_group:
    return GROUPS[name]


def lookup_user(name: str) -> pwd.struct_passwd:
    return USERS[name]


def everyone() -> list[pwd.struct_passwd]:
    return list(USERS.values())


def members(groups: list[str]) -> tuple[list, list[str], list[str]]:
    return homes.members(groups, 1000, lookup_group, lookup_user, everyone)


def test_members_and_primary_group_users_get_directories() -> None:
    users, warnings, errors = members(["jupyterhub-users"])
    assert [(u.name, u.uid, u.gid) for u in users] == [
        ("alice", 10001, 100),
        ("bob", 10002, 100),
        ("carol", 10003, 20001),
    ]
    assert warnings == ["user ghost of group jupyterhub-users is unknown to NSS, skipped"]
    assert errors == []


def test_unsafe_names_and_system_uids_are_skipped() -> None:
    users, warnings, _ = members(["belle2"])
    assert [u.name for u in users] == ["bob"]
    assert any("'Bad;Name'" in w for w in warnings)
    assert any("daemonish has UID 999" in w for w in warnings)


def test_a_user_in_two_groups_appears_once() -> None:
    users, _, _ = members(["jupyterhub-users", "belle2"])
    assert [u.name for u in users].count("bob") == 1


def test_an_unknown_group_is_an_error() -> None:
    users, _, errors = members(["jupyterhub-users", "nosuchgroup"])
    assert len(users) == 3
    assert errors == ["group nosuchgroup is unknown to NSS (is the directory reachable?)"]


def me() -> object:
    return homes.User("me", os.getuid(), os.getgid())


def test_a_missing_directory_is_created_with_owner_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "me"
    assert homes.ensure_directory(path, me(), 0o700, dry_run=True) == [
        f"would create {path} ({os.getuid()}:{os.getgid()}, 0700)"
    ]
    assert not path.exists()
    assert homes.ensure_directory(path, me(), 0o700, dry_run=False)
    st = path.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, os.getuid())
    assert homes.ensure_directory(path, me(), 0o700, dry_run=False) == []


def test_a_wrong_mode_is_set_back(tmp_path: Path) -> None:
    path = tmp_path / "me"
    path.mkdir(mode=0o777)
    path.chmod(0o777)
    assert homes.ensure_directory(path, me(), 0o755, dry_run=False) == [
        f"set the mode of {path} to 0755"
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_the_mask_of_an_access_acl_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A home 0700 with ownCloud's ACL entry for www-data shows 0770 (the mask): setting it
    back to 0700 would take www-data's access away again; owner and other bits still count."""
    path = tmp_path / "me"
    path.mkdir()
    path.chmod(0o775)
    monkeypatch.setattr(homes, "has_access_acl", lambda p: p == path)
    assert homes.ensure_directory(path, me(), 0o700, dry_run=False) == [
        f"set the mode of {path} to 0770"
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o770
    assert homes.ensure_directory(path, me(), 0o700, dry_run=False) == []


def test_a_link_or_file_in_the_way_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o777)
    target.chmod(0o777)
    (tmp_path / "me").symlink_to(target)
    assert homes.ensure_directory(tmp_path / "me", me(), 0o700, dry_run=False) == [
        f"{tmp_path / 'me'} is not a directory, left alone"
    ]
    assert stat.S_IMODE(target.stat().st_mode) == 0o777


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to a user's IDs needs root")
def test_group_and_other_write_is_removed_in_a_published_tree(tmp_path: Path) -> None:
    tree = tmp_path / "shared"
    (tree / "sub").mkdir(parents=True)
    notebook = tree / "sub" / "nb.ipynb"
    notebook.write_text("{}")
    notebook.chmod(0o666)
    private = tree / "private.txt"
    private.write_text("x")
    private.chmod(0o600)
    lines = homes.strip_write(tree, me(), dry_run=False)
    assert lines == [f"remove group/other write from {notebook}"]
    assert stat.S_IMODE(notebook.stat().st_mode) == 0o644
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_the_configuration_is_read_with_octal_modes(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(
        '{"home_root": "/srv/nfs/home", "shared_root": "/srv/nfs/shared", "groups": ["g"],'
        ' "min_uid": 1000, "home_mode": "0700", "shared_mode": "0755", "strip_shared_write": true}'
    )
    loaded = homes.load_config(config)
    assert (loaded.home_mode, loaded.shared_mode, loaded.groups) == (0o700, 0o755, ("g",))
    assert homes.main(["--config", str(tmp_path / "missing.json")]) == 2
