"""Tests for filter_plugins/slurm_config.py: SLURM partitions and reservations from YAML."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from tests.conftest import REPO_ROOT, load_module

sc = load_module("slurm_config_filter", REPO_ROOT / "filter_plugins/slurm_config.py")

JHUB = {"name": "jhub", "jupyter": True, "allow_groups": ["jupyterhub-users"]}
BATCH = {"name": "batch", "default": True}


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        (0, 0),
        (90, 90),
        ("90", 90),
        ("30:00", 30),
        ("30:01", 31),
        ("8:00:00", 480),
        ("08:30:00", 510),
        ("1:00:01", 61),
        ("7-00:00:00", 10080),
        ("7-0", 10080),
        ("1-12", 2160),
        ("1-12:30", 2190),
        ("2-00:00:30", 2881),
        ("UNLIMITED", None),
        ("infinite", None),
    ],
)
def test_slurm_time_minutes_reads_every_slurm_format(value: object, minutes: int | None) -> None:
    assert sc.slurm_time_minutes(value) == minutes


@pytest.mark.parametrize("value", [-1, "-5", "-1-00:00:00", "8h", "", "1:2:3:4", None, True, 1.5])
def test_slurm_time_minutes_refuses_negative_and_garbage(value: object) -> None:
    with pytest.raises(AnsibleFilterError):
        sc.slurm_time_minutes(value, "max_time")


def test_slurm_time_is_canonical() -> None:
    assert sc.slurm_time("7-0") == "7-00:00:00"
    assert sc.slurm_time(480) == "08:00:00"
    assert sc.slurm_time("1:00:01") == "01:01:00"
    assert sc.slurm_time("UNLIMITED") == "UNLIMITED"


def test_defaults_make_the_jhub_partition_of_the_paper() -> None:
    parts = sc.slurm_partitions_normalized([JHUB, BATCH])
    jhub, batch = parts
    assert jhub["oversubscribe"] == 40
    assert jhub["max_time"] == jhub["default_time"] == "7-00:00:00"
    assert jhub["max_minutes"] == 10080
    assert batch["oversubscribe"] == 1
    assert batch["max_time"] == "08:00:00"
    lines = sc.slurm_partition_lines(parts)
    assert lines == [
        "PartitionName=jhub AllowGroups=jupyterhub-users Default=NO DefaultTime=7-00:00:00 "
        "MaxTime=7-00:00:00 Nodes=ALL OverSubscribe=FORCE:40 State=UP",
        "PartitionName=batch AllowGroups=ALL Default=YES DefaultTime=08:00:00 MaxTime=08:00:00 "
        "Nodes=ALL OverSubscribe=FORCE:1 State=UP",
    ]


def test_site_policy_and_partition_settings_are_applied() -> None:
    parts = sc.slurm_partitions_normalized(
        [
            {**JHUB, "nodes": ["node1", "node2"], "max_nodes": 1},
            {
                "name": "short",
                "max_time": 60,
                "default_time": "0:30:00",
                "settings": {"Hidden": "YES"},
            },
        ],
        jupyter_oversubscribe=20,
        jupyter_max_time="3-00:00:00",
        batch_max_time="2:00:00",
        known_nodes=["node1", "node2"],
    )
    lines = sc.slurm_partition_lines(parts)
    assert "OverSubscribe=FORCE:20" in lines[0]
    assert "MaxTime=3-00:00:00" in lines[0]
    assert "Nodes=node1,node2" in lines[0]
    assert "MaxNodes=1" in lines[0]
    assert lines[1].endswith("Hidden=YES MaxTime=01:00:00 Nodes=ALL OverSubscribe=FORCE:1 State=UP")
    assert "DefaultTime=00:30:00" in lines[1]


@pytest.mark.parametrize(
    ("partitions", "needle"),
    [
        ([{**JHUB, "oversubscribe": 0}], "slurm_partitions[0] (jhub): oversubscribe is 0"),
        ([{**JHUB, "oversubscribe": "40"}], "oversubscribe is '40'"),
        ([{**BATCH, "oversubscribe": 4}], "only notebook partitions"),
        ([{**JHUB, "max_time": "-1"}], "slurm_partitions[0] (jhub): max_time: '-1' is negative"),
        ([{**JHUB, "max_time": -60}], "is negative"),
        ([{**JHUB, "max_time": "8-00:00:00"}], "exceeds the site's limit for notebook partitions"),
        ([{**BATCH, "max_time": "9:00:00"}], "slurm_batch_max_time"),
        ([{**BATCH, "max_time": "UNLIMITED"}], "must be a limited run time"),
        (
            [{**BATCH, "default_time": "9:00:00", "max_time": "8:00:00"}],
            "default_time 09:00:00 exceeds",
        ),
        ([{**BATCH, "nodes": ["node9"]}], "node9 are not compute nodes"),
        ([{**BATCH, "nodes": []}], "nodes must be ALL"),
        ([{**BATCH, "allow_groups": "users"}], "allow_groups must be a list"),
        ([{**BATCH, "state": "OPEN"}], "state 'OPEN'"),
        ([{**BATCH, "colour": "red"}], "unknown keys colour"),
        ([{**BATCH, "settings": {"MaxTime": "1"}}], "settings may not set MaxTime"),
        ([{**BATCH, "settings": {"Hidden": "YES # x"}}], "not a plain value"),
        ([{"name": "bad name"}], "name 'bad name'"),
        ([{"name": "DEFAULT"}], "not DEFAULT"),
        ([BATCH, BATCH], "names used twice: batch"),
        ([BATCH, {**JHUB, "default": True}], "only one partition may be the default"),
        ([], "must be a non-empty list"),
        (["jhub"], "must be a mapping"),
    ],
)
def test_problems_name_the_variable_and_the_fix(partitions: list, needle: str) -> None:
    problems = sc.slurm_partition_problems(partitions, known_nodes=["node1"])
    assert any(needle in p for p in problems), problems
    with pytest.raises(AnsibleFilterError, match=r"slurm_partitions|slurm_batch"):
        sc.slurm_partitions_normalized(partitions, known_nodes=["node1"])


def test_bad_policy_is_refused_naming_the_role_variable() -> None:
    assert sc.slurm_partition_problems([JHUB], jupyter_oversubscribe=0) == [
        "slurm_jhub_oversubscribe is 0; it must be a whole number of notebook jobs per core, "
        "1 or more (default 40)"
    ]
    assert "slurm_batch_max_time" in sc.slurm_partition_problems([JHUB], batch_max_time="-1")[0]
    assert "slurm_jhub_max_time" in sc.slurm_partition_problems([JHUB], jupyter_max_time=0)[0]


def test_good_partitions_have_no_problems() -> None:
    assert sc.slurm_partition_problems([JHUB, BATCH]) == []
    # -e slurm_jhub_oversubscribe=20 arrives as text.
    assert (
        sc.slurm_partitions_normalized([JHUB], jupyter_oversubscribe="20")[0]["oversubscribe"] == 20
    )


def test_partition_lines_want_normalised_partitions() -> None:
    with pytest.raises(AnsibleFilterError, match="slurm_partitions_normalized"):
        sc.slurm_partition_lines([JHUB])


def test_conf_lines_are_sorted_and_typed() -> None:
    assert sc.slurm_conf_lines(
        {
            "SlurmctldHost": "ctl",
            "EnforcePartLimits": "ALL",
            "SchedulerParameters": ["sched_interval=10", "bf_interval=10"],
            "Empty": "",
            "Unset": None,
            "DisableRootJobs": True,
            "SlurmctldPort": 6817,
        }
    ) == [
        "DisableRootJobs=YES",
        "EnforcePartLimits=ALL",
        "SchedulerParameters=sched_interval=10,bf_interval=10",
        "SlurmctldHost=ctl",
        "SlurmctldPort=6817",
    ]


@pytest.mark.parametrize("settings", [{"Bad Key": 1}, {"Key": "a#b"}, {"Key": "a\nb"}, ["x"]])
def test_conf_lines_refuse_injection(settings: object) -> None:
    with pytest.raises(AnsibleFilterError):
        sc.slurm_conf_lines(settings)


GOOD_RESERVATION = {
    "name": "beamtime-42",
    "partition": "jhub",
    "groups": ["belle2"],
    "duration": "2-00:00:00",
}


def test_a_good_reservation_has_no_problems() -> None:
    assert sc.slurm_reservation_problems(GOOD_RESERVATION, [JHUB, BATCH]) == []
    assert sc.slurm_reservation_problems({"name": "old", "state": "absent"}, ["jhub"]) == []


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"partition": "gpu"}, "slurm_reservation.partition 'gpu' is not a partition"),
        ({"duration": "-1"}, "slurm_reservation.duration: '-1' is negative"),
        ({"duration": 0}, "duration must be a limited time above 0"),
        ({"users": ["bob"]}, "exactly one of groups and users"),
        ({"groups": []}, "exactly one of groups and users"),
        ({"start": "tomorrow"}, "slurm_reservation.start"),
        ({"flags": ["EVERYTHING"]}, "reservation flags"),
        ({"nodes": "node1"}, "nodes must be ALL"),
        ({"name": "a b"}, "slurm_reservation.name"),
        ({"state": "gone"}, "present or absent"),
        ({"owner": "me"}, "unknown keys owner"),
    ],
)
def test_reservation_problems(changes: dict, needle: str) -> None:
    problems = sc.slurm_reservation_problems({**GOOD_RESERVATION, **changes}, [JHUB, BATCH])
    assert any(needle in p for p in problems), problems


def test_filters_are_registered() -> None:
    names = sc.FilterModule().filters()
    assert set(names) >= {"slurm_partition_lines", "slurm_partition_problems", "slurm_time_minutes"}


SLURMD_C = (
    "NodeName=node1 CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 "
    "RealMemory=24105\nUpTime=0-04:05:25\n"
)


def test_node_line_from_slurmd_c() -> None:
    assert sc.slurm_node_line(SLURMD_C) == (
        "NodeName=node1 Boards=1 CPUs=2 CoresPerSocket=2 RealMemory=24105 SocketsPerBoard=1 "
        "ThreadsPerCore=1 State=UNKNOWN"
    )


def test_node_line_takes_the_node_settings() -> None:
    line = sc.slurm_node_line(SLURMD_C, {"CPUs": 1, "CoresPerSocket": 1, "Gres": "gpu:2"})
    assert "CPUs=1 CoresPerSocket=1 Gres=gpu:2" in line


@pytest.mark.parametrize(
    ("hardware", "overrides"),
    [
        ("slurmd: error", {}),
        (SLURMD_C, {"NodeName": "other"}),
        (SLURMD_C, {"State": "DOWN"}),
        (SLURMD_C, {"Features": "a b"}),
        (SLURMD_C, ["CPUs=1"]),
        ("NodeName=bad/name CPUs=1", {}),
    ],
)
def test_node_line_refuses_bad_input(hardware: str, overrides: object) -> None:
    with pytest.raises(AnsibleFilterError):
        sc.slurm_node_line(hardware, overrides)


NODE_LINES = [
    "NodeName=node1 CPUs=1 RealMemory=24000 State=UNKNOWN",
    "NodeName=node2 CPUs=4 RealMemory=64000 State=UNKNOWN",
]


def _memory(parts: list[dict], **kwargs: object) -> dict[str, str | None]:
    shaped = sc.slurm_partitions_memory(sc.slurm_partitions_normalized(parts), NODE_LINES, **kwargs)
    return {p["name"]: p["settings"].get("DefMemPerCPU") for p in shaped}


def test_memory_auto_shares_the_smallest_node_among_its_jobs() -> None:
    # The smaller share wins: node2 has 64000 MB / 4 CPUs = 16000 per CPU, 400 per notebook.
    assert _memory([JHUB, BATCH]) == {"jhub": "400", "batch": "16000"}
    # node1 alone: 24000 MB / 1 CPU / 40 notebooks.
    assert _memory([{**JHUB, "nodes": ["node1"]}, BATCH]) == {"jhub": "600", "batch": "16000"}


def test_memory_takes_a_number_and_keeps_a_partition_s_own() -> None:
    own = {**BATCH, "settings": {"DefMemPerNode": 2048}}
    assert _memory([JHUB, own], jupyter_mem_per_cpu=512) == {"jhub": "512", "batch": None}


def _max_memory(parts: list[dict], **kwargs: object) -> dict[str, str | None]:
    shaped = sc.slurm_partitions_memory(sc.slurm_partitions_normalized(parts), NODE_LINES, **kwargs)
    return {p["name"]: p["settings"].get("MaxMemPerNode") for p in shaped}


def test_memory_maximum_of_a_notebook_job_is_a_quarter_of_the_smallest_node() -> None:
    # --mem=0 asks for a whole node: in a notebook partition one job gets at most 24000 / 4.
    assert _max_memory([JHUB, BATCH]) == {"jhub": "6000", "batch": None}
    assert _max_memory([JHUB], jupyter_max_mem_per_node=2048) == {"jhub": "2048"}
    # Never below one CPU's default, and a partition's own maximum wins.
    assert _max_memory([JHUB], jupyter_mem_per_cpu=7000) == {"jhub": "7000"}
    own = {**JHUB, "settings": {"MaxMemPerCPU": 1000}}
    assert _max_memory([own]) == {"jhub": None}
    line = sc.slurm_partition_lines(
        sc.slurm_partitions_memory(sc.slurm_partitions_normalized([JHUB]), NODE_LINES)
    )[0]
    assert "MaxMemPerNode=6000" in line
    assert "DefMemPerCPU=400" in line


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (300, "between its default memory per CPU \\(400 MB\\)"),
        (30000, "smallest node's memory \\(24000 MB\\)"),
        ("8G", "slurm_jhub_max_mem_per_node must be auto or a number"),
    ],
)
def test_memory_maximum_refuses_what_does_not_fit(value: object, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        _max_memory([JHUB], jupyter_max_mem_per_node=value)


@pytest.mark.parametrize(
    ("lines", "kwargs", "message"),
    [
        (["NodeName=node1 CPUs=1 State=UNKNOWN"], {}, "node1 declare no RealMemory"),
        (["NodeName=node1 CPUs=1 RealMemory=30"], {}, "set slurm_jhub_def_mem_per_cpu"),
        (NODE_LINES, {"batch_mem_per_cpu": 30000}, "slurm_batch_def_mem_per_cpu=30000 is more"),
        (NODE_LINES, {"jupyter_mem_per_cpu": "600M"}, "slurm_jhub_def_mem_per_cpu must be auto"),
        (NODE_LINES, {"jupyter_mem_per_cpu": True}, "must be auto or a number"),
        (["CPUs=1"], {}, "expects NodeName lines"),
    ],
)
def test_memory_refuses_what_no_job_could_get(lines: list[str], kwargs: dict, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        sc.slurm_partitions_memory(sc.slurm_partitions_normalized([JHUB, BATCH]), lines, **kwargs)
