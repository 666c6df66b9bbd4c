"""Every playbook a molecule scenario runs exists.

Molecule 26 treats a missing verify (or prepare, side_effect, cleanup) playbook as a
"Missing playbook" step and still passes the scenario, so a scenario without its verify.yml
would test nothing and stay green. No container is started here: the files are looked up
as molecule resolves them (ansible.playbooks of molecule.yml, else <step>.yml in the
scenario directory). The runner's own check of molecule's output is tested here too.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.molecule.test_scenarios import missing_playbooks, scenario_id, scenarios

BASE_CONFIG = REPO_ROOT / ".config" / "molecule" / "config.yml"
# Every scenario converges and verifies, whatever its test_sequence says.
ALWAYS = ("converge", "verify")
# Steps molecule skips without failing when their playbook is missing.
WHEN_IN_SEQUENCE = ("prepare", "side_effect", "cleanup")


def _config(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def required_playbooks(scenario_dir: Path) -> dict[str, Path]:
    """The playbook of each step the scenario's test sequence needs, by step name.

    A step named in ansible.playbooks (or the legacy provisioner.playbooks) runs that file,
    relative to the scenario directory; otherwise molecule looks for <step>.yml there.
    """
    base, own = _config(BASE_CONFIG), _config(scenario_dir / "molecule.yml")
    named: dict[str, str] = {}
    for config in (base, own):
        named.update((config.get("ansible") or {}).get("playbooks") or {})
        named.update((config.get("provisioner") or {}).get("playbooks") or {})
    sequences = [(c.get("scenario") or {}).get("test_sequence") for c in (own, base)]
    sequence = next((s for s in sequences if s), [])
    steps = [*ALWAYS, *(s for s in WHEN_IN_SEQUENCE if s in sequence), *named]
    return {step: scenario_dir / named.get(step, f"{step}.yml") for step in dict.fromkeys(steps)}


@pytest.mark.parametrize(
    ("project", "scenario"), scenarios(), ids=[scenario_id(p, s) for p, s in scenarios()]
)
def test_scenario_playbooks_exist(project: Path, scenario: str) -> None:
    scenario_dir = project / "molecule" / scenario
    missing = [
        f"{step}: {os.path.relpath(path.resolve(), REPO_ROOT)}"
        for step, path in required_playbooks(scenario_dir).items()
        if not path.is_file()
    ]
    assert not missing, (
        f"molecule scenario {scenario_dir.relative_to(REPO_ROOT)} lacks the playbook of "
        + ", ".join(missing)
        + " (molecule would report 'Missing playbook' and pass without running that step)"
    )


def test_named_playbooks_and_listed_steps_are_required(tmp_path: Path) -> None:
    scenario_dir = tmp_path / "molecule" / "default"
    scenario_dir.mkdir(parents=True)
    (scenario_dir / "molecule.yml").write_text(
        "ansible:\n  playbooks:\n    verify: ../shared/check.yml\n"
        "    create: ../shared/create.yml\n"
        "scenario:\n  test_sequence: [create, prepare, converge, verify, destroy]\n"
    )
    assert required_playbooks(scenario_dir) == {
        "converge": scenario_dir / "converge.yml",
        "verify": scenario_dir / "../shared/check.yml",
        "prepare": scenario_dir / "prepare.yml",
        "create": scenario_dir / "../shared/create.yml",
    }
    # Without prepare in its sequence, a scenario needs no prepare.yml.
    (scenario_dir / "molecule.yml").write_text("scenario:\n  test_sequence: [converge, verify]\n")
    assert set(required_playbooks(scenario_dir)) == {"converge", "verify"}


def test_the_runner_fails_a_run_that_skipped_a_step_for_a_missing_playbook() -> None:
    # The step's log line and its DETAILS line, in the shape molecule 26.10 writes them
    # (molecule/logger.py, molecule/reporting/rendering.py), for a verify.yml that is gone.
    step = "[default > verify] Executed: Missing playbook (Remove from test_sequence to suppress)"
    details = "default > verify: Executed: Missing playbook (Remove from test_sequence to suppress)"
    output = (
        "INFO     [default > verify] Executing\n"
        f"WARNING  {step}\n"
        f"DETAILS\n{details}\n"
        "default                   : actions=8  successful=7  disabled=0  skipped=0"
        "  missing=1  failed=0\n"
    )
    assert missing_playbooks(output) == [f"WARNING  {step}", details]
    assert missing_playbooks("default > verify: Executed: Successful\n") == []


# Settings of ansible.cfg that change what a run does; molecule writes its own copy of the
# configuration, so the scenarios must carry the same values to test what operators run.
SHARED_SETTINGS = ("forks", "gathering", "timeout", "force_handlers", "show_task_path_on_failure")


def test_molecule_runs_with_the_settings_operators_run() -> None:
    operators = configparser.ConfigParser()
    operators.read(REPO_ROOT / "ansible.cfg")
    molecule = _config(BASE_CONFIG)["ansible"]["cfg"]["defaults"]
    differ = {
        key: (operators["defaults"].get(key), molecule.get(key))
        for key in SHARED_SETTINGS
        if str(operators["defaults"].get(key)).lower() != str(molecule.get(key)).lower()
    }
    assert differ == {}, f"ansible.cfg and .config/molecule/config.yml differ: {differ}"
