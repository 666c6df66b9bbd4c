"""The Jupyter fast lane of the htcondor role, checked with HTCondor's own code.

The role's templates are rendered with the role's defaults (Ansible's templar, the same
filters the role uses) into a temporary tree per host; HTCondor's Python bindings
(``htcondor2``/``classad2`` from PyPI) then load each host's configuration the way a daemon
of that subsystem would (``CONDOR_CONFIG``, ``set_subsystem``, ``reload_config``) and
evaluate the ClassAd expressions against job and slot ads.
"""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import classad2
import htcondor2
import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader, init_plugin_loader
from ansible.template import Templar, trust_as_template

from tests.ansible_vars import trusted
from tests.conftest import REPO_ROOT, run, tail

ROLE = REPO_ROOT / "roles/htcondor"
CM = "condor-cm"
EXEC = "condor-exec-1"
HUB = "hub-a"

# What Debian's vendor /etc/condor/condor_config sets (the htcondor package owns that file;
# the role only adds drop-ins to /etc/condor/config.d).
VENDOR_ROOT = """\
RELEASE_DIR = /usr
LOCAL_DIR = /var
REQUIRE_LOCAL_CONFIG_FILE = false
LOCAL_CONFIG_DIR = {config_d}
RUN = $(LOCAL_DIR)/run/condor
LOG = $(LOCAL_DIR)/log/condor
LOCK = $(LOCAL_DIR)/lock/condor
SPOOL = $(LOCAL_DIR)/spool/condor
EXECUTE = $(LOCAL_DIR)/lib/condor/execute
"""

init_plugin_loader()
filter_loader.add_directory(str(REPO_ROOT / "filter_plugins"))


class Host:
    """One host's HTCondor configuration, rendered from the role into ``root``."""

    def __init__(self, root: Path, name: str, groups: list[str], **overrides: Any) -> None:
        self.root = root
        variables: dict[str, Any] = {}
        for part in ("defaults/main.yml", "vars/main.yml"):
            variables |= trusted(yaml.safe_load((ROLE / part).read_text()))
        variables |= {
            "inventory_hostname": name,
            "group_names": groups,
            "groups": {
                "htcondor_central_manager": [CM],
                "htcondor_execute": [EXEC],
                "jupyterhub": [HUB],
            },
            "ansible_managed": "Ansible managed",
            "playbook_dir": str(root),
            "__htcondor_config_dir": str(root / "etc/condor"),
            "__htcondor_jupyter_config_dir": str(root / "etc/condor-jupyter"),
        }
        variables |= trusted(overrides)
        self.templar = Templar(loader=DataLoader(), variables=variables)
        self.files: dict[str, Path] = {k: Path(v) for k, v in self.var("__htcondor_files").items()}

    def var(self, name: str) -> Any:
        return self.templar.template(trust_as_template("{{ " + name + " }}"))

    def render(self, key: str, template: str) -> Path:
        source = (ROLE / "templates" / template).read_text()
        dest = self.files[key]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(self.templar.template(trust_as_template(source)))
        return dest

    def vendor_root(self) -> Path:
        root = self.root / "etc/condor/condor_config"
        root.parent.mkdir(parents=True, exist_ok=True)
        root.write_text(VENDOR_ROOT.format(config_d=self.root / "etc/condor/config.d"))
        return root


def central_manager(root: Path, **overrides: Any) -> Host:
    host = Host(root, CM, ["htcondor", "htcondor_central_manager"], **overrides)
    host.render("pool", "etc/condor/config.d/10-jhub-pool.conf.j2")
    host.render("central_manager", "etc/condor/config.d/20-jhub-central-manager.conf.j2")
    host.render("jupyter_root", "etc/condor-jupyter/condor_config.j2")
    host.render("jupyter", "etc/condor-jupyter/config.d/20-jhub-jupyter.conf.j2")
    host.vendor_root()
    return host


def execute_node(root: Path, **overrides: Any) -> Host:
    host = Host(root, EXEC, ["htcondor", "htcondor_execute"], **overrides)
    host.render("pool", "etc/condor/config.d/10-jhub-pool.conf.j2")
    host.render("execute", "etc/condor/config.d/20-jhub-execute.conf.j2")
    host.vendor_root()
    return host


def hub(root: Path, **overrides: Any) -> Host:
    host = Host(root, HUB, ["jupyterhub"], **overrides)
    host.render("pool", "etc/condor/config.d/10-jhub-pool.conf.j2")
    host.render("submit", "etc/condor/config.d/20-jhub-submit.conf.j2")
    host.vendor_root()
    return host


def config(root_file: Path, subsystem: str) -> Any:
    """HTCondor's view of a configuration, as the given daemon reads it."""
    os.environ["CONDOR_CONFIG"] = str(root_file)
    htcondor2.set_subsystem(subsystem)
    htcondor2.reload_config()
    return htcondor2.param


def expr(text: str) -> classad2.ExprTree:
    return classad2.ExprTree(str(text))


def job_ad(
    owner: str = "alice",
    *,
    jupyter: bool | None = True,
    group: str | None = "group_jupyter",
    group_user: str | None = None,
    attribute: str = "IsJupyterJob",
) -> classad2.ClassAd:
    """A job ad as condor_submit writes it (accounting_group(_user) -> AcctGroup, ...)."""
    ad = classad2.ClassAd(
        {
            "Owner": owner,
            "JobUniverse": 5,
            "RequestCpus": 1,
            "RequestMemory": 2048,
            "RequestDisk": 1024,
        }
    )
    if jupyter is not None:
        ad[attribute] = jupyter
    if group is not None:
        user = group_user or owner
        ad["AcctGroup"] = group
        ad["AcctGroupUser"] = user
        ad["AccountingGroup"] = f"{group}.{user}"
    return ad


def slot_ads(params: Any, attribute: str = "IsJupyterSlot") -> dict[str, classad2.ClassAd]:
    """The slot ads the startd of an execute node advertises, from its configuration:
    the global value of the slot attribute for the batch slot (type 1), the
    SLOT_TYPE_2_ value for the Jupyter slot and its dynamic slots."""
    start = expr(params["START"])

    def slot(type_id: int, name: str, memory: int, value: str) -> classad2.ClassAd:
        ad = classad2.ClassAd(
            {
                "Name": name,
                "SlotTypeID": type_id,
                "Cpus": 4,
                "Memory": memory,
                "Disk": 100000,
                "Offline": False,
            }
        )
        ad[attribute] = expr(value).eval()
        ad["START"] = start
        return ad

    batch = params[attribute]
    jupyter = params[f"SLOT_TYPE_2_{attribute}"]
    return {
        "batch": slot(1, f"slot1@{EXEC}", 8000, batch),
        "jupyter": slot(2, f"slot2@{EXEC}", 4000, jupyter),
        "jupyter_dynamic": slot(-2, f"slot2_1@{EXEC}", 2048, jupyter),
    }


@pytest.fixture(scope="module")
def cm(tmp_path_factory: pytest.TempPathFactory) -> Host:
    return central_manager(tmp_path_factory.mktemp("cm"))


@pytest.fixture(scope="module")
def execute(tmp_path_factory: pytest.TempPathFactory) -> Host:
    return execute_node(tmp_path_factory.mktemp("exec"))


@pytest.fixture
def negotiators(cm: Host) -> dict[str, dict[str, str]]:
    """The job and slot constraints of both negotiators of the central manager."""
    out = {}
    for name, root in (
        ("pool", cm.files["pool"].parents[1] / "condor_config"),
        ("jupyter", cm.files["jupyter_root"]),
    ):
        params = config(root, "NEGOTIATOR")
        out[name] = {
            "job": params.get("NEGOTIATOR_JOB_CONSTRAINT") or "True",
            "slot": params.get("NEGOTIATOR_SLOT_CONSTRAINT") or "True",
            "rank": params.get("NEGOTIATOR_PRE_JOB_RANK"),
        }
    return out


@pytest.fixture
def slots(execute: Host) -> dict[str, classad2.ClassAd]:
    return slot_ads(config(execute.files["pool"].parents[1] / "condor_config", "STARTD"))


def matches(negotiator: dict[str, str], slot: classad2.ClassAd, job: classad2.ClassAd) -> bool:
    """Would this negotiator hand this slot to this job? Its job constraint sees the job ad
    alone, its slot constraint the slot ad alone; then the slot's START must accept the job."""
    return (
        expr(negotiator["job"]).eval(job) is True
        and expr(negotiator["slot"]).eval(slot) is True
        and expr(str(slot["START"])).eval(slot, job) is True
    )


# --- the two negotiators -------------------------------------------------------------------


def test_a_jupyter_job_matches_only_the_dedicated_negotiator_and_the_jupyter_slot(
    negotiators: dict, slots: dict
) -> None:
    job = job_ad()
    pairs = {
        (neg, slot)
        for neg in negotiators
        for slot in slots
        if matches(negotiators[neg], slots[slot], job)
    }
    assert pairs == {("jupyter", "jupyter"), ("jupyter", "jupyter_dynamic")}


@pytest.mark.parametrize(
    "job",
    [
        job_ad(jupyter=None, group=None),
        job_ad(jupyter=False, group=None),
        job_ad(jupyter=None, group="group_physics"),
        # Claiming the Jupyter group does not make a job a Jupyter job.
        job_ad(jupyter=None),
    ],
    ids=["plain", "attribute-false", "other-group", "jupyter-group-only"],
)
def test_an_ordinary_job_never_gets_the_jupyter_slot(
    negotiators: dict, slots: dict, job: classad2.ClassAd
) -> None:
    pairs = {
        (neg, slot)
        for neg in negotiators
        for slot in slots
        if matches(negotiators[neg], slots[slot], job)
    }
    assert pairs == {("pool", "batch")}


def test_job_constraints_need_no_target_scope(negotiators: dict) -> None:
    """NEGOTIATOR_JOB_CONSTRAINT is evaluated against the job ad alone: a TARGET. reference
    would be undefined there and silently drop every job."""
    for name, negotiator in negotiators.items():
        assert "TARGET." not in negotiator["job"].upper(), name
        for job in (job_ad(), job_ad(jupyter=None, group=None)):
            assert isinstance(expr(negotiator["job"]).eval(job), bool), name


def test_a_target_scoped_job_constraint_would_negotiate_nothing(tmp_path: Path) -> None:
    """Why the constraints name the attribute bare: with TARGET. the negotiator would find
    the expression undefined for every job and negotiate none (the pitfall DESY names)."""
    host = central_manager(
        tmp_path,
        htcondor_jupyter_config_overrides={
            "NEGOTIATOR_JOB_CONSTRAINT": "(TARGET.IsJupyterJob =?= True)"
        },
    )
    constraint = config(host.files["jupyter_root"], "NEGOTIATOR")["NEGOTIATOR_JOB_CONSTRAINT"]
    assert expr(constraint).eval(job_ad()) is not True


def test_the_jupyter_negotiator_prefers_the_node_with_most_free_memory(negotiators: dict) -> None:
    rank = expr(negotiators["jupyter"]["rank"])
    job = job_ad()

    def ad(memory: int, offline: bool = False) -> classad2.ClassAd:
        return classad2.ClassAd({"Memory": memory, "Cpus": 8, "Offline": offline})

    roomy, tight, offline = ad(64000), ad(4000), ad(128000, offline=True)
    assert rank.eval(roomy, job) > rank.eval(tight, job) > rank.eval(offline, job)


def test_the_pool_negotiator_keeps_its_defaults_otherwise(cm: Host) -> None:
    params = config(cm.files["pool"].parents[1] / "condor_config", "NEGOTIATOR")
    assert params.get("GROUP_NAMES") is None
    assert "NEGOTIATOR" in params["DAEMON_LIST"].split()
    assert "SCHEDD" not in params["DAEMON_LIST"].split()


# --- the execute node ----------------------------------------------------------------------


def test_only_jupyter_jobs_start_on_the_jupyter_slot_and_only_there(slots: dict) -> None:
    jupyter, ordinary = job_ad(), job_ad(jupyter=None, group=None)
    assert expr(str(slots["jupyter"]["START"])).eval(slots["jupyter"], jupyter) is True
    assert expr(str(slots["jupyter"]["START"])).eval(slots["jupyter"], ordinary) is False
    assert expr(str(slots["batch"]["START"])).eval(slots["batch"], ordinary) is True
    assert expr(str(slots["batch"]["START"])).eval(slots["batch"], jupyter) is False


@pytest.mark.parametrize(("factor", "fraction"), [(1.0, 0.5), (2.5, 0.25), (0.1, 1.0)])
def test_the_jupyter_slot_is_one_over_committed_partitionable_slot(
    tmp_path: Path, factor: float, fraction: float
) -> None:
    host = execute_node(
        tmp_path,
        htcondor_jupyter_slot_cpu_factor=factor,
        htcondor_jupyter_slot_memory_fraction=fraction,
    )
    params = config(tmp_path / "etc/condor/condor_config", "STARTD")
    cpus, memory = int(params["DETECTED_CPUS"]), int(params["DETECTED_MEMORY"])
    jupyter_cpus = math.ceil(cpus * factor)
    jupyter_memory = math.ceil(memory * fraction)
    assert int(params["JUPYTER_SLOT_CPUS"]) == jupyter_cpus >= 1
    assert int(params["NUM_CPUS"]) == cpus + jupyter_cpus
    assert int(params["MEMORY"]) == memory + jupyter_memory
    assert int(params["NUM_SLOTS_TYPE_1"]) == 1
    assert int(params["NUM_SLOTS_TYPE_2"]) == 1
    assert params["SLOT_TYPE_1"].startswith(f"cpus={cpus}, memory={memory},")
    assert params["SLOT_TYPE_2"].startswith(f"cpus={jupyter_cpus}, memory={jupyter_memory},")
    for slot_type in (1, 2):
        assert expr(params[f"SLOT_TYPE_{slot_type}_PARTITIONABLE"]).eval() is True
    assert "STARTD" in params["DAEMON_LIST"].split()
    assert host.var("htcondor_jupyter_slot_attribute") in params["STARTD_ATTRS"].split()


def test_the_execute_node_reports_to_both_collectors(execute: Host) -> None:
    params = config(execute.files["pool"].parents[1] / "condor_config", "STARTD")
    collectors = [c.strip() for c in params["COLLECTOR_HOST"].split(",")]
    assert collectors == [f"{CM}:9618", f"{CM}:9619"]


# --- the Jupyter queue ---------------------------------------------------------------------


def test_the_jupyter_group_has_no_limit(cm: Host) -> None:
    params = config(cm.files["jupyter_root"], "NEGOTIATOR")
    assert params["GROUP_NAMES"] == "group_jupyter"
    assert float(params["GROUP_QUOTA_DYNAMIC_group_jupyter"]) == 1.0
    assert expr(params["GROUP_ACCEPT_SURPLUS_group_jupyter"]).eval() is True
    assert params.get("GROUP_QUOTA_group_jupyter") is None  # no static cap either


def test_one_jupyter_job_per_user(cm: Host) -> None:
    assert int(config(cm.files["jupyter_root"], "SCHEDD")["MAX_JOBS_PER_OWNER"]) == 1


def test_the_per_user_limit_follows_the_variable(tmp_path: Path) -> None:
    host = central_manager(tmp_path, htcondor_jupyter_max_jobs_per_user=3)
    assert int(config(host.files["jupyter_root"], "SCHEDD")["MAX_JOBS_PER_OWNER"]) == 3


@pytest.mark.parametrize(
    ("job", "accepted"),
    [
        (job_ad(), True),
        (job_ad(jupyter=None), False),
        (job_ad(group="group_physics"), False),
        (job_ad(group=None), False),
        # Charging one's notebook to a colleague is refused.
        (job_ad(group_user="bob"), False),
    ],
    ids=["jupyter", "unmarked", "other-group", "no-group", "other-user"],
)
def test_the_dedicated_schedd_only_takes_jupyter_jobs(
    cm: Host, job: classad2.ClassAd, accepted: bool
) -> None:
    params = config(cm.files["jupyter_root"], "SCHEDD")
    names = params["SUBMIT_REQUIREMENT_NAMES"].split()
    schedd = classad2.ClassAd({"Name": f"jupyter@{CM}"})
    verdict = all(
        expr(params[f"SUBMIT_REQUIREMENT_{name}"]).eval(schedd, job) is True for name in names
    )
    assert verdict is accepted
    reason = expr(params[f"SUBMIT_REQUIREMENT_{names[0]}_REASON"]).eval()
    assert "Jupyter" in reason


def test_the_jupyter_instance_has_its_own_daemons_port_and_directories(cm: Host) -> None:
    pool = dict(config(cm.files["pool"].parents[1] / "condor_config", "MASTER").items())
    jupyter = dict(config(cm.files["jupyter_root"], "MASTER").items())
    assert jupyter["DAEMON_LIST"].replace(",", " ").split() == [
        "MASTER",
        "COLLECTOR",
        "NEGOTIATOR",
        "SCHEDD",
    ]
    assert jupyter["MASTER_NAME"] == jupyter["SCHEDD_NAME"] == f"jupyter@{CM}"
    assert jupyter["COLLECTOR_HOST"] == f"{CM}:9619"
    assert pool["COLLECTOR_HOST"] == f"{CM}:9618"
    assert int(jupyter["SHARED_PORT_PORT"]) == 9619
    assert int(pool.get("SHARED_PORT_PORT", 9618)) == 9618
    for knob in ("LOG", "SPOOL", "LOCK", "RUN", "EXECUTE", "LOCAL_DIR"):
        assert jupyter[knob] != pool[knob], knob
        assert "condor-jupyter" in jupyter[knob], knob
    # One pool: the same security domain and signing key as the pool instance.
    for knob in (
        "UID_DOMAIN",
        "SEC_PASSWORD_DIRECTORY",
        "SEC_TOKEN_SYSTEM_DIRECTORY",
        "SEC_DEFAULT_AUTHENTICATION",
        "ALLOW_DAEMON",
    ):
        assert jupyter[knob] == pool[knob], knob
    assert jupyter["SEC_DEFAULT_AUTHENTICATION"].upper() == "REQUIRED"


def test_the_hub_reaches_the_dedicated_schedd_and_proves_the_user(tmp_path: Path, cm: Host) -> None:
    hub(tmp_path)
    client = dict(config(tmp_path / "etc/condor/condor_config", "TOOL").items())
    assert client["JUPYTER_SCHEDD_NAME"] == f"jupyter@{CM}"
    assert client["JUPYTER_COLLECTOR_HOST"] == f"{CM}:9619"
    assert "MUNGE" in client["SEC_CLIENT_AUTHENTICATION_METHODS"].replace(",", " ").split()
    schedd = config(cm.files["jupyter_root"], "SCHEDD")
    assert "MUNGE" in schedd["SEC_DEFAULT_AUTHENTICATION_METHODS"].replace(",", " ").split()


def test_renamed_attributes_keep_the_policy(tmp_path: Path) -> None:
    names = {
        "htcondor_jupyter_job_attribute": "IsNotebook",
        "htcondor_jupyter_slot_attribute": "NotebookSlot",
        "htcondor_jupyter_accounting_group": "group_notebooks",
    }
    host_cm = central_manager(tmp_path / "cm", **names)
    execute_node(tmp_path / "exec", **names)
    negs = {}
    for name, root in (
        ("pool", tmp_path / "cm/etc/condor/condor_config"),
        ("jupyter", host_cm.files["jupyter_root"]),
    ):
        params = config(root, "NEGOTIATOR")
        negs[name] = {
            "job": params["NEGOTIATOR_JOB_CONSTRAINT"],
            "slot": params["NEGOTIATOR_SLOT_CONSTRAINT"],
        }
    slots = slot_ads(config(tmp_path / "exec/etc/condor/condor_config", "STARTD"), "NotebookSlot")
    notebook = job_ad(attribute="IsNotebook", group="group_notebooks")
    ordinary = job_ad(jupyter=None, group=None)
    for job, expected in ((notebook, "jupyter"), (ordinary, "pool")):
        winners = {(n, s) for n in negs for s in slots if matches(negs[n], slots[s], job)}
        assert {n for n, _ in winners} == {expected}
    params = config(host_cm.files["jupyter_root"], "NEGOTIATOR")
    assert float(params["GROUP_QUOTA_DYNAMIC_group_notebooks"]) == 1.0


def test_overrides_reach_the_files(tmp_path: Path) -> None:
    host = central_manager(
        tmp_path,
        htcondor_jupyter_config_overrides={"NEGOTIATOR_MIN_INTERVAL": 2},
        htcondor_pool_config_overrides={"CONDOR_ADMIN": "root@example.org"},
    )
    params = config(host.files["jupyter_root"], "NEGOTIATOR")
    assert int(params["NEGOTIATOR_MIN_INTERVAL"]) == 2
    assert params["CONDOR_ADMIN"] == "root@example.org"


def test_every_rendered_file_starts_with_the_managed_comment(cm: Host, execute: Host) -> None:
    for host in (cm, execute):
        for path in host.files.values():
            if path.exists():
                assert path.read_text().startswith("#\n# Ansible managed"), path
                assert not re.search(r"\{\{|\{%", path.read_text()), path


# --- preflight -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("htcondor_jupyter_slot_cpu_factor=0", "htcondor_jupyter_slot_cpu_factor"),
        ("htcondor_jupyter_max_jobs_per_user=0", "htcondor_jupyter_max_jobs_per_user"),
    ],
)
def test_preflight_refuses_bad_values_naming_the_variable(extra: str, named: str) -> None:
    result = run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "inventories/lab",
            "playbooks/preflight.yml",
            "-e",
            extra,
        ],
        log_name=f"htcondor-preflight-{named}",
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, tail(result)
    assert named in output, tail(result)
    assert "Gathering Facts" not in output
