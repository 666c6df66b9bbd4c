"""The leak check of the molecule scenarios (tests/secrets.py) fails when it should.

Planted secrets in fake logs: found (naming the file, the line and the secret without
showing it), passed over when absent, and a check with no secret to compare with fails.
The scenarios' wiring is checked too: molecule keeps the directories the check reads.
"""

from __future__ import annotations

import base64
import fnmatch
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.molecule.test_scenarios import EPHEMERAL_ROOT, WITHOUT_SECRETS, scenarios, secret_dirs
from tests.secrets import SCENARIO_SECRET_DIRS, Secret, check, collect, leaks, main

# Made up for these tests, in the shape of generated ones (32 letters and digits).
PASSWORD = "Xq7fakeGeneratedPassword01234567"
TOKEN = "Tk9anotherFakeSecretValue9876543"
# Not a usable key: a PEM frame around made-up base64 body lines, as a key file looks.
KEY_LINES = ["MHcCAQEEIFakeBodyLineOfAPrivateKeyNotRealAtAll0123456789abcdefoAoG", "CCqGSM49AwEH"]
KEY = "-----BEGIN EC PRIVATE KEY-----\n" + "\n".join(KEY_LINES) + "\n-----END EC PRIVATE KEY-----\n"
CERT = (
    "-----BEGIN CERTIFICATE-----\nMIIBfakePublicCertificateBodyLine0123456789\n"
    "-----END CERTIFICATE-----\n"
)


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "ldap-user-alice").write_text(PASSWORD + "\n")
    (directory / "jupyterhub-a-proxy-token").write_text(TOKEN)
    (directory / "site-ca.key").write_text(KEY)
    (directory / "site-ca.pem").write_text(CERT)
    (directory / "short").write_text("abc")
    return directory


def log(*lines: str) -> str:
    return "\n".join(["PLAY [Converge] ***", "TASK [ldap : Create the user entries] ***", *lines])


def test_a_planted_secret_fails_the_check(secrets_dir: Path) -> None:
    secrets = collect([secrets_dir])
    texts = {"fake.log": log("ok: [ldap-server] => (item=alice)", f'  msg: "bind with {PASSWORD}"')}
    problems = check(secrets, texts, str(secrets_dir))
    assert len(problems) == 1
    problem = problems[0]
    # It names the log, the line, the secret's file and its first characters...
    assert "fake.log:4:" in problem
    assert str(secrets_dir / "ldap-user-alice") in problem
    assert f"({PASSWORD[:3]}...)" in problem
    # ...and never the secret itself.
    assert PASSWORD not in problem
    assert PASSWORD[:4] not in problem


def test_a_clean_log_passes(secrets_dir: Path) -> None:
    secrets = collect([secrets_dir])
    texts = {"fake.log": log("changed: [ldap-server] => (item=alice)", "ok: [ldap-server]")}
    assert check(secrets, texts, str(secrets_dir)) == []


def test_nothing_to_compare_with_fails(tmp_path: Path) -> None:
    empty = tmp_path / "secrets"
    empty.mkdir()
    (empty / "short").write_text("abc")
    secrets = collect([empty, tmp_path / "missing"])
    assert secrets == []
    problems = check(secrets, {"fake.log": log(f"anything, even {PASSWORD}")}, "the dirs")
    assert problems == ["no secret found in the dirs: the leak check has nothing to compare with"]


def test_keys_give_their_body_lines_and_certificates_nothing(secrets_dir: Path) -> None:
    secrets = collect([secrets_dir], root=secrets_dir.parent)
    assert {s.value for s in secrets} == {PASSWORD, TOKEN, *KEY_LINES}
    assert {s.source for s in secrets if s.value == KEY_LINES[0]} == {"secrets/site-ca.key line 2"}
    found = leaks(secrets, {"fake.log": log("-----BEGIN EC PRIVATE KEY-----", KEY_LINES[0])})
    assert [str(leak) for leak in found] == ["fake.log:4: secrets/site-ca.key line 2 (MHc...)"]


def test_an_encoded_secret_is_found_too(secrets_dir: Path) -> None:
    secrets = collect([secrets_dir])
    slurped = base64.b64encode((TOKEN + "\n").encode()).decode()
    result = {"content": slurped, "encoding": "base64"}
    found = leaks(secrets, {"slurp.log": log(f"ok: [hub] => {result}")})
    assert [leak.secret.value for leak in found] == [TOKEN]


def test_every_appearance_is_counted() -> None:
    secret = Secret("ldap-admin", PASSWORD)
    found = leaks([secret], {"a.log": f"x\n{PASSWORD} and {PASSWORD}\n", "b.log": "clean"})
    assert [str(leak) for leak in found] == [f"a.log:2: ldap-admin ({PASSWORD[:3]}...), 2 times"]


def test_the_command_fails_on_a_leak_without_printing_it(
    secrets_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    leaky = tmp_path / "leaky.log"
    leaky.write_text(log(f"token={TOKEN}"))
    clean = tmp_path / "clean.log"
    clean.write_text(log("ok: [hub]"))
    assert main(["--secrets", str(secrets_dir), str(clean)]) == 0
    assert main(["--secrets", str(secrets_dir), str(clean), str(leaky)]) == 1
    output = capsys.readouterr()
    assert "leaky.log:3:" in output.err
    assert TOKEN not in output.out + output.err
    assert main(["--secrets", str(tmp_path / "missing"), str(clean)]) == 1


def test_molecule_keeps_what_the_check_reads() -> None:
    """Molecule's prune spares safe_files only; the check reads these directories."""
    base = yaml.safe_load((REPO_ROOT / ".config/molecule/config.yml").read_text())
    patterns = base["driver"]["safe_files"]
    for name in SCENARIO_SECRET_DIRS:
        path = str(EPHEMERAL_ROOT / "molecule-ldap-default" / name / "ldap-admin")
        assert any(fnmatch.fnmatch(path, pattern) for pattern in patterns), (name, patterns)
    # Molecule's own files are still pruned.
    state = str(EPHEMERAL_ROOT / "molecule-ldap-default" / "frontdoor-switch.yml")
    assert not any(fnmatch.fnmatch(state, pattern) for pattern in patterns)


def test_scenarios_generate_their_secrets_where_the_check_reads() -> None:
    for path in REPO_ROOT.glob("roles/*/molecule/*/*.yml"):
        for line in path.read_text().splitlines():
            if line.strip().startswith("site_secrets_dir:"):
                value = line.split(":", 1)[1].strip()
                assert value == '"{{ molecule_ephemeral_directory }}/secrets"', (path, value)
    ephemeral = EPHEMERAL_ROOT / "x"
    role = REPO_ROOT / "roles" / "ldap"
    assert ephemeral / "secrets" in secret_dirs(role, "default", ephemeral)
    assert REPO_ROOT / "inventories/lab/.secrets" in secret_dirs(REPO_ROOT, "lab", ephemeral)
    labels = {f"molecule-{p.name}-{s}" for p, s in scenarios()}
    assert set(WITHOUT_SECRETS) <= labels
