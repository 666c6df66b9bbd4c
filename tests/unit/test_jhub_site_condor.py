"""The HTCondor backend of the spawn form (jhub_site.condor.SiteCondorSpawner), with the real
batchspawner and JupyterHub classes. The batch commands are answered by a fake queue that
records every command line; the submit description is parsed by HTCondor's own parser and
the job it describes is checked against the htcondor role's policy."""

from __future__ import annotations

import asyncio
import json
import pwd
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import classad2
import htcondor2
import pytest
from traitlets.config import Config

from tests.conftest import REPO_ROOT
from tests.unit import test_htcondor_policy as policy

sys.path.insert(0, str(REPO_ROOT / "roles/jupyterhub/files"))

from jhub_site.condor import SiteCondorSpawner, parse_named_jobs
from jhub_site.exclusive import OtherServer

PREFIX = "jupyter-a-"


class Queue:
    """Answers condor_submit, condor_q and condor_rm like the dedicated schedd would."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)  # successive condor_q answers: dict, [], or an Exception
        self.commands: list[str] = []
        self.scripts: list[str] = []
        self.submit_error: str | None = None

    async def run(self, cmd: str, input: str | None = None, env: dict | None = None) -> str:
        self.commands.append(cmd)
        if " condor_submit " in f" {cmd} ":
            self.scripts.append(input or "")
            if self.submit_error:
                raise RuntimeError(self.submit_error)
            return "Submitting job(s).\n1 job(s) submitted to cluster 42."
        if " condor_rm " in f" {cmd} ":
            return "All jobs matching constraint have been marked for removal"
        if " condor_q " in f" {cmd} ":
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            if isinstance(answer, Exception):
                raise answer
            return json.dumps(answer if isinstance(answer, list) else [answer])
        raise AssertionError(f"unexpected command {cmd}")

    def count(self, tool: str) -> int:
        return sum(f" {tool} " in f" {c} " for c in self.commands)


def job(status: int, **extra: Any) -> dict:
    return {"JobStatus": status, "JobBatchName": f"{PREFIX}alice", **extra}


@pytest.fixture(autouse=True)
def directory_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """alice, as the hub host's NSS would know her from the site directory."""
    real = pwd.getpwnam

    def getpwnam(name: str) -> Any:
        if name == "alice":
            return SimpleNamespace(
                pw_name="alice",
                pw_uid=10001,
                pw_gid=100,
                pw_dir="/home/alice",
                pw_shell="/bin/bash",
            )
        return real(name)

    monkeypatch.setattr(pwd, "getpwnam", getpwnam)


def make(
    options: dict | None = None, name: str = "alice", queue: Queue | None = None, **config: Any
) -> SiteCondorSpawner:
    cfg = Config()
    settings = {
        "schedd_name": "jupyter@condor-cm",
        "pool": "condor-cm:9619",
        "job_name_template": PREFIX + "{username}",
        "max_cpus": 4,
        "max_memory_gb": 16,
        "max_runtime_hours": 12,
        "startup_poll_interval": 0.01,
        "query_failure_timeout": 0.1,
    } | config
    for key, value in settings.items():
        setattr(cfg.SiteCondorSpawner, key, value)
    user = SimpleNamespace(name=name, groups=[], url=f"/user/{name}/", spawners={})
    orm = SimpleNamespace(user_options=options or {}, server=None, state=None, name="")
    spawner = SiteCondorSpawner(user=user, orm_spawner=orm, config=cfg, user_options=options or {})
    spawner.get_env = lambda: {"JUPYTERHUB_API_TOKEN": "x", "PATH": "/usr/bin"}
    if queue is not None:
        spawner.run_command = queue.run
    return spawner


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- the form ------------------------------------------------------------------------------


def test_form_has_the_three_fields_with_the_site_limits() -> None:
    form = run(make().site_form())
    for field, limit in (("condor_cpus", 4), ("condor_memory", 16), ("condor_runtime", 12)):
        assert f'name="{field}"' in form
        assert f'id="{field}" name="{field}" min="1" max="{limit}"' in form
    assert 'name="condor_cpus" min="1" max="4" step="1" value="1"' in form
    assert 'name="condor_runtime" min="1" max="12" step="1" value="8"' in form


def test_form_opens_with_the_last_choices() -> None:
    form = run(make({"cpus": 3, "memory_gb": 12, "runtime_hours": 2}).site_form())
    assert 'name="condor_cpus" min="1" max="4" step="1" value="3"' in form
    assert 'name="condor_memory" min="1" max="16" step="1" value="12"' in form
    assert 'name="condor_runtime" min="1" max="12" step="1" value="2"' in form


def test_form_ignores_stored_values_it_would_not_accept() -> None:
    form = run(make({"cpus": 99, "memory_gb": "<script>", "runtime_hours": True}).site_form())
    assert 'name="condor_cpus" min="1" max="4" step="1" value="4"' in form
    assert 'name="condor_memory" min="1" max="16" step="1" value="2"' in form
    assert 'name="condor_runtime" min="1" max="12" step="1" value="8"' in form
    assert "<script>" not in form


def test_defaults_above_the_limit_are_capped() -> None:
    form = run(make(default_cpus=8, max_cpus=2).site_form())
    assert 'name="condor_cpus" min="1" max="2" step="1" value="2"' in form


# --- the options ---------------------------------------------------------------------------


def test_valid_fields_become_options() -> None:
    options = make().site_options(
        {"condor_cpus": ["2"], "condor_memory": [" 8 "], "condor_runtime": ["12"]}
    )
    assert options == {"cpus": 2, "memory_gb": 8, "runtime_hours": 12}


def test_missing_fields_take_the_defaults() -> None:
    assert make().site_options({}) == {"cpus": 1, "memory_gb": 2, "runtime_hours": 8}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("condor_cpus", "5", "condor_cpus: 5 is above this site's limit of 4 CPUs"),
        ("condor_memory", "64", "condor_memory: 64 is above this site's limit of 16 GB"),
        ("condor_runtime", "13", "condor_runtime: 13 is above this site's limit of 12 hours"),
        ("condor_cpus", "0", "condor_cpus: 0 is below the minimum of 1"),
        ("condor_cpus", "-1", "not a whole number"),
        ("condor_memory", "2.5", "not a whole number"),
        ("condor_runtime", "8h", "not a whole number"),
        ("condor_runtime", "", "not a whole number"),
        ("condor_cpus", "1" * 30, "not a whole number"),
    ],
)
def test_bad_fields_are_refused_naming_the_field_and_limit(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make().site_options({field: [value]})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cpus": 64}, "condor_cpus: 64 is above this site's limit of 4"),
        ({"memory_gb": 0}, "condor_memory: 0 is below the minimum"),
        ({"runtime_hours": "2"}, "condor_runtime: '2' is not a whole number"),
        ({"cpus": True}, "condor_cpus: 'True' is not a whole number"),
        ({"cpus": 2.0}, "not a whole number"),
        # Keys batchspawner would put into the submit description: refused, never used.
        ({"options": '+Owner = "root"'}, "Unknown options for an HTCondor job: options"),
        ({"cmd": "/bin/evil"}, "Unknown options for an HTCondor job: cmd"),
        ({"queue": "x", "nprocs": 99}, "Unknown options for an HTCondor job: nprocs, queue"),
    ],
)
def test_forged_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make().checked_options(options)


def test_start_refuses_forged_options_before_any_command() -> None:
    queue = Queue(job(2))
    spawner = make({"cpus": 64}, queue=queue)
    with pytest.raises(ValueError, match="condor_cpus: 64 is above"):
        run(spawner.start())
    assert queue.commands == []


def test_start_refuses_user_names_unfit_for_a_job_name() -> None:
    queue = Queue(job(2))
    with pytest.raises(ValueError, match="cannot name an HTCondor job"):
        run(make(name="alice;rm -rf", queue=queue).start())
    assert queue.commands == []


# --- the job -------------------------------------------------------------------------------


def submitted(options: dict | None = None) -> tuple[Queue, SiteCondorSpawner]:
    """Start a server whose job runs at once and reports its port through the wrapper
    (where batchspawner's API handler puts it), and return the fake queue."""
    queue = Queue(job(1), job(2, RemoteHost=f"slot2_1@{policy.EXEC}"))
    spawner = make(options or {"cpus": 2, "memory_gb": 4, "runtime_hours": 3}, queue=queue)
    wrapper = SimpleNamespace(port=51234)  # a stale port from the wrapper's last server
    spawner.user.spawners[""] = wrapper

    async def scenario() -> tuple[str, int]:
        async def report() -> None:
            while queue.count("condor_q") < 2:
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.03)
            wrapper.port = 40123

        reporter = asyncio.create_task(report())
        result = await spawner.start()
        await reporter
        return result

    assert run(scenario()) == (policy.EXEC, 40123)
    return queue, spawner


def test_the_job_goes_to_the_dedicated_schedd_as_the_user() -> None:
    queue, _ = submitted()
    submit = next(c for c in queue.commands if "condor_submit" in c)
    assert submit == "sudo -E -u alice condor_submit -name jupyter@condor-cm -pool condor-cm:9619"
    for cmd in queue.commands:
        assert cmd.startswith("sudo -E -u alice ")
        assert "-name jupyter@condor-cm -pool condor-cm:9619" in cmd
    query = next(c for c in queue.commands if "condor_q" in c)
    assert f"42 -constraint 'JobBatchName == \"{PREFIX}alice\"'" in query


def test_the_submit_description_as_htcondor_reads_it() -> None:
    queue, _ = submitted()
    description = htcondor2.Submit(queue.scripts[0])
    assert description["universe"] == "vanilla"
    assert description["request_cpus"] == "2"
    assert description["request_memory"] == "4096"
    assert description["allowed_job_duration"] == str(3 * 3600)
    assert description["accounting_group"] == "group_jupyter"
    assert description["accounting_group_user"] == "alice"
    assert description["MY.IsJupyterJob"] == "True"
    assert description["batch_name"] == f"{PREFIX}alice"
    assert description["initialdir"] == "/home/alice"
    assert description["getenv"] == "JUPYTERHUB_API_TOKEN,PATH"
    assert "batchspawner-singleuser" in description["arguments"]


def job_ad_from(description: htcondor2.Submit, owner: str) -> classad2.ClassAd:
    """The attributes condor_submit derives from these submit commands."""
    ad = classad2.ClassAd({"Owner": owner, "JobUniverse": 5})
    for key, value in description.items():
        if key.startswith("MY."):
            ad[key[3:]] = classad2.ExprTree(value).eval()
    ad["RequestCpus"] = int(description["request_cpus"])
    ad["RequestMemory"] = int(description["request_memory"])
    ad["AcctGroup"] = description["accounting_group"]
    ad["AcctGroupUser"] = description["accounting_group_user"]
    ad["AccountingGroup"] = f"{ad['AcctGroup']}.{ad['AcctGroupUser']}"
    ad["JobBatchName"] = description["batch_name"]
    return ad


def test_the_spawners_job_fits_the_htcondor_roles_policy(tmp_path: Path) -> None:
    """The job the spawner submits is accepted by the dedicated schedd and matched only by
    the Jupyter negotiator to the Jupyter slot, with the role's defaults on both sides."""
    queue, _ = submitted()
    ad = job_ad_from(htcondor2.Submit(queue.scripts[0]), "alice")
    cm = policy.central_manager(tmp_path / "cm")
    policy.execute_node(tmp_path / "exec")
    schedd = policy.config(cm.files["jupyter_root"], "SCHEDD")
    requirement = classad2.ExprTree(schedd["SUBMIT_REQUIREMENT_JupyterOnly"])
    assert requirement.eval(classad2.ClassAd(), ad) is True
    negotiators = {}
    for name, root in (
        ("pool", tmp_path / "cm/etc/condor/condor_config"),
        ("jupyter", cm.files["jupyter_root"]),
    ):
        params = policy.config(root, "NEGOTIATOR")
        negotiators[name] = {
            "job": params["NEGOTIATOR_JOB_CONSTRAINT"],
            "slot": params["NEGOTIATOR_SLOT_CONSTRAINT"],
        }
    slots = policy.slot_ads(policy.config(tmp_path / "exec/etc/condor/condor_config", "STARTD"))
    pairs = {
        (n, s) for n in negotiators for s in slots if policy.matches(negotiators[n], slots[s], ad)
    }
    assert pairs == {("jupyter", "jupyter"), ("jupyter", "jupyter_dynamic")}


def test_a_stale_port_of_the_wrapper_is_never_used() -> None:
    _, spawner = submitted()
    assert spawner.port == 40123


# --- failing fast --------------------------------------------------------------------------


def test_a_held_job_is_reported_with_its_reason_and_removed() -> None:
    reason = "Error from slot2_1@condor-exec-1: Failed to open '/home/alice/.jupyterhub.condor.out'"
    queue = Queue(job(1), job(5, HoldReason=reason))
    spawner = make(queue=queue)
    with pytest.raises(RuntimeError) as failure:
        run(spawner.start())
    message = str(failure.value)
    assert "Your notebook job 42 was put on hold by HTCondor" in message
    assert reason in message
    assert "removed from the queue" in message
    removal = [c for c in queue.commands if "condor_rm" in c]
    assert removal == [
        "sudo -E -u alice condor_rm -name jupyter@condor-cm -pool condor-cm:9619"
        f" -constraint 'ClusterId == 42 && JobBatchName == \"{PREFIX}alice\"'"
    ]
    assert spawner.job_id == ""


def test_a_refused_submission_says_why() -> None:
    queue = Queue(job(1))
    queue.submit_error = (
        "ERROR: Failed to commit job submission into the queue.\n"
        "ERROR: Number of submitted jobs would exceed MAX_JOBS_PER_OWNER"
    )
    with pytest.raises(
        RuntimeError, match=r"HTCondor did not take the notebook job: .*MAX_JOBS_PER_OWNER"
    ):
        run(make(queue=queue).start())


def test_a_queue_that_does_not_answer_fails_the_start_with_the_error() -> None:
    error = RuntimeError("Error: Couldn't contact the condor_collector on condor-cm:9619.")
    queue = Queue(error)
    with pytest.raises(RuntimeError) as failure:
        run(make(queue=queue).start())
    message = str(failure.value)
    assert "HTCondor's Jupyter queue jupyter@condor-cm does not answer" in message
    assert "Couldn't contact the condor_collector" in message
    assert queue.count("condor_rm") == 1


def test_a_short_queue_outage_during_the_start_is_ridden_out() -> None:
    error = RuntimeError("Error: communication error")
    queue = Queue(job(1), error, error, job(2, RemoteHost="slot2_1@condor-exec-1"))
    spawner = make(queue=queue, query_failure_timeout=30.0)
    spawner.port = 0

    async def scenario() -> tuple[str, int]:
        task = asyncio.create_task(spawner.start())
        while queue.count("condor_q") < 4:
            await asyncio.sleep(0.005)
        spawner.port = 40999
        return await task

    assert run(scenario()) == ("condor-exec-1", 40999)


def test_a_job_that_ends_before_its_server_reports_fails_at_once() -> None:
    queue = Queue(job(2, RemoteHost="slot2_1@condor-exec-1"), job(2, RemoteHost="x@y"), [])
    with pytest.raises(RuntimeError, match="ended while the hub waited for its port"):
        run(make(queue=queue).start())


def test_a_job_that_vanishes_in_the_queue_fails_at_once() -> None:
    with pytest.raises(RuntimeError, match=r"job 42 ended early; see ~/.jupyterhub.condor.err"):
        run(make(queue=Queue(job(1), [])).start())


# --- a running server ----------------------------------------------------------------------


def polled(*answers: Any) -> tuple[int | None, Queue, SiteCondorSpawner]:
    queue = Queue(*answers)
    spawner = make(queue=queue)
    spawner.job_id = "42"
    return run(spawner.poll()), queue, spawner


def test_poll_keeps_a_running_or_idle_job() -> None:
    assert polled(job(2, RemoteHost="slot2_1@h"))[0] is None
    assert polled(job(1))[0] is None


def test_poll_keeps_the_server_while_condor_q_fails() -> None:
    """Upstream CondorSpawner takes a failing condor_q for a vanished job."""
    result, queue, spawner = polled(RuntimeError("Failed to fetch ads from: <10.0.0.5:9619>"))
    assert result is None
    assert spawner.job_id == "42"
    assert queue.count("condor_rm") == 0


def test_poll_removes_a_job_that_was_held_while_running() -> None:
    result, queue, spawner = polled(job(5, HoldReason="The job exceeded allowed job duration"))
    assert result == 1
    assert queue.count("condor_rm") == 1
    assert spawner.hold_reason == "The job exceeded allowed job duration"
    assert spawner.job_id == ""


@pytest.mark.parametrize("answer", [[], job(3), job(4)], ids=["gone", "removed", "completed"])
def test_poll_reports_a_finished_job(answer: Any) -> None:
    result, queue, _ = polled(answer)
    assert result == 1
    assert queue.count("condor_rm") == 0


def test_progress_shows_the_hold_reason() -> None:
    spawner = make()
    spawner.job_id = "42"
    spawner.hold_reason = "no disk"

    async def first() -> dict:
        async for event in spawner.progress():
            return event
        raise AssertionError("no progress event")

    assert "no disk" in run(first())["message"]


def test_settings_that_do_not_fit_a_command_line_are_refused() -> None:
    queue = Queue(job(2))
    with pytest.raises(ValueError, match="schedd_name"):
        run(make(queue=queue, schedd_name="jupyter@cm; rm -rf /").start())
    assert queue.commands == []


# --- the user's jobs of the other hub instances ------------------------------------------------

PREFIXES = {"a": "jupyter-a-", "b": "jupyter-b-"}

# What the dedicated schedd holds: alice's job of instance b, alice2's (whose name starts
# alike) and a completed one. condor_q -json prints the matching ads like this (HTCondor 24).
SCHEDD = [
    {
        "ClusterId": 57,
        "ProcId": 0,
        "JobBatchName": "jupyter-b-alice",
        "JobStatus": 2,
        "RemoteHost": "slot2_1@condor-exec-1",
    },
    {
        "ClusterId": 58,
        "ProcId": 0,
        "JobBatchName": "jupyter-b-alice2",
        "JobStatus": 2,
        "RemoteHost": "slot2_2@condor-exec-1",
    },
    {"ClusterId": 41, "ProcId": 0, "JobBatchName": "jupyter-b-alice", "JobStatus": 4},
]


def condor_json(ads: list[dict]) -> str:
    return "[\n" + ",\n".join(json.dumps(ad, indent=4, sort_keys=True) for ad in ads) + "\n]\n"


def constraint_of(cmd: str) -> classad2.ExprTree:
    return classad2.ExprTree(shlex.split(cmd)[shlex.split(cmd).index("-constraint") + 1])


class Schedd:
    """Answers condor_q and condor_rm as the user by evaluating their -constraint over the
    ads of SCHEDD with HTCondor's own ClassAd library. condor_rm marks jobs removed (status
    3); they leave the queue after ``linger`` more condor_q."""

    def __init__(self, linger: int = 1) -> None:
        self.ads = [classad2.ClassAd(ad) for ad in SCHEDD]
        self.linger = linger
        self.commands: list[str] = []

    def _matching(self, cmd: str) -> list[classad2.ClassAd]:
        expr = constraint_of(cmd)
        return [ad for ad in self.ads if expr.eval(ad) is True]

    async def run(self, cmd: str, input: str | None = None, env: dict | None = None) -> str:
        self.commands.append(cmd)
        if " condor_q " in f" {cmd} ":
            for ad in self.ads:
                if ad["JobStatus"] == 3:
                    self.linger -= 1
            if self.linger < 0:
                self.ads = [ad for ad in self.ads if ad["JobStatus"] != 3]
            found = [{k: ad[k] for k in ad} for ad in self._matching(cmd)]
            return condor_json(found) if found else ""
        if " condor_rm " in f" {cmd} ":
            for ad in self._matching(cmd):
                ad["JobStatus"] = 3
            return "All jobs matching constraint have been marked for removal"
        raise AssertionError(f"unexpected command {cmd}")


def instance_a(schedd: Schedd, name: str = "alice") -> SiteCondorSpawner:
    spawner = make(name=name, instance="a", instance_prefixes=PREFIXES)
    spawner.run_command = schedd.run
    return spawner


def test_condor_q_json_of_other_instances_jobs() -> None:
    ads = parse_named_jobs(condor_json(SCHEDD), frozenset({"jupyter-b-alice"}))
    assert [(ad["ClusterId"], ad["JobStatus"]) for ad in ads] == [(57, 2)], (
        "not alice2's job, not the completed one"
    )
    assert parse_named_jobs("", frozenset({"jupyter-b-alice"})) == [], "condor_q: no match"
    with pytest.raises(ValueError, match="something else than JSON"):
        parse_named_jobs("-- Failed to fetch ads from: <10.0.0.5:9619>", frozenset({"x"}))


def test_the_other_instances_job_is_found_on_the_dedicated_schedd_as_the_user() -> None:
    schedd = Schedd()
    spawner = instance_a(schedd)
    found = run(spawner.find_other_servers())
    assert schedd.commands == [
        "sudo -E -u alice condor_q -name jupyter@condor-cm -pool condor-cm:9619"
        " -constraint 'JobBatchName == \"jupyter-b-alice\"'"
        " -json -attributes ClusterId,ProcId,JobStatus,RemoteHost,JobBatchName"
    ]
    assert [(s.instance, s.name, s.ident, s.detail) for s in found] == [
        ("b", "jupyter-b-alice", "57", "running on condor-exec-1")
    ]
    assert run(spawner.other_instance_servers()) == [
        "instance b (jupyter-b-alice: HTCondor job 57, running on condor-exec-1)"
    ]


def test_a_takeover_removes_that_job_and_waits_until_it_left_the_queue() -> None:
    schedd = Schedd(linger=1)
    spawner = instance_a(schedd)

    async def takeover() -> list[bool]:
        (server,) = await spawner.find_other_servers()
        await spawner.stop_other_server(server)
        return [await spawner.other_server_gone(server) for _ in range(3)]

    assert run(takeover()) == [False, True, True], "a removed job stays until it has ended"
    removal = [c for c in schedd.commands if "condor_rm" in c]
    assert removal == [
        "sudo -E -u alice condor_rm -name jupyter@condor-cm -pool condor-cm:9619"
        " -constraint 'ClusterId == 57 && JobBatchName == \"jupyter-b-alice\"'"
    ]
    assert [ad["ClusterId"] for ad in schedd.ads] == [58, 41], "alice2's job untouched"


@pytest.mark.parametrize(
    "server",
    [
        OtherServer("b", "jupyter-b-alice2", "HTCondor job 58", ident="58"),
        OtherServer("a", "jupyter-a-alice", "HTCondor job 12", ident="12"),
        OtherServer("b", "jupyter-b-alice", "HTCondor job 57", ident="57 || true"),
    ],
    ids=["another-user", "own-instance", "not-a-cluster-id"],
)
def test_only_the_users_jobs_of_other_instances_are_ever_removed(server: OtherServer) -> None:
    schedd = Schedd()
    with pytest.raises(ValueError, match="Not an HTCondor job of another instance"):
        run(instance_a(schedd).stop_other_server(server))
    assert schedd.commands == []


def test_a_schedd_that_does_not_answer_is_an_error_not_no_jobs() -> None:
    queue = Queue(RuntimeError("Error: Couldn't contact the condor_collector on condor-cm:9619."))
    spawner = make(queue=queue, instance="a", instance_prefixes=PREFIXES)
    with pytest.raises(RuntimeError, match="Couldn't contact"):
        run(spawner.find_other_servers())


def test_a_user_the_hub_may_not_submit_as_has_no_jobs() -> None:
    queue = Queue(RuntimeError("sudo: a terminal is required to read the password"))
    spawner = make(queue=queue, instance="a", instance_prefixes=PREFIXES)
    assert run(spawner.find_other_servers()) == []
