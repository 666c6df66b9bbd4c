"""The owncloud role's host tools: applying settings through occ, the LDAP check command."""

from __future__ import annotations

import base64
import json
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from types import ModuleType

import pytest

from tests.conftest import REPO_ROOT

SBIN = REPO_ROOT / "roles/owncloud/files/usr/local/sbin"


def load(name: str) -> ModuleType:
    loader = SourceFileLoader(name.replace("-", "_"), str(SBIN / name))
    module = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


apply_settings = load("owncloud-apply-settings")
ldap_check = load("owncloud-ldap-check")


class FakeOcc:
    """Stands in for occ: keeps an LDAP configuration and global mounts, records calls."""

    def __init__(self, ldap: dict | None = None, mounts: list[dict] | None = None) -> None:
        self.ldap = ldap
        self.mounts = mounts or []
        self.calls: list[list[str]] = []

    def __call__(self, args: list[str], stdin: str | None = None) -> str:
        self.calls.append(args)
        command = args[0]
        if command == "ldap:show-config":
            return json.dumps({} if self.ldap is None else {"s01": self.ldap})
        if command == "ldap:create-empty-config":
            self.ldap = {}
            return "Created new configuration with configID 's01'\n"
        if command == "ldap:set-config":
            self.ldap[args[2]] = args[3]
            return ""
        if command == "config:import":
            # user_ldap keeps the bind password base64-encoded as s01ldap_agent_password.
            for key, value in json.loads(stdin)["apps"]["user_ldap"].items():
                assert key == "s01ldap_agent_password", key
                self.ldap["ldapAgentPassword"] = base64.b64decode(value).decode()
            return "Config successfully imported from: \n"
        if command == "files_external:export":
            return json.dumps(self.mounts)
        if command == "files_external:delete":
            self.mounts = [m for m in self.mounts if str(m["mount_id"]) != args[2]]
            return ""
        if command == "files_external:import":
            for mount in json.loads(stdin):
                self.mounts.append(dict(mount, mount_id=len(self.mounts) + 10))
            return ""
        raise AssertionError(f"unexpected occ call {args}")


LDAP = {"ldapHost": "ldap://directory", "ldapPort": "389", "ldapAgentPassword": "s3cret"}
HOME = {
    "mount_point": "/Home",
    "storage": "\\OC\\Files\\Storage\\Local",
    "authentication_type": "null::null",
    "configuration": {"datadir": "/home/$user"},
    "options": {"enable_sharing": True, "read_only": False},
    "applicable_users": [],
    "applicable_groups": [],
}


def test_ldap_is_created_then_left_alone() -> None:
    occ = FakeOcc()
    changes = apply_settings.apply_ldap(occ, LDAP, check=False)
    assert occ.ldap == LDAP
    assert "changed: ldap configuration s01 created" in changes
    # Changes name the keys, never the values (the bind password among them).
    assert not any("s3cret" in line for line in changes)
    occ.calls.clear()
    assert apply_settings.apply_ldap(occ, LDAP, check=False) == []
    assert [c[0] for c in occ.calls] == ["ldap:show-config"]


def test_the_bind_password_never_goes_on_the_command_line() -> None:
    occ = FakeOcc(
        ldap={"ldapHost": "ldap://directory", "ldapPort": "389", "ldapAgentPassword": "old"}
    )
    changes = apply_settings.apply_ldap(occ, LDAP, check=False)
    assert changes == ["changed: ldap ldapAgentPassword"]
    assert occ.ldap["ldapAgentPassword"] == "s3cret"
    # It went through config:import on stdin; no argument of any occ call holds it.
    assert ["config:import"] in occ.calls
    assert not any("s3cret" in arg for call in occ.calls for arg in call)


def test_ldap_check_mode_reports_without_changing() -> None:
    occ = FakeOcc(ldap={"ldapHost": "ldap://old", "ldapPort": "389", "ldapAgentPassword": "s3cret"})
    assert apply_settings.apply_ldap(occ, LDAP, check=True) == ["changed: ldap ldapHost"]
    assert occ.ldap["ldapHost"] == "ldap://old"


def test_mounts_are_imported_replaced_and_kept() -> None:
    stale = dict(HOME, mount_id=3, configuration={"datadir": "/old/$user"})
    other = dict(HOME, mount_id=4, mount_point="/Scratch")
    occ = FakeOcc(mounts=[stale, other])
    shared = dict(HOME, mount_point="/Shared", configuration={"datadir": "/shared"})
    changes = apply_settings.apply_mounts(occ, [HOME, shared], check=False)
    assert changes == ["changed: mount /Home replaced", "changed: mount /Shared added"]
    points = {m["mount_point"]: m for m in occ.mounts}
    assert points["/Home"]["configuration"] == {"datadir": "/home/$user"}
    # Mounts the role does not list stay.
    assert "/Scratch" in points
    # occ exports extra options and a leading backslash-free class: still the same mount.
    for mount in occ.mounts:
        mount["options"]["encrypt"] = True
        mount["storage"] = mount["storage"].lstrip("\\")
    assert apply_settings.apply_mounts(occ, [HOME, shared], check=False) == []


@pytest.mark.parametrize(
    ("login", "expected"),
    [("alice", "(&(objectClass=posixAccount)(uid=alice))"), ("a*)(uid=*", None)],
)
def test_ldap_check_builds_the_login_search(login: str, expected: str | None) -> None:
    settings = {
        "ldapHost": "ldap://directory",
        "ldapPort": "389",
        "ldapTLS": "1",
        "ldapAgentName": "cn=owncloud,ou=services,dc=x",
        "ldapBaseUsers": "ou=people,dc=x",
        "ldapUserFilter": "(objectClass=posixAccount)",
        "ldapLoginFilter": "(&(objectClass=posixAccount)(uid=%uid))",
    }
    command = ldap_check.search_command(settings, login)
    assert command[:5] == ["ldapsearch", "-x", "-LLL", "-H", "ldap://directory:389"]
    assert "-ZZ" in command
    # The password is read from standard input, never passed as an argument.
    assert command[command.index("-y") + 1] == "/dev/stdin"
    query = command[-2]
    if expected:
        assert query == expected
    else:
        # Filter metacharacters in a login are escaped (RFC 4515), not interpreted.
        assert query == "(&(objectClass=posixAccount)(uid=a\\2a\\29\\28uid=\\2a))"
