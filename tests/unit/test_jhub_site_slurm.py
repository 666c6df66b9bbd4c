"""The SLURM backend of the spawn form (jhub_site.slurm.SiteSlurmSpawner), with the real
batchspawner and JupyterHub classes. SLURM's answers are text as scontrol, sinfo and squeue
print it (taken from SLURM 24.11); the commands the spawner runs are recorded instead."""

from __future__ import annotations

import asyncio
import datetime as dt
import pwd
import sys
from types import SimpleNamespace

import pytest
from tornado import web
from traitlets.config import Config

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "roles/jupyterhub/files"))

from jhub_site import slurm
from jhub_site.exclusive import OtherServer
from jhub_site.slurm import Cluster, SiteSlurmSpawner, job_problem, parse_job, parse_named_jobs

NOW = dt.datetime(2026, 11, 23, 10, 0, 0)

PARTITIONS = "\n".join(
    " ".join(line.split())
    for line in (
        (
            "PartitionName=jhub AllowGroups=jupyterhub-users AllowAccounts=ALL AllowQos=ALL "
            "AllocNodes=ALL Default=NO QoS=N/A DefaultTime=7-00:00:00 DisableRootJobs=YES "
            "ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=7-00:00:00 "
            "MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=node[1-2] PriorityJobFactor=1 "
            "PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=FORCE:40 OverTimeLimit=NONE "
            "PreemptMode=OFF State=UP TotalCPUs=4 TotalNodes=2 SelectTypeParameters=NONE "
            "JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED "
            "TRES=cpu=4,mem=48210M,node=2,billing=4 "
        ),
        (
            "PartitionName=batch AllowGroups=belle2 AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL "
            "Default=YES QoS=N/A DefaultTime=08:00:00 DisableRootJobs=YES GraceTime=0 Hidden=NO "
            "MaxNodes=UNLIMITED MaxTime=08:00:00 MinNodes=0 LLN=NO Nodes=node[1-2] RootOnly=NO "
            "ReqResv=NO OverSubscribe=FORCE:1 PreemptMode=OFF State=UP TotalCPUs=4 TotalNodes=2 "
        ),
        (
            "PartitionName=gpu AllowGroups=ALL Default=NO DefaultTime=01:00:00 Hidden=NO "
            "MaxNodes=1 MaxTime=08:00:00 Nodes=gpu1 RootOnly=NO OverSubscribe=FORCE:1 State=DOWN "
            "TotalCPUs=8 TotalNodes=1 "
        ),
        (
            "PartitionName=admin AllowGroups=ALL Default=NO DefaultTime=NONE Hidden=YES "
            "MaxNodes=UNLIMITED MaxTime=UNLIMITED Nodes=ALL RootOnly=NO OverSubscribe=NO State=UP "
            "TotalCPUs=12 TotalNodes=3 "
        ),
    )
)

RESERVATIONS = "\n".join(
    " ".join(line.split())
    for line in (
        (
            "ReservationName=beamtime StartTime=2026-11-23T09:00:00 EndTime=2026-11-23T12:30:00 "
            "Duration=03:30:00 Nodes=node[1-2] NodeCnt=2 CoreCnt=4 Features=(null) "
            "PartitionName=jhub Flags=IGNORE_JOBS,SPEC_NODES,PART_NODES TRES=cpu=4 Users=(null) "
            "Groups=belle2 Accounts=(null) Licenses=(null) State=ACTIVE BurstBuffer=(null) "
            "MaxStartDelay=(null) "
        ),
        (
            "ReservationName=tomorrow StartTime=2026-11-24T09:00:00 EndTime=2026-11-24T12:00:00 "
            "Duration=03:00:00 Nodes=node1 NodeCnt=1 CoreCnt=2 PartitionName=jhub "
            "Flags=SPEC_NODES Users=(null) Groups=belle2 State=INACTIVE "
        ),
        (
            "ReservationName=carols StartTime=2026-11-23T09:00:00 EndTime=2026-11-30T09:00:00 "
            "Duration=7-00:00:00 Nodes=node1 NodeCnt=1 CoreCnt=2 PartitionName=(null) "
            "Flags=SPEC_NODES Users=carol Groups=(null) State=ACTIVE "
        ),
    )
)

SINFO = """\
jhub|up|1/0/1/2|2/0/2/4|(null)
batch|up|1/0/1/2|2/0/2/4|(null)
gpu|down|0/1/0/1|0/8/0/8|gpu:a100:4(S:0-1)
admin|up|1/1/1/3|2/8/2/12|gpu:a100:4(S:0-1)
"""

RUNNING = "jhub\njhub\njhub\nbatch\n"

OUTPUTS = {
    "partitions": PARTITIONS,
    "reservations": RESERVATIONS,
    "resources": SINFO,
    "running": RUNNING,
}

GROUPS = {
    "alice": {"users", "jupyterhub-users"},
    "bob": {"users", "jupyterhub-users", "belle2"},
    "dave": {"users"},
}


def cluster() -> Cluster:
    return Cluster.from_outputs(OUTPUTS, now=NOW)


@pytest.fixture(autouse=True)
def site(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users from a fake directory and the cluster from the text above."""

    def getpwnam(name: str) -> SimpleNamespace:
        if name not in GROUPS:
            raise KeyError(name)
        return SimpleNamespace(
            pw_name=name, pw_uid=10001, pw_gid=100, pw_dir=f"/home/{name}", pw_shell="/bin/bash"
        )

    async def read_cluster(self: SiteSlurmSpawner) -> Cluster:
        return cluster()

    monkeypatch.setattr(pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(SiteSlurmSpawner, "read_cluster", read_cluster)
    monkeypatch.setattr(SiteSlurmSpawner, "read_cluster_sync", lambda self: cluster())
    monkeypatch.setattr(SiteSlurmSpawner, "user_groups", lambda self: GROUPS[self.user.name])


def make(name: str = "alice", options: dict | None = None, **settings: object) -> SiteSlurmSpawner:
    cfg = Config()
    cfg.SiteSlurmSpawner.job_name = "jupyter-a-{username}"
    for key, value in settings.items():
        setattr(cfg.SiteSlurmSpawner, key, value)
    hub = SimpleNamespace(
        api_url="http://hub-a:8081/hub/api", public_host="", base_url="/hub/", url="/hub/"
    )
    user = SimpleNamespace(name=name, url=f"/user/{name}/", groups=[], spawners={})
    orm = SimpleNamespace(user_options={}, server=None, state=None, name="")
    return SiteSlurmSpawner(
        user=user, orm_spawner=orm, hub=hub, config=cfg, user_options=options or {}
    )


def run(coro):
    return asyncio.run(coro)


def form(**fields: str) -> dict[str, list[str]]:
    return {f"slurm_{k}": [v] for k, v in fields.items()}


# --- what SLURM prints ---------------------------------------------------------------------


def test_partitions_are_read_from_scontrol() -> None:
    parts = cluster().partitions
    jhub = parts["jhub"]
    assert (jhub.max_minutes, jhub.default_minutes, jhub.oversubscribe) == (10080, 10080, 40)
    assert jhub.allow_groups == ["jupyterhub-users"]
    assert jhub.node_limit == 2
    assert parts["gpu"].state == "DOWN"
    assert parts["gpu"].node_limit == 1
    assert parts["admin"].allow_groups is None
    assert parts["admin"].max_minutes is None
    assert parts["admin"].hidden


def test_resources_and_reservations_are_read() -> None:
    c = cluster()
    assert c.resources["gpu"].gpus_per_node == 4
    assert c.resources["jhub"].cpus_other == 2
    assert c.running == {"jhub": 3, "batch": 1}
    assert c.reservations["beamtime"].minutes_left(NOW) == 150
    assert not c.reservations["tomorrow"].active(NOW)


@pytest.mark.parametrize(
    ("reason", "fatal"),
    [
        ("ReqNodeNotAvail, UnavailableNodes:node1", True),
        ("ReqNodeNotAvail, May be reserved for other job", True),
        (
            "Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority "
            "partitions",
            True,
        ),
        ("PartitionDown", True),
        ("PartitionInactive", True),
        ("JobHeldAdmin", True),
        ("JobHeldUser", True),
        ("launch failed requeued held", True),
        ("uid 10004 not in group permitted to use this partition (jhub). groups allowed: x", True),
        ("Resources", False),
        ("Priority", False),
        ("None", False),
        ("Dependency", False),
        ("BeginTime", False),
        ("Reservation", False),
    ],
)
def test_reasons_that_need_someone_fail_the_start(reason: str, fatal: bool) -> None:
    assert (job_problem(reason) is not None) == fatal


def test_squeue_rows() -> None:
    row = parse_job("PENDING|jupyter-a-alice|n/a|ReqNodeNotAvail, UnavailableNodes:node1\n")
    assert row is not None
    assert (row.state, row.name, row.reason) == (
        "PENDING",
        "jupyter-a-alice",
        "ReqNodeNotAvail, UnavailableNodes:node1",
    )
    assert parse_job("slurm_load_jobs error: Invalid job id specified") is None
    assert parse_job("") is None


# --- the form --------------------------------------------------------------------------------


def test_form_offers_only_the_partitions_the_user_may_use() -> None:
    html = run(make("alice").site_form())
    assert 'value="jhub" selected' in html
    assert 'value="batch"' not in html, "alice is not in belle2"
    assert 'value="admin"' not in html, "hidden partitions are not offered"
    assert 'value="gpu" disabled' in html, "a partition that is down is shown, not selectable"
    assert 'name="slurm_reservation"' not in html, "alice has no reservation"
    bob = run(make("bob").site_form())
    assert 'value="batch"' in bob
    assert 'value="beamtime"' in bob
    assert 'data-hours-left="2.50"' in bob
    assert 'value="tomorrow"' not in bob, "a reservation that has not started is not offered"
    assert 'value="carols"' not in bob


def test_form_shows_free_resources_per_partition() -> None:
    html = run(make("alice").site_form())
    # jhub: 4 CPUs, 2 of them on an unavailable node, 40 notebooks per CPU, 3 running.
    assert "77 of 80 notebook slots" in html
    assert "1 unavailable" in html
    assert "Free now (SLURM, 10:00:00)" in html
    assert "gpu</td><td>down</td>" in html


def test_form_opens_with_the_last_choices_escaped() -> None:
    last = {
        "partition": "batch",
        "runtime": 120,
        "nodes": 2,
        "gpus": 0,
        "ui": "classic",
        "env": {"JUPYTER_PATH": "/home/bob/k</textarea><script>x()</script>"},
        "reservation": "",
    }
    html = run(make("bob", last).site_form())
    assert 'value="batch" selected' in html
    assert 'name="slurm_runtime" min="0.25" step="0.25" value="2"' in html
    assert 'name="slurm_nodes" min="1" step="1" value="2"' in html
    assert 'value="classic" checked' in html
    assert "<script>x()" not in html
    assert "&lt;/textarea&gt;&lt;script&gt;" in html


def test_a_user_without_partitions_is_told_so() -> None:
    dave = run(make("dave").site_form())
    assert 'value="gpu" selected disabled' in dave, "gpu allows every group"
    assert 'value="jhub"' not in dave
    html = run(make("dave", partitions=["jhub", "batch"]).site_form())
    assert "You may use no SLURM partition" in html
    with pytest.raises(ValueError, match="no SLURM partition"):
        make("dave", partitions=["jhub"]).site_options(form(partition="jhub"))


# --- checking what the user submits -------------------------------------------------------------


def test_a_good_form_becomes_checked_options() -> None:
    options = make("bob").site_options(
        {
            **form(partition="batch", runtime="1.5", nodes="2", gpus="0", ui="classic"),
            "slurm_env": ["JUPYTER_PATH=/home/bob/kernels\n# a comment\n\nMY_FLAG= a b "],
        }
    )
    assert options == {
        "partition": "batch",
        "runtime": 90,
        "nodes": 2,
        "gpus": 0,
        "ui": "classic",
        "env": {"JUPYTER_PATH": "/home/bob/kernels", "MY_FLAG": "a b"},
        "reservation": "",
    }


def test_empty_form_takes_the_partition_defaults() -> None:
    options = make("alice").site_options({})
    assert options["partition"] == "jhub"
    assert options["runtime"] == 10080
    assert options["ui"] == "lab"


@pytest.mark.parametrize(
    ("user", "fields", "message"),
    [
        ("alice", form(partition="batch"), r"slurm_partition: you may not use partition 'batch'"),
        ("alice", form(partition="admin"), r"may not use partition 'admin'"),
        ("alice", form(partition="nope"), r"may not use partition 'nope'; yours are jhub, gpu"),
        ("alice", form(partition="gpu"), r"partition gpu is down now"),
        ("alice", form(runtime="169"), r"slurm_runtime: 7 d 1 h is outside 1 min to 7 d"),
        ("bob", form(partition="batch", runtime="8.5"), r"outside 1 min to 8 h, the limit of"),
        ("alice", form(runtime="0"), r"slurm_runtime: 0 min is outside"),
        ("alice", form(runtime="-2"), r"slurm_runtime"),
        ("alice", form(runtime="soon"), r"'soon' is not a number of hours"),
        ("alice", form(runtime="nan"), r"slurm_runtime must be a number"),
        ("alice", form(nodes="3"), r"slurm_nodes: 3 is outside 1 to 2"),
        ("alice", form(nodes="0"), r"slurm_nodes: 0 is outside"),
        ("alice", form(nodes="two"), r"slurm_nodes: 'two' is not a whole number"),
        ("alice", form(gpus="1"), r"slurm_gpus: 1 is outside 0 to 0"),
        ("alice", form(ui="vim"), r"slurm_ui must be one of lab, classic"),
        ("alice", form(env="PATH=/tmp"), r"slurm_env: PATH is set by the hub"),
        ("alice", form(env="JUPYTERHUB_API_TOKEN=x"), r"JUPYTERHUB_API_TOKEN is set by the hub"),
        ("alice", form(env="LD_PRELOAD=/tmp/x.so"), r"LD_PRELOAD is set by the hub"),
        ("alice", form(env="1BAD=x"), r"'1BAD' is not a variable name"),
        ("alice", form(env="no equals sign"), r"line 1 is not NAME=value"),
        ("alice", form(reservation="beamtime"), r"'beamtime' is not an active reservation"),
        ("bob", form(reservation="tomorrow"), r"'tomorrow' is not an active reservation"),
        ("bob", form(partition="batch", reservation="beamtime"), r"is for partition jhub"),
    ],
)
def test_bad_input_is_refused_naming_the_field(user: str, fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(user).site_options(fields)


def test_too_many_or_too_long_variables_are_refused() -> None:
    many = "\n".join(f"V{i}=x" for i in range(21))
    with pytest.raises(ValueError, match="at most 20 variables"):
        make().site_options({"slurm_env": [many]})
    with pytest.raises(ValueError, match="at most 1024 characters"):
        make().site_options(form(env="V=" + "x" * 1025))


def test_a_reservation_sets_partition_and_run_time_to_its_remaining_lifetime() -> None:
    options = make("bob").site_options(form(reservation="beamtime", runtime="100"))
    assert options["partition"] == "jhub"
    assert options["reservation"] == "beamtime"
    assert options["runtime"] == 150


def test_partitions_setting_limits_what_is_offered() -> None:
    spawner = make("bob", partitions=["jhub"])
    assert 'value="batch"' not in run(spawner.site_form())
    with pytest.raises(ValueError, match="may not use partition 'batch'"):
        spawner.site_options(form(partition="batch"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"partition": "batch"}, r"may not use partition 'batch'"),
        ({"partition": ["jhub"]}, r"may not use partition 'list'"),
        ({"runtime": 10081}, r"slurm_runtime"),
        ({"runtime": "60"}, r"slurm_runtime must be a whole number"),
        ({"nodes": True}, r"slurm_nodes must be a whole number"),
        ({"env": ["A=b"]}, r"slurm_env must be a mapping"),
        ({"env": {"A": 1}}, r"slurm_env: A must be text"),
        ({"env": {"A": "x\ny"}}, r"line break"),
        ({"account": "physics"}, r"Unknown SLURM options account"),
        ({"options": "--uid=0"}, r"Unknown SLURM options options"),
    ],
)
def test_forged_options_are_refused_at_start_before_anything_is_submitted(
    options: object, message: str
) -> None:
    spawner = make("alice")
    spawner.user_options = options

    async def submit() -> str:
        raise AssertionError("a forged option reached sbatch")

    spawner.submit_batch_script = submit
    with pytest.raises(web.HTTPError, match=message) as refused:
        run(spawner.start())
    assert refused.value.status_code == 400


# --- starting, failing fast, stopping -------------------------------------------------------


class FakeSlurm:
    """Answers the commands batchspawner runs (through sudo) like SLURM would."""

    def __init__(self, states: list[str], job: str = "4242") -> None:
        self.states = states
        self.job = job
        self.commands: list[str] = []
        self.script = ""

    async def __call__(self, cmd: str, input: str | None = None, env: dict | None = None) -> str:
        self.commands.append(cmd)
        if " sbatch " in cmd:
            self.script = input or ""
            self.env = env or {}
            return self.job
        if " squeue " in cmd:
            line = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            if line.startswith("!"):
                raise RuntimeError(line[1:])
            return line
        if " scancel " in cmd:
            return ""
        raise AssertionError(f"unexpected command {cmd}")


def starting(spawner: SiteSlurmSpawner, fake: FakeSlurm, port_after: float | None = 0.05):
    """Start the spawner; the wrapper (as JupyterHub knows it) gets the port the notebook
    reports through batchspawner's API handler after port_after seconds."""
    wrapper = SimpleNamespace(child_spawner=spawner, port=31337)
    spawner.user.spawners = {"": wrapper}
    spawner.run_command = fake
    spawner.startup_poll_interval = 0.01

    async def go():
        async def report() -> None:
            while wrapper.port != 0:
                await asyncio.sleep(0.005)
            if port_after is not None:
                await asyncio.sleep(port_after)
                wrapper.port = 48123

        reporter = asyncio.ensure_future(report())
        try:
            return await asyncio.wait_for(spawner.start(), 5)
        finally:
            reporter.cancel()

    return go()


def test_start_submits_the_checked_job_as_the_user_and_returns_its_node() -> None:
    fake = FakeSlurm(
        [
            "PENDING|jupyter-a-alice|n/a|None",
            "PENDING|jupyter-a-alice|n/a|Priority",
            "RUNNING|jupyter-a-alice|node2|None",
        ]
    )
    spawner = make("alice")
    spawner.user_options = {
        "partition": "jhub",
        "runtime": 90,
        "ui": "classic",
        "env": {"MY_VAR": "it's $HOME; rm -rf /"},
    }
    assert run(starting(spawner, fake)) == ("node2", 48123)
    assert fake.commands[0] == "sudo -E -n -u alice sbatch --parsable"
    assert all(c.startswith("sudo -E -n -u alice ") for c in fake.commands)
    script = fake.script
    for line in (
        "#SBATCH --job-name=jupyter-a-alice",
        "#SBATCH --partition=jhub",
        "#SBATCH --time=90",
        "#SBATCH --nodes=1",
        "#SBATCH --chdir=/home/alice",
        'export PATH=/opt/jupyter/bin:"${PATH:-/usr/bin:/bin}"',
        "export MY_VAR='it'\"'\"'s $HOME; rm -rf /'",
        "/opt/jupyter/bin/batchspawner-singleuser /opt/jupyter/bin/jupyterhub-singleuser",
    ):
        assert line in script, line
    assert "--reservation" not in script
    assert "--gres" not in script
    assert fake.env["JUPYTERHUB_DEFAULT_URL"] == "/tree"
    assert spawner.get_state()["job_id"] == "4242"


def test_start_with_a_reservation_books_it() -> None:
    fake = FakeSlurm(["RUNNING|jupyter-a-bob|node1|None"])
    spawner = make("bob")
    spawner.user_options = {"reservation": "beamtime"}
    run(starting(spawner, fake))
    assert "#SBATCH --reservation=beamtime" in fake.script
    assert "#SBATCH --time=150" in fake.script
    assert "#SBATCH --partition=jhub" in fake.script


def test_a_drained_node_fails_the_start_at_once_with_slurms_reason() -> None:
    fake = FakeSlurm(
        [
            "PENDING|jupyter-a-alice|n/a|None",
            "PENDING|jupyter-a-alice|n/a|Nodes required for job are DOWN, DRAINED or reserved "
            "for jobs in higher priority partitions",
        ]
    )
    spawner = make("alice")
    with pytest.raises(web.HTTPError, match=r"job 4242 cannot start in partition jhub: the nodes"):
        run(starting(spawner, fake, port_after=None))
    assert fake.commands[-1] == "sudo -E -n -u alice scancel --name=jupyter-a-alice 4242"
    assert spawner.job_id == ""


def test_a_held_job_fails_the_start() -> None:
    fake = FakeSlurm(["PENDING|jupyter-a-alice|n/a|JobHeldAdmin"])
    with pytest.raises(web.HTTPError, match="held by an administrator"):
        run(starting(make("alice"), fake, port_after=None))


def test_pending_timeout_ends_a_wait_for_resources() -> None:
    fake = FakeSlurm(["PENDING|jupyter-a-alice|n/a|Resources"])
    spawner = make("alice", pending_timeout=0.05)
    with pytest.raises(web.HTTPError, match=r"still waiting after .* \(SLURM: Resources\)"):
        run(starting(spawner, fake, port_after=None))


def test_a_job_that_dies_before_reporting_its_port_ends_the_start() -> None:
    fake = FakeSlurm(
        ["RUNNING|jupyter-a-alice|node1|None", "!slurm_load_jobs error: Invalid job id specified"]
    )
    spawner = make("alice")
    spawner.startup_poll_interval = 0.01
    with pytest.raises(web.HTTPError, match=r"ended before the notebook server reported its port"):
        run(asyncio.wait_for(starting(spawner, fake, port_after=None), 10))


def test_a_job_that_vanishes_in_the_queue_ends_the_start() -> None:
    fake = FakeSlurm(["", "!slurm_load_jobs error: Invalid job id specified"])
    fake.states = ["PENDING|jupyter-a-alice|n/a|None", ""]
    with pytest.raises(web.HTTPError, match=r"ended before the notebook server started \(gone\)"):
        run(starting(make("alice"), fake, port_after=None))


def test_a_job_of_another_name_is_not_ours() -> None:
    spawner = make("alice")
    spawner.job_id = "4242"
    spawner.run_command = FakeSlurm(["RUNNING|jupyter-b-alice|node1|None"])
    assert run(spawner.poll()) == 1, "instance b's job with a reused id is not a's server"


def test_stop_cancels_only_a_job_of_this_instance_name() -> None:
    fake = FakeSlurm(["!slurm_load_jobs error: Invalid job id specified"])
    spawner = make("alice")
    spawner.job_id = "4242"
    spawner.run_command = fake
    run(spawner.stop())
    assert fake.commands[0] == "sudo -E -n -u alice scancel --name=jupyter-a-alice 4242"
    spawner.job_id = ""
    fake.commands.clear()
    run(spawner.cancel_batch_job())
    assert fake.commands == [], "no scancel --name without a job id"


def test_user_names_that_cannot_be_accounts_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    spawner = make("Alice;rm")
    with pytest.raises(ValueError, match="cannot run SLURM jobs"):
        spawner.user_groups()
    spawner = make("nosuchuser")
    with pytest.raises(ValueError, match="not known to this hub host's directory"):
        spawner.user_groups()


def test_describe_reports_what_the_start_loop_sees() -> None:
    assert slurm.describe("PENDING|jupyter-a-alice|n/a|PartitionDown") == (
        '{"state": "PENDING", "reason": "PartitionDown", "problem": "the partition is down"}'
    )


# --- the user's jobs of the other hub instances ------------------------------------------------

PREFIXES = {"a": "jupyter-a-", "b": "jupyter-b-"}

# squeue --noheader --format='%i|%j|%T|%B' (SLURM 24.11). squeue matches --name exactly; the
# parser does not rely on it.
OTHER_JOBS = """\
4301|jupyter-b-alice|RUNNING|node2
4307|jupyter-b-alice|PENDING|n/a
4288|jupyter-b-alice|COMPLETING|node1
4290|jupyter-b-alice|CANCELLED|node1
4302|jupyter-b-alice2|RUNNING|node1
"""


class FakeQueue:
    """Answers squeue and scancel (through sudo) with the jobs of OTHER_JOBS."""

    def __init__(self, squeue: str | Exception = OTHER_JOBS, scancel_error: str = "") -> None:
        self.squeue = squeue
        self.scancel_error = scancel_error
        self.commands: list[str] = []

    async def __call__(self, cmd: str, input: str | None = None, env: dict | None = None) -> str:
        self.commands.append(cmd)
        if " squeue " in cmd:
            if isinstance(self.squeue, Exception):
                raise self.squeue
            return self.squeue
        if " scancel " in cmd:
            if self.scancel_error:
                raise RuntimeError(self.scancel_error)
            return ""
        raise AssertionError(f"unexpected command {cmd}")


def instance_a(queue: FakeQueue, name: str = "alice") -> SiteSlurmSpawner:
    spawner = make(name, instance="a", instance_prefixes=PREFIXES)
    spawner.run_command = queue
    return spawner


def test_squeue_lines_of_other_instances_jobs() -> None:
    jobs = parse_named_jobs(OTHER_JOBS, frozenset({"jupyter-b-alice"}))
    assert [(j.job_id, j.state, j.detail()) for j in jobs] == [
        ("4301", "RUNNING", "running on node2"),
        ("4307", "PENDING", "pending"),
        ("4288", "COMPLETING", "completing on node1"),
    ], "not the cancelled job, not alice2's"
    assert parse_named_jobs("", frozenset({"jupyter-b-alice"})) == []
    assert parse_named_jobs("slurm_load_jobs error: x", frozenset({"jupyter-b-alice"})) == []


def test_the_other_instances_jobs_are_found_as_the_user() -> None:
    queue = FakeQueue()
    spawner = instance_a(queue)
    found = run(spawner.find_other_servers())
    assert queue.commands == [
        "sudo -E -n -u alice squeue --noheader --user=alice --name=jupyter-b-alice "
        "--format='%i|%j|%T|%B'"
    ]
    assert [(s.instance, s.name, s.ident) for s in found] == [
        ("b", "jupyter-b-alice", "4301"),
        ("b", "jupyter-b-alice", "4307"),
        ("b", "jupyter-b-alice", "4288"),
    ]
    assert run(spawner.other_instance_servers())[0] == (
        "instance b (jupyter-b-alice: SLURM job 4301, running on node2)"
    )


def test_a_queue_that_does_not_answer_is_an_error_not_no_jobs() -> None:
    spawner = instance_a(FakeQueue(RuntimeError("slurm_load_jobs error: Unable to contact")))
    with pytest.raises(RuntimeError, match="Unable to contact"):
        run(spawner.find_other_servers())


def test_a_takeover_cancels_that_job_by_name_user_and_id() -> None:
    queue = FakeQueue()
    spawner = instance_a(queue)

    async def takeover() -> bool:
        server = (await spawner.find_other_servers())[0]
        await spawner.stop_other_server(server)
        queue.squeue = "4307|jupyter-b-alice|PENDING|n/a\n"
        return await spawner.other_server_gone(server)

    assert run(takeover()) is True
    assert queue.commands[1] == (
        "sudo -E -n -u alice scancel --name=jupyter-b-alice --user=alice 4301"
    )


def test_a_job_that_ended_meanwhile_is_no_error_to_cancel() -> None:
    spawner = instance_a(
        FakeQueue(
            scancel_error="scancel: error: Kill job error on job id 4301: Invalid job id specified"
        )
    )
    server = OtherServer("b", "jupyter-b-alice", "SLURM job 4301", ident="4301")
    run(spawner.stop_other_server(server))


@pytest.mark.parametrize(
    "server",
    [
        OtherServer("b", "jupyter-b-alice2", "SLURM job 4302", ident="4302"),
        OtherServer("a", "jupyter-a-alice", "SLURM job 4300", ident="4300"),
        OtherServer("b", "jupyter-b-alice", "SLURM job 1", ident="4301; scancel -u alice"),
    ],
    ids=["another-user", "own-instance", "not-a-job-id"],
)
def test_only_the_users_jobs_of_other_instances_are_ever_cancelled(server: OtherServer) -> None:
    queue = FakeQueue()
    with pytest.raises(ValueError, match="Not a SLURM job of another instance"):
        run(instance_a(queue).stop_other_server(server))
    assert queue.commands == []


def test_no_prefixes_no_squeue() -> None:
    queue = FakeQueue()
    spawner = make("alice")
    spawner.run_command = queue
    assert run(spawner.find_other_servers()) == []
    assert queue.commands == []


def test_a_user_the_hub_may_not_run_slurm_commands_as_has_no_jobs() -> None:
    """Not in jupyterhub_slurm_groups: sudo refuses, and no hub could have submitted a job
    as this user, so a start on another backend is not blocked."""
    spawner = instance_a(FakeQueue(RuntimeError("sudo: a password is required")))
    assert run(spawner.find_other_servers()) == []
