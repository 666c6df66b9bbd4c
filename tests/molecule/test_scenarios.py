"""Every molecule scenario, its whole test_sequence (create, converge, idempotence, verify...).

The whole-site lab scenario runs first (it takes longest: with pytest -n 2 it runs
beside the role scenarios), on its own copy of the lab (container prefix ci-, its own ports)
so that a lab in use is left alone.

After each scenario, neither its whole output nor a tracked file may hold a secret it
generated. Each scenario runs in an ephemeral directory of its own under
.cache/molecule/, emptied first; molecule keeps its secrets/, pki/ and vault/ past the
final destroy (safe_files in .config/molecule/config.yml), so the check compares with
what this run generated (tests/secrets.py). The lab scenario's secrets are the lab
inventory's (inventories/lab/.secrets). A scenario that generates no secret fails the
check, unless WITHOUT_SECRETS says why it has none.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, failed_tasks, run, tail
from tests.secrets import SCENARIO_SECRET_DIRS, Secret, check, collect, leaks

LAB_TEST_ENV = {
    "JHUB_LAB_PREFIX": "ci-",
    "JHUB_LAB_HTTPS_PORT": "18443",
    "JHUB_LAB_HTTP_PORT": "18080",
    "JHUB_LAB_TEST_HTTPS_PORT": "19443",
}
# The whole lab, full sequence, stops here at the latest: CI's limit is 90 minutes for the
# whole suite, and the lab runs from its start beside everything else.
LAB_TIMEOUT = 85 * 60
# Ephemeral directories of the scenarios the suite runs, one per scenario.
EPHEMERAL_ROOT = REPO_ROOT / ".cache" / "molecule"
# Scenarios that handle no secret at all, and why (the check has nothing to compare there).
WITHOUT_SECRETS = {
    "molecule-publishing-default": "the publishing role has no password, token or key",
}


def scenarios() -> list[tuple[Path, str]]:
    """(project directory, scenario name) of every scenario, the site's first."""
    found = [(REPO_ROOT, p.parent.name) for p in sorted(REPO_ROOT.glob("molecule/*/molecule.yml"))]
    found += [
        (p.parents[2], p.parent.name)
        for p in sorted(REPO_ROOT.glob("roles/*/molecule/*/molecule.yml"))
    ]
    return found


def scenario_id(project: Path, scenario: str) -> str:
    """The test id of a scenario: its role (site for the repository's own) and its name."""
    return f"{project.name if project != REPO_ROOT else 'site'}-{scenario}"


def missing_playbooks(output: str) -> list[str]:
    """The lines of a molecule run's output that report a step skipped for want of its playbook.

    Molecule 26 passes such a run; tests/molecule/test_scenario_playbooks.py catches the
    missing file before any container starts, and this catches what that check cannot see.
    """
    return [line.strip() for line in output.splitlines() if "Missing playbook" in line]


def secret_dirs(project: Path, scenario: str, ephemeral: Path) -> list[Path]:
    """Where a scenario's generated secrets are after its run.

    Besides the ephemeral directory: the lab inventory's for the lab scenario, and the
    roles' fallback (<playbook dir>/.secrets) for a scenario that sets no site_secrets_dir.
    """
    found = [ephemeral / name for name in SCENARIO_SECRET_DIRS]
    found.append(project / "molecule" / scenario / ".secrets")
    if project == REPO_ROOT:
        found.append(REPO_ROOT / "inventories" / "lab" / ".secrets")
    return found


def tracked_files() -> dict[str, str]:
    """The text of every file git tracks, by path."""
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    return {
        name: (REPO_ROOT / name).read_text(errors="replace")
        for name in names
        if name and (REPO_ROOT / name).is_file()
    }


@pytest.mark.molecule
@pytest.mark.parametrize(
    ("project", "scenario"),
    scenarios(),
    ids=[scenario_id(p, s) for p, s in scenarios()],
)
def test_scenario(project: Path, scenario: str) -> None:
    label = f"molecule-{project.name}-{scenario}"
    ephemeral = EPHEMERAL_ROOT / label
    shutil.rmtree(ephemeral, ignore_errors=True)
    env = {
        **(LAB_TEST_ENV if project == REPO_ROOT else {}),
        "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral),
    }
    result = run(
        ["molecule", "test", "-s", scenario],
        cwd=project,
        env=env,
        log_name=label,
        timeout=LAB_TIMEOUT if project == REPO_ROOT else 3600,
    )
    dirs = secret_dirs(project, scenario, ephemeral)
    secrets: list[Secret] = collect(dirs, root=REPO_ROOT)
    texts = {f".cache/logs/{label}.log": result.stdout + result.stderr, **tracked_files()}
    # A failed run may have stopped before generating anything; what it printed is checked.
    found = [f"secret in the output: {leak}" for leak in leaks(secrets, texts)]
    assert result.returncode == 0, (
        # The failed tasks come first: a report may show only the two ends of a long message,
        # and the end of a molecule run is the destroy step.
        f"molecule test -s {scenario} in {project} failed; whole log in .cache/logs/{label}.log\n"
        + "=== the failed tasks ===\n"
        + (failed_tasks(result) or "(none printed a fatal: or failed: line)")
        + ("\n=== secrets in the output ===\n" + "\n".join(found) if found else "")
        + "\n=== the end of the output ===\n"
        + tail(result, 60)
    )
    skipped = missing_playbooks(result.stdout + result.stderr)
    assert not skipped, (
        f"molecule test -s {scenario} in {project} skipped steps for a missing playbook:\n"
        + "\n".join(skipped)
    )
    if label in WITHOUT_SECRETS:
        assert not secrets, (
            f"{label} generated secrets ({', '.join(s.source for s in secrets)}): "
            "remove it from WITHOUT_SECRETS so that its output is checked"
        )
        return
    searched = ", ".join(str(d.relative_to(REPO_ROOT)) for d in dirs)
    problems = check(secrets, texts, searched)
    assert not problems, "generated secrets and the Ansible output:\n" + "\n".join(problems)
