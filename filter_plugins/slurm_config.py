"""SLURM partitions and reservations described in YAML, checked and rendered for slurm.conf."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: slurm_partitions_normalized
short_description: Check SLURM partitions described in YAML and fill in the site's policy
description:
  - Takes the list of partitions of the C(slurm) role (C(slurm_partitions)) and returns it with
    every value filled in and checked, the way C(slurm.conf) gets it.
  - A partition with C(jupyter) true is a notebook partition (DESY's C(jhub)) that
    oversubscribes each core C(oversubscribe) times (default O(jupyter_oversubscribe)) with a
    default and maximum run time of O(jupyter_max_time). Every other partition gets
    C(OverSubscribe=FORCE:1) and a maximum run time of at most O(batch_max_time).
  - Companion filters in the same file, documented in their docstrings
    - C(slurm_partition_problems) returns the list of problems instead of failing (for assert tasks)
    - C(slurm_partition_lines) renders normalised partitions as C(PartitionName=...) lines
    - C(slurm_conf_lines) renders a mapping as sorted C(Key=Value) lines
    - C(slurm_time_minutes) turns a SLURM time (C(7-00:00:00), C(8:00:00), minutes) into minutes
    - C(slurm_time) turns minutes or a SLURM time into the canonical C(D-HH:MM:SS)
    - C(slurm_reservation_problems) checks one reservation against the partitions
    - C(slurm_node_line) renders a C(NodeName=...) line from the output of C(slurmd -C)
    - C(slurm_partitions_memory) gives every partition a default memory per CPU (C(DefMemPerCPU))
      that fits its nodes, for clusters that confine jobs' memory.
options:
  _input:
    description:
      - "Partitions: each a mapping with C(name) (required) and optionally C(nodes) (list of node
        names or C(ALL)), C(jupyter) (bool), C(oversubscribe) (int >= 1), C(max_time),
        C(default_time) (SLURM times), C(allow_groups) (list; empty allows all), C(default)
        (bool), C(state) (UP, DOWN, DRAIN, INACTIVE), C(max_nodes) (int >= 1) and C(settings)
        (further partition options, merged last)."
    type: list
    elements: dict
    required: true
  jupyter_oversubscribe:
    description: How many jobs share a core in a notebook partition that does not set its own.
    type: int
    default: 40
  jupyter_max_time:
    description: Default and maximum run time of notebook partitions that do not set their own.
    type: str
    default: 7-00:00:00
  batch_max_time:
    description: Maximum (and default) run time of every other partition.
    type: str
    default: "8:00:00"
  known_nodes:
    description:
      - Node names the cluster has; a partition naming another one is refused.
      - Empty skips the check.
    type: list
    elements: str
    default: []
  variable:
    description: Name of the variable the partitions come from, used in messages.
    type: str
    default: slurm_partitions
author:
  - jhub-site maintainers
"""

EXAMPLES = r"""
- name: Render the partitions
  ansible.builtin.debug:
    msg: >-
      {{ partitions | slurm_partitions_normalized(known_nodes=['node1'])
         | slurm_partition_lines }}
  vars:
    partitions:
      - {name: jhub, jupyter: true, allow_groups: [jupyterhub-users]}
      - {name: batch, default: true}
# ['PartitionName=jhub AllowGroups=jupyterhub-users Default=NO DefaultTime=7-00:00:00
#   MaxTime=7-00:00:00 Nodes=ALL OverSubscribe=FORCE:40 State=UP', 'PartitionName=batch
#   AllowGroups=ALL Default=YES DefaultTime=08:00:00 MaxTime=08:00:00 Nodes=ALL
#   OverSubscribe=FORCE:1 State=UP']

- name: Refuse bad partitions with a message naming the variable
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join('; ') }}"
  vars:
    __problems: "{{ slurm_partitions | slurm_partition_problems }}"
"""

RETURN = r"""
_value:
  description:
    - The partitions in the order given, each a mapping with C(name), C(nodes) (list or
      C([ALL])), C(jupyter), C(oversubscribe), C(max_time) and C(default_time) (canonical
      C(D-HH:MM:SS)), C(max_minutes), C(default_minutes), C(allow_groups), C(default), C(state),
      C(max_nodes) (0 for unlimited) and C(settings).
  type: list
  elements: dict
"""

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
GROUP_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}\$?$")
NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
OPTION_RE = re.compile(r"^[A-Z][A-Za-z]{1,40}$")
VALUE_RE = re.compile(r"^[^\s#]{1,200}$")
TIME_RE = re.compile(
    r"^(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
    r"|(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)"
    r"|(?P<mm>\d+):(?P<ss>\d+)"
    r"|(?P<minutes>\d+))$"
)
UNLIMITED = ("UNLIMITED", "INFINITE")
STATES = ("UP", "DOWN", "DRAIN", "INACTIVE")
PARTITION_KEYS = frozenset(
    {
        "name",
        "nodes",
        "jupyter",
        "oversubscribe",
        "max_time",
        "default_time",
        "allow_groups",
        "default",
        "state",
        "max_nodes",
        "settings",
    }
)
# Options the role writes itself: settings may not change them behind its back.
MANAGED_OPTIONS = frozenset(
    {
        "PartitionName",
        "Nodes",
        "OverSubscribe",
        "MaxTime",
        "DefaultTime",
        "AllowGroups",
        "Default",
        "State",
        "MaxNodes",
    }
)
RESERVATION_KEYS = frozenset(
    {"name", "state", "partition", "groups", "users", "start", "duration", "nodes", "flags"}
)
RESERVATION_FLAGS = frozenset(
    {
        "ANY_NODES",
        "DAILY",
        "FLEX",
        "IGNORE_JOBS",
        "MAGNETIC",
        "MAINT",
        "NO_HOLD_JOBS_AFTER",
        "OVERLAP",
        "PART_NODES",
        "PURGE_COMP",
        "REPLACE",
        "REPLACE_DOWN",
        "STATIC_ALLOC",
        "TIME_FLOAT",
        "WEEKDAY",
        "WEEKEND",
        "WEEKLY",
    }
)
START_RE = re.compile(
    r"^(now(\+\d+(minutes|hours|days)?)?|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?)$"
)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _require_normalized(part: Any, filter_name: str, key: str) -> None:
    """Refuse a partition that did not come from slurm_partitions_normalized."""
    if not isinstance(part, Mapping) or key not in part:
        raise AnsibleFilterError(
            f"{filter_name} expects partitions from slurm_partitions_normalized, got {_shown(part)}"
        )


def slurm_time_minutes(value: Any, name: str = "time") -> int | None:
    """Minutes of a SLURM time: an int (minutes) or a string in one of SLURM's formats
    (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``); None for UNLIMITED/INFINITE.
    Seconds are rounded up to whole minutes, as SLURM does."""
    if isinstance(value, bool):
        raise AnsibleFilterError(f"{name}: {_shown(value)} is not a SLURM time")
    if isinstance(value, int):
        if value < 0:
            raise AnsibleFilterError(f"{name}: {value} is negative; a run time is 0 or more")
        return value
    if not isinstance(value, str):
        raise AnsibleFilterError(f"{name}: {_shown(value)} is not a SLURM time")
    text = value.strip()
    if text.upper() in UNLIMITED:
        return None
    if text.startswith("-"):
        raise AnsibleFilterError(f"{name}: {text!r} is negative; a run time is 0 or more")
    match = TIME_RE.match(text)
    if not match:
        raise AnsibleFilterError(
            f"{name}: {_shown(value)} is not a SLURM time "
            "(minutes, H:MM:SS, D-HH:MM:SS or UNLIMITED)"
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "minutes" in parts:
        return parts["minutes"]
    if "mm" in parts:
        return parts["mm"] + (1 if parts["ss"] else 0)
    if "h" in parts:
        return parts["h"] * 60 + parts["m"] + (1 if parts["s"] else 0)
    return (
        parts["days"] * 1440
        + parts["dh"] * 60
        + parts.get("dm", 0)
        + (1 if parts.get("ds", 0) else 0)
    )


def slurm_time(value: Any, name: str = "time") -> str:
    """The canonical SLURM form ``D-HH:MM:SS`` (``HH:MM:SS`` under a day) of a time."""
    minutes = slurm_time_minutes(value, name)
    if minutes is None:
        return "UNLIMITED"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    clock = f"{hours:02d}:{mins:02d}:00"
    return f"{days}-{clock}" if days else clock


def _problems_of_partition(
    index: int,
    part: Any,
    variable: str,
    policy: dict[str, Any],
    known_nodes: list[str],
) -> tuple[list[str], dict[str, Any] | None]:
    """Problems of one partition, and the partition filled in when there are none."""
    if not isinstance(part, Mapping):
        return [f"{variable}[{index}] must be a mapping with at least a name"], None
    name = part.get("name")
    where = f"{variable}[{index}]" + (f" ({name})" if isinstance(name, str) else "")
    problems = []
    unknown = sorted(str(k) for k in set(part) - PARTITION_KEYS)
    if unknown:
        problems.append(
            f"{where}: unknown keys {', '.join(unknown)}; "
            f"known are {', '.join(sorted(PARTITION_KEYS))}"
        )
    if not isinstance(name, str) or not NAME_RE.match(name) or name.upper() == "DEFAULT":
        problems.append(
            f"{where}: name {_shown(name)} must be letters, digits, _ . - (not DEFAULT)"
        )
    jupyter = part.get("jupyter", False)
    if not isinstance(jupyter, bool):
        problems.append(f"{where}: jupyter must be true or false, not {_shown(jupyter)}")
        jupyter = False
    factor = part.get("oversubscribe", policy["jupyter_oversubscribe"] if jupyter else 1)
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        problems.append(
            f"{where}: oversubscribe is {_shown(factor)}; it must be a whole number of jobs per "
            "core, 1 or more (40 lets 40 notebooks share a core)"
        )
    elif factor > 1 and not jupyter:
        problems.append(
            f"{where}: oversubscribe {factor} on a batch partition; only notebook partitions "
            "(jupyter: true) share cores, batch partitions get FORCE:1"
        )
    cap_name = "jupyter_max_time" if jupyter else "batch_max_time"
    cap = policy[cap_name]
    max_minutes = default_minutes = None
    try:
        max_minutes = slurm_time_minutes(part.get("max_time", cap), f"{where}: max_time")
        if max_minutes is None or max_minutes == 0:
            problems.append(f"{where}: max_time must be a limited run time above 0")
        elif cap is not None and max_minutes > cap:
            problems.append(
                f"{where}: max_time {slurm_time(max_minutes)} exceeds the site's limit for "
                f"{'notebook' if jupyter else 'batch'} partitions ({slurm_time(cap)}, "
                f"slurm_{'jhub' if jupyter else 'batch'}_max_time)"
            )
    except AnsibleFilterError as error:
        problems.append(str(error))
    try:
        default_minutes = slurm_time_minutes(
            part.get("default_time", part.get("max_time", cap)), f"{where}: default_time"
        )
        if default_minutes is None or default_minutes == 0:
            problems.append(f"{where}: default_time must be a limited run time above 0")
        elif max_minutes and default_minutes > max_minutes:
            problems.append(
                f"{where}: default_time {slurm_time(default_minutes)} exceeds max_time "
                f"{slurm_time(max_minutes)}"
            )
    except AnsibleFilterError as error:
        problems.append(str(error))
    nodes = part.get("nodes", "ALL")
    if nodes == "ALL" or nodes == ["ALL"]:
        nodes = ["ALL"]
    elif isinstance(nodes, list) and nodes and all(isinstance(n, str) for n in nodes):
        bad = [n for n in nodes if not NODE_RE.match(n)]
        missing = [n for n in nodes if known_nodes and n not in known_nodes]
        if bad:
            problems.append(f"{where}: nodes {_shown(bad)} are not node names")
        if missing:
            problems.append(
                f"{where}: nodes {', '.join(missing)} are not compute nodes of this cluster "
                f"({', '.join(known_nodes)})"
            )
    else:
        problems.append(f"{where}: nodes must be ALL or a non-empty list of node names")
    groups = part.get("allow_groups", [])
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and GROUP_RE.match(g) for g in groups
    ):
        problems.append(
            f"{where}: allow_groups must be a list of group names, not {_shown(groups)}"
        )
    for key in ("default",):
        if not isinstance(part.get(key, False), bool):
            problems.append(f"{where}: {key} must be true or false")
    state = part.get("state", "UP")
    if not isinstance(state, str) or state.upper() not in STATES:
        problems.append(f"{where}: state {_shown(state)} must be one of {', '.join(STATES)}")
    max_nodes = part.get("max_nodes", 0)
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 0:
        problems.append(f"{where}: max_nodes must be a whole number, 1 or more (0: unlimited)")
    settings = part.get("settings", {})
    if not isinstance(settings, Mapping):
        problems.append(f"{where}: settings must be a mapping of partition options")
        settings = {}
    for key, value in settings.items():
        if not isinstance(key, str) or not OPTION_RE.match(key):
            problems.append(f"{where}: settings key {_shown(key)} is not a partition option name")
        elif key in MANAGED_OPTIONS:
            problems.append(
                f"{where}: settings may not set {key}; use the partition's own key for it"
            )
        if isinstance(value, bool) or not VALUE_RE.match(str(value)):
            problems.append(f"{where}: settings.{key} value {_shown(value)} is not a plain value")
    if problems:
        return problems, None
    return [], {
        "name": name,
        "nodes": list(nodes),
        "jupyter": jupyter,
        "oversubscribe": factor,
        "max_time": slurm_time(max_minutes),
        "max_minutes": max_minutes,
        "default_time": slurm_time(default_minutes),
        "default_minutes": default_minutes,
        "allow_groups": list(groups),
        "default": part.get("default", False),
        "state": state.upper(),
        "max_nodes": max_nodes,
        "settings": {str(k): str(v) for k, v in settings.items()},
    }


def _policy(jupyter_oversubscribe: Any, jupyter_max_time: Any, batch_max_time: Any) -> dict:
    # -e slurm_jhub_oversubscribe=20 on the command line arrives as text.
    if isinstance(jupyter_oversubscribe, str) and jupyter_oversubscribe.strip().isdigit():
        jupyter_oversubscribe = int(jupyter_oversubscribe)
    if (
        isinstance(jupyter_oversubscribe, bool)
        or not isinstance(jupyter_oversubscribe, int)
        or jupyter_oversubscribe < 1
    ):
        raise AnsibleFilterError(
            f"slurm_jhub_oversubscribe is {_shown(jupyter_oversubscribe)}; it must be a whole "
            "number of notebook jobs per core, 1 or more (default 40)"
        )
    return {
        "jupyter_oversubscribe": jupyter_oversubscribe,
        "jupyter_max_time": slurm_time_minutes(jupyter_max_time, "slurm_jhub_max_time"),
        "batch_max_time": slurm_time_minutes(batch_max_time, "slurm_batch_max_time"),
    }


def _check(
    partitions: Any,
    jupyter_oversubscribe: Any,
    jupyter_max_time: Any,
    batch_max_time: Any,
    known_nodes: Any,
    variable: str,
) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        policy = _policy(jupyter_oversubscribe, jupyter_max_time, batch_max_time)
    except AnsibleFilterError as error:
        return [str(error)], []
    for name in ("jupyter_max_time", "batch_max_time"):
        if not policy[name]:
            label = "slurm_jhub_max_time" if name.startswith("jupyter") else "slurm_batch_max_time"
            return [f"{label} must be a limited run time above 0"], []
    if not isinstance(partitions, list) or not partitions:
        return [f"{variable} must be a non-empty list of partitions"], []
    nodes = [str(n) for n in (known_nodes or [])]
    problems: list[str] = []
    normalized: list[dict[str, Any]] = []
    for index, part in enumerate(partitions):
        found, result = _problems_of_partition(index, part, variable, policy, nodes)
        problems.extend(found)
        if result:
            normalized.append(result)
    names = [p.get("name") for p in partitions if isinstance(p, Mapping)]
    twice = sorted({str(n) for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"{variable}: partition names used twice: {', '.join(twice)}")
    defaults = [p["name"] for p in normalized if p["default"]]
    if len(defaults) > 1:
        problems.append(
            f"{variable}: only one partition may be the default, not {', '.join(defaults)}"
        )
    return problems, normalized


def slurm_partition_problems(
    partitions: Any,
    jupyter_oversubscribe: Any = 40,
    jupyter_max_time: Any = "7-00:00:00",
    batch_max_time: Any = "8:00:00",
    known_nodes: Any = None,
    variable: str = "slurm_partitions",
) -> list[str]:
    """Every problem of the partitions, each naming the variable and the partition."""
    return _check(
        partitions, jupyter_oversubscribe, jupyter_max_time, batch_max_time, known_nodes, variable
    )[0]


def slurm_partitions_normalized(
    partitions: Any,
    jupyter_oversubscribe: Any = 40,
    jupyter_max_time: Any = "7-00:00:00",
    batch_max_time: Any = "8:00:00",
    known_nodes: Any = None,
    variable: str = "slurm_partitions",
) -> list[dict[str, Any]]:
    """The partitions checked and filled in; fails with every problem otherwise."""
    problems, normalized = _check(
        partitions, jupyter_oversubscribe, jupyter_max_time, batch_max_time, known_nodes, variable
    )
    if problems:
        raise AnsibleFilterError("; ".join(problems))
    return normalized


def slurm_partition_lines(partitions: Any) -> list[str]:
    """``PartitionName=...`` lines of normalised partitions in their order (the order users
    see them in), options sorted by name."""
    if not isinstance(partitions, list):
        raise AnsibleFilterError(
            "slurm_partition_lines expects the list slurm_partitions_normalized returns"
        )
    lines = []
    for part in partitions:
        _require_normalized(part, "slurm_partition_lines", "max_minutes")
        options = {
            "Nodes": ",".join(part["nodes"]),
            "OverSubscribe": f"FORCE:{part['oversubscribe']}",
            "MaxTime": part["max_time"],
            "DefaultTime": part["default_time"],
            "AllowGroups": ",".join(part["allow_groups"]) or "ALL",
            "Default": "YES" if part["default"] else "NO",
            "State": part["state"],
            **({"MaxNodes": str(part["max_nodes"])} if part["max_nodes"] else {}),
            **part["settings"],
        }
        text = " ".join(f"{key}={options[key]}" for key in sorted(options))
        lines.append(f"PartitionName={part['name']} {text}")
    return lines


def slurm_conf_lines(settings: Any) -> list[str]:
    """``Key=Value`` lines of a mapping, sorted by key; lists are joined with commas and
    booleans written YES/NO. Empty values (None, "", []) are left out."""
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError(f"slurm_conf_lines expects a mapping, got {_shown(settings)}")
    lines = []
    for key in sorted(settings, key=str):
        value = settings[key]
        if not isinstance(key, str) or not re.match(r"^[A-Za-z][A-Za-z0-9]*$", key):
            raise AnsibleFilterError(f"slurm.conf option name {_shown(key)} is not valid")
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, bool):
            text = "YES" if value else "NO"
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, Mapping):
            text = ",".join(f"{k}={value[k]}" for k in sorted(value, key=str))
        else:
            text = str(value)
        if "\n" in text or "#" in text:
            raise AnsibleFilterError(
                f"slurm.conf option {key}: {_shown(text)} holds # or a newline"
            )
        lines.append(f"{key}={text}")
    return lines


def slurm_reservation_problems(
    reservation: Any, partitions: Any, variable: str = "slurm_reservation"
) -> list[str]:
    """Problems of one reservation (as the reservation playbook takes it) against the
    partition names of the cluster (a list of names or of partition mappings)."""
    if not isinstance(reservation, Mapping):
        return [f"{variable} must be a mapping with at least name"]
    names = [p.get("name") if isinstance(p, Mapping) else p for p in (partitions or [])]
    problems = []
    unknown = sorted(str(k) for k in set(reservation) - RESERVATION_KEYS)
    if unknown:
        problems.append(
            f"{variable}: unknown keys {', '.join(unknown)}; "
            f"known are {', '.join(sorted(RESERVATION_KEYS))}"
        )
    name = reservation.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"{variable}.name {_shown(name)} must be letters, digits, _ . -")
    state = reservation.get("state", "present")
    if state not in ("present", "absent"):
        problems.append(f"{variable}.state must be present or absent, not {_shown(state)}")
    if state == "absent":
        return problems
    partition = reservation.get("partition", "")
    if not isinstance(partition, str) or not partition:
        problems.append(
            f"{variable}.partition must name a partition ({', '.join(map(str, names))})"
        )
    elif partition not in names:
        problems.append(
            f"{variable}.partition {partition!r} is not a partition of this cluster; "
            f"use one of {', '.join(map(str, names))}"
        )
    groups = reservation.get("groups", [])
    users = reservation.get("users", [])
    for key, value in (("groups", groups), ("users", users)):
        if not isinstance(value, list) or not all(
            isinstance(v, str) and GROUP_RE.match(v) for v in value
        ):
            problems.append(f"{variable}.{key} must be a list of names, not {_shown(value)}")
    if isinstance(groups, list) and isinstance(users, list) and bool(groups) == bool(users):
        problems.append(
            f"{variable}: set exactly one of groups and users (SLURM takes one of them)"
        )
    try:
        minutes = slurm_time_minutes(reservation.get("duration", ""), f"{variable}.duration")
        if not minutes:
            problems.append(f"{variable}.duration must be a limited time above 0")
    except AnsibleFilterError as error:
        problems.append(str(error))
    start = reservation.get("start", "now")
    if not isinstance(start, str) or not START_RE.match(start):
        problems.append(
            f"{variable}.start {_shown(start)} must be now, now+<n>hours or YYYY-MM-DDTHH:MM[:SS]"
        )
    nodes = reservation.get("nodes", "ALL")
    if not (
        nodes == "ALL"
        or (
            isinstance(nodes, list)
            and nodes
            and all(isinstance(n, str) and NODE_RE.match(n) for n in nodes)
        )
    ):
        problems.append(f"{variable}.nodes must be ALL or a list of node names")
    flags = reservation.get("flags", [])
    if not isinstance(flags, list) or not set(map(str, flags)) <= RESERVATION_FLAGS:
        problems.append(
            f"{variable}.flags must be a list of SLURM reservation flags "
            f"({', '.join(sorted(RESERVATION_FLAGS))})"
        )
    return problems


NODE_KEYS = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")


def slurm_node_line(
    hardware: Any, overrides: Any = None, variable: str = "slurm_node_config"
) -> str:
    """The ``NodeName=...`` line of a compute node from what ``slurmd -C`` printed there (its
    first line), with the node's own settings merged over the detected ones."""
    if not isinstance(hardware, str) or not hardware.startswith("NodeName="):
        raise AnsibleFilterError(
            f"slurm_node_line expects the output of slurmd -C, got {_shown(hardware)}"
        )
    found = dict(token.split("=", 1) for token in hardware.splitlines()[0].split() if "=" in token)
    name = found.get("NodeName", "")
    if not NODE_RE.match(name):
        raise AnsibleFilterError(f"slurmd -C reported the node name {_shown(name)}")
    options = {key: found[key] for key in NODE_KEYS if key in found}
    extra = overrides or {}
    if not isinstance(extra, Mapping):
        raise AnsibleFilterError(f"{variable} of {name} must be a mapping, not {_shown(extra)}")
    for key, value in extra.items():
        if not isinstance(key, str) or not OPTION_RE.match(key) or key in ("NodeName", "State"):
            raise AnsibleFilterError(f"{variable} of {name}: {_shown(key)} is not a node option")
        if isinstance(value, bool) or not VALUE_RE.match(str(value)):
            raise AnsibleFilterError(
                f"{variable} of {name}: {key}={_shown(value)} is not a plain value"
            )
        options[key] = str(value)
    text = " ".join(f"{key}={options[key]}" for key in sorted(options))
    return f"NodeName={name} {text} State=UNKNOWN"


MEMORY_OPTIONS = ("DefMemPerCPU", "DefMemPerNode", "DefMemPerGPU")


def _node_memory(line: Any) -> tuple[str, int | None, int]:
    """Name, RealMemory (None if not declared) and CPUs of a ``NodeName=...`` line."""
    if not isinstance(line, str) or not line.startswith("NodeName="):
        raise AnsibleFilterError(
            f"slurm_partitions_memory expects NodeName lines, got {_shown(line)}"
        )
    found = dict(token.split("=", 1) for token in line.split() if "=" in token)
    try:
        memory = int(found["RealMemory"]) if "RealMemory" in found else None
        cpus = int(found.get("CPUs", "1"))
    except ValueError as error:
        raise AnsibleFilterError(f"{_shown(line)}: RealMemory and CPUs must be numbers") from error
    return found["NodeName"], memory, max(cpus, 1)


def _mem_setting(value: Any, name: str) -> int | None:
    """A default memory per CPU in MB, or None for auto."""
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AnsibleFilterError(
            f"{name} must be auto or a number of MB (1 or more), not {_shown(value)}"
        )
    return value


MAX_MEMORY_OPTIONS = ("MaxMemPerNode", "MaxMemPerCPU")


def slurm_partitions_memory(
    partitions: Any,
    node_lines: Any,
    jupyter_mem_per_cpu: Any = "auto",
    batch_mem_per_cpu: Any = "auto",
    jupyter_max_mem_per_node: Any = "auto",
) -> list[dict[str, Any]]:
    """Normalised partitions with ``DefMemPerCPU`` in their settings, so that a job that asks
    for no memory still gets a limit (``SelectTypeParameters=CR_Core_Memory`` would otherwise
    give it all memory of its node), and notebook partitions with ``MaxMemPerNode``, so that
    one job (``--mem=0`` asks for a whole node) cannot take the memory every other notebook
    on its node needs: ``auto`` is a quarter of the smallest node (at least one CPU's default).

    ``auto`` shares the smallest node of the partition among the jobs that may run on it at
    once: ``RealMemory / CPUs / oversubscribe`` (a notebook partition with FORCE:40 on a
    one-CPU node of 24000 MB: 600 MB each, so that 40 notebooks fit as they did without
    memory limits); a number of MB is taken as it is, if one CPU's worth fits the smallest
    node. A partition whose settings name a default memory already is left alone. Fails
    naming the node when one declares no RealMemory (jobs could never be given memory there).
    """
    if not isinstance(partitions, list) or not isinstance(node_lines, list):
        raise AnsibleFilterError(
            "slurm_partitions_memory expects normalised partitions and a list of NodeName lines"
        )
    nodes = {name: (memory, cpus) for name, memory, cpus in map(_node_memory, node_lines)}
    chosen = {
        True: _mem_setting(jupyter_mem_per_cpu, "slurm_jhub_def_mem_per_cpu"),
        False: _mem_setting(batch_mem_per_cpu, "slurm_batch_def_mem_per_cpu"),
    }
    result = []
    for part in partitions:
        _require_normalized(part, "slurm_partitions_memory", "oversubscribe")
        settings = dict(part.get("settings") or {})
        if any(key in settings for key in MEMORY_OPTIONS):
            result.append(dict(part))
            continue
        names = sorted(nodes) if part["nodes"] == ["ALL"] else part["nodes"]
        undeclared = [n for n in names if nodes.get(n, (None, 1))[0] is None]
        if undeclared:
            raise AnsibleFilterError(
                f"partition {part['name']}: nodes {', '.join(undeclared)} declare no RealMemory "
                "(slurmd -C or slurm_node_config); memory limits need it"
            )
        if not names:
            result.append(dict(part))
            continue
        smallest = min(nodes[n][0] for n in names)
        fair = min(nodes[n][0] // (nodes[n][1] * int(part["oversubscribe"])) for n in names)
        value = chosen[bool(part.get("jupyter"))]
        variable = (
            "slurm_jhub_def_mem_per_cpu" if part.get("jupyter") else "slurm_batch_def_mem_per_cpu"
        )
        if value is None and fair < 1:
            raise AnsibleFilterError(
                f"partition {part['name']}: its smallest node has too little memory for "
                f"{part['oversubscribe']} jobs per CPU; set {variable}"
            )
        if value is not None and value > smallest:
            raise AnsibleFilterError(
                f"partition {part['name']}: {variable}={value} is more than the memory of its "
                f"smallest node ({smallest} MB); no job could start"
            )
        settings["DefMemPerCPU"] = str(value or fair)
        if part.get("jupyter") and not any(key in settings for key in MAX_MEMORY_OPTIONS):
            settings["MaxMemPerNode"] = str(
                _max_mem(
                    jupyter_max_mem_per_node, part["name"], int(settings["DefMemPerCPU"]), smallest
                )
            )
        result.append({**part, "settings": settings})
    return result


def _max_mem(value: Any, partition: str, default: int, smallest: int) -> int:
    """The largest memory in MB of one job per node in a notebook partition."""
    if value == "auto":
        return max(smallest // 4, default)
    chosen = _mem_setting(value, "slurm_jhub_max_mem_per_node") or 0
    if not default <= chosen <= smallest:
        raise AnsibleFilterError(
            f"partition {partition}: slurm_jhub_max_mem_per_node={chosen} must lie between its "
            f"default memory per CPU ({default} MB) and its smallest node's memory ({smallest} MB)"
        )
    return chosen


class FilterModule:
    """SLURM configuration filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "slurm_time_minutes": slurm_time_minutes,
            "slurm_time": slurm_time,
            "slurm_partition_problems": slurm_partition_problems,
            "slurm_partitions_normalized": slurm_partitions_normalized,
            "slurm_partition_lines": slurm_partition_lines,
            "slurm_conf_lines": slurm_conf_lines,
            "slurm_reservation_problems": slurm_reservation_problems,
            "slurm_node_line": slurm_node_line,
            "slurm_partitions_memory": slurm_partitions_memory,
        }
