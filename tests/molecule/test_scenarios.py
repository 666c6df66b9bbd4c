"""Every molecule scenario, full sequence: create, converge, idempotence, verify, destroy.

The whole-site lab scenario is listed first (it takes longest: with pytest -n 2 it runs
beside the role scenarios), on its own copy of the lab (container prefix ci-, its own ports)
so that a lab in use is left alone. After each scenario, its whole Ansible output must not
hold any generated secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, failed_tasks, run, tail
from tests.secrets import leaks

LAB_TEST_ENV = {
    "JHUB_LAB_PREFIX": "ci-",
    "JHUB_LAB_HTTPS_PORT": "18443",
    "JHUB_LAB_HTTP_PORT": "18080",
    "JHUB_LAB_TEST_HTTPS_PORT": "19443",
}


def scenarios() -> list[tuple[Path, str]]:
    """(project directory, scenario name) of every scenario, the site's first."""
    found = [(REPO_ROOT, p.parent.name) for p in sorted(REPO_ROOT.glob("molecule/*/molecule.yml"))]
    found += [
        (p.parents[2], p.parent.name)
        for p in sorted(REPO_ROOT.glob("roles/*/molecule/*/molecule.yml"))
    ]
    return found


@pytest.mark.molecule
@pytest.mark.parametrize(
    ("project", "scenario"),
    scenarios(),
    ids=[f"{p.name if p != REPO_ROOT else 'site'}-{s}" for p, s in scenarios()],
)
def test_scenario(project: Path, scenario: str) -> None:
    label = f"molecule-{project.name}-{scenario}"
    env = LAB_TEST_ENV if project == REPO_ROOT else {}
    result = run(["molecule", "test", "-s", scenario], cwd=project, env=env, log_name=label)
    assert result.returncode == 0, (
        f"molecule test -s {scenario} in {project} failed; whole log in .cache/logs/{label}.log\n"
        + tail(result, 150)
        + "\n=== the failed tasks ===\n"
        + failed_tasks(result)
    )
    found = leaks({f"{label}.log": result.stdout + result.stderr})
    assert not found, "secrets in the Ansible output:\n" + "\n".join(found)
