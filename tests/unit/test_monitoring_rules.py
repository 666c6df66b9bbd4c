"""The site's alert rules: every alert is documented, labelled and unit-tested.

These are static checks of the files. promtool runs where Prometheus is installed: the role
checks the rules (`promtool check rules`) and runs their tests (`promtool test rules`) on
every converge; the monitoring scenario's verify (roles/monitoring/molecule/default) runs
`promtool check config` and the rule tests again on the monitoring host, and so does the
lab verify (molecule/lab/verify_monitoring.yml) for the rule tests.
"""

from __future__ import annotations

import yaml

from tests.conftest import REPO_ROOT

RULES_DIR = REPO_ROOT / "roles/monitoring/files/rules"
RULE_FILE = RULES_DIR / "jupyterhub-site.rules.yml"
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.test.yml"))


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULE_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def alerts_expected_by_tests() -> set[str]:
    names = set()
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    names.add(case["alertname"])
    return names


def test_every_alert_has_a_severity_and_annotations() -> None:
    for rule in alerts():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"].get("summary"), rule["alert"]
        assert rule["annotations"].get("description"), rule["alert"]


def test_every_alert_fires_in_a_rule_test() -> None:
    untested = {rule["alert"] for rule in alerts()} - alerts_expected_by_tests()
    assert not untested, f"alerts no rule test expects to fire: {sorted(untested)}"


def test_every_rule_test_loads_the_rule_file() -> None:
    for path in TEST_FILES:
        files = yaml.safe_load(path.read_text())["rule_files"]
        assert [(path.parent / f).resolve() for f in files] == [RULE_FILE.resolve()], path


def test_the_role_readme_lists_every_alert() -> None:
    readme = (REPO_ROOT / "roles/monitoring/README.md").read_text()
    for name in {rule["alert"] for rule in alerts()}:
        assert f"`{name}`" in readme, f"roles/monitoring/README.md does not list {name}"
