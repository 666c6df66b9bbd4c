"""Notebook servers as SLURM jobs (batchspawner's SlurmSpawner, for the site).

``SiteSlurmSpawner`` submits each user's server as a batch job ``<prefix><user>`` that runs
under the user's own UID on a compute node (``sudo -E -n -u <user> sbatch``; the hub may run
only sbatch, squeue and scancel that way). What the form offers comes from SLURM itself on
every page load: the partitions the user may use (AllowGroups, against the user's groups
from NSS, the same lookup slurmctld makes), their limits, the reservations the user is
entitled to, and a table of the resources free right now (sinfo, squeue).

The user picks partition, run time (never above the partition's MaxTime), nodes, GPUs,
JupyterLab or the classic notebook, extra environment variables and a reservation (the run
time is then the reservation's remaining lifetime). The choices are checked when the form is
submitted and again in ``start()`` against a fresh view of the cluster, so options sent
through the REST API cannot bypass a limit; SLURM enforces AllowGroups and MaxTime too
(EnforcePartLimits=ALL).

A start fails fast with SLURM's reason when the job cannot run (a drained or down node, a
partition that is down, a held job) instead of waiting for the spawn timeout, and the port
wait watches the job (a job that dies before its server reports a port ends the start).

The user's jobs of the other hub instances (``<other prefix><user>``) are found with squeue
(as the user, by exact job name) and cancelled with ``scancel --name --user <id>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import grp
import html
import json
import os
import pwd
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from batchspawner import JobStatus, SlurmSpawner, format_template
from tornado import web
from traitlets import Float, Int, List, Unicode, default

from jhub_site import batchapi
from jhub_site.exclusive import InstanceServers, OtherServer, sudo_refused

# batchspawner's own port handler sets whatever the body names: the site's replaces it.
batchapi.install()

USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Variables a user may not set: the hub's own, SLURM's, the loader's and the shell's.
RESERVED_ENV_PREFIXES = ("JUPYTERHUB_", "JPY_", "SLURM_", "SBATCH_", "LD_", "BASH_FUNC_")
RESERVED_ENV_NAMES = frozenset({"HOME", "USER", "LOGNAME", "SHELL", "PATH", "IFS", "ENV"})
ENV_VALUE_MAX = 1024
UIS = {"lab": "/lab", "classic": "/tree"}
OPTION_KEYS = frozenset({"partition", "runtime", "nodes", "gpus", "ui", "env", "reservation"})
PENDING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "RESV_DEL_HOLD"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING"})
# Job states after which nothing of a job runs any more (squeue lists them for MinJobAge).
ENDED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)
# squeue's format for the jobs of the other hub instances: id, name, state, host.
NAMED_JOBS_FORMAT = "%i|%j|%T|%B"
# Pending reasons (squeue %r) after which the job cannot start without someone's action;
# matched on the reason's first word, then on the texts newer SLURM releases print.
FATAL_REASONS = {
    "ReqNodeNotAvail": "a node it needs is not available (drained, down or reserved)",
    "NodeDown": "a node of the job is down",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "PartitionNodeLimit": "the number of nodes is outside the partition's limits",
    "PartitionTimeLimit": "the run time is above the partition's limit",
    "JobHeldAdmin": "it is held by an administrator",
    "JobHeldUser": "it is held",
    "BadConstraints": "the requested resources can never be available",
    "InvalidQOS": "its quality of service is invalid",
    "InvalidAccount": "its account is invalid",
    "AccountNotAllowed": "its account may not use the partition",
    "QOSNotAllowed": "its quality of service may not use the partition",
    "DependencyNeverSatisfied": "it waits for a job that can never finish",
    "launch": "it failed to launch on its node and is held",
}
FATAL_TEXTS = {
    "DOWN, DRAINED": "the nodes it needs are down, drained or reserved",
    "not in group permitted": "you may not use the partition",
    "Reservation was deleted": "its reservation was deleted",
}

BATCH_SCRIPT = """#!/bin/bash
#SBATCH --job-name={{job_name}}
#SBATCH --partition={{partition}}
#SBATCH --time={{runtime}}
#SBATCH --nodes={{nodes}}
#SBATCH --ntasks-per-node=1
#SBATCH --output={{homedir}}/.jupyterhub-slurm-%j.log
#SBATCH --chdir={{homedir}}
#SBATCH --export={{keepvars}}
{% if gres %}#SBATCH --gres={{gres}}
{% endif %}{% if reservation %}#SBATCH --reservation={{reservation}}
{% endif %}{% if options %}#SBATCH {{options}}
{% endif %}
set -euo pipefail
export PATH={{venv_bin}}:"${PATH:-/usr/bin:/bin}"
{{user_env}}
{{prologue}}
{{cmd}}
{{epilogue}}
"""

_FORM_STYLE = """
<style>
  .slurm-free { font-size: 90%; margin-bottom: 1em; }
  .slurm-free td, .slurm-free th { padding: 2px 8px; }
  .slurm-down { color: #a94442; }
</style>"""

_FORM_SCRIPT = """
<script>
(function () {
  var part = document.getElementById('slurm_partition');
  var resv = document.getElementById('slurm_reservation');
  var hours = document.getElementById('slurm_runtime');
  var nodes = document.getElementById('slurm_nodes');
  var gpus = document.getElementById('slurm_gpus');
  if (!part) { return; }
  function limits() {
    var p = part.options[part.selectedIndex];
    if (!p) { return; }
    hours.max = p.dataset.maxHours;
    nodes.max = p.dataset.maxNodes;
    gpus.max = p.dataset.maxGpus;
    if (parseFloat(hours.value) > parseFloat(hours.max)) { hours.value = p.dataset.defaultHours; }
    if (parseInt(nodes.value, 10) > parseInt(nodes.max, 10)) { nodes.value = nodes.max; }
    if (parseInt(gpus.value, 10) > parseInt(gpus.max, 10)) { gpus.value = gpus.max; }
  }
  function reservation() {
    var r = resv && resv.options[resv.selectedIndex];
    var on = r && r.value !== '';
    hours.readOnly = on;
    if (on) {
      if (r.dataset.partition) { part.value = r.dataset.partition; limits(); }
      hours.value = r.dataset.hoursLeft;
    }
  }
  part.addEventListener('change', limits);
  if (resv) { resv.addEventListener('change', reservation); }
  limits();
  reservation();
})();
</script>"""


# --- what SLURM reports ----------------------------------------------------------------------


def slurm_minutes(text: str) -> int | None:
    """Minutes of a SLURM time as scontrol prints it; None for UNLIMITED/NONE/INFINITE."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", "(NULL)", "N/A", ""):
        return None
    days = 0
    if "-" in text:
        head, text = text.split("-", 1)
        days = int(head)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 3:
        hours, minutes, seconds = parts
    elif len(parts) == 2:
        hours, (minutes, seconds) = 0, parts
    else:
        hours, minutes, seconds = 0, parts[0], 0
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def _fields(line: str) -> dict[str, str]:
    """key=value tokens of a scontrol --oneliner line."""
    return dict(token.split("=", 1) for token in line.split() if "=" in token)


def _names(value: str) -> list[str] | None:
    """A comma list of names; None for ALL, [] for (null)."""
    if value.upper() == "ALL":
        return None
    if value in ("", "(null)"):
        return []
    return [v for v in value.split(",") if v]


@dataclass
class Partition:
    name: str
    state: str = "UP"
    max_minutes: int | None = None
    default_minutes: int | None = None
    allow_groups: list[str] | None = None
    max_nodes: int | None = None
    total_nodes: int = 0
    total_cpus: int = 0
    oversubscribe: int = 1
    hidden: bool = False
    root_only: bool = False

    @property
    def up(self) -> bool:
        return self.state == "UP"

    @property
    def node_limit(self) -> int:
        limits = [self.total_nodes] + ([self.max_nodes] if self.max_nodes else [])
        return max(1, min(limits))


def parse_partitions(text: str) -> dict[str, Partition]:
    """Partitions from ``scontrol --oneliner show partition``."""
    found: dict[str, Partition] = {}
    for line in text.splitlines():
        values = _fields(line)
        name = values.get("PartitionName")
        if not name:
            continue
        share = values.get("OverSubscribe", "NO")
        factor = 1
        if share.upper().startswith(("FORCE", "YES")) and ":" in share:
            with contextlib.suppress(ValueError):
                factor = max(1, int(share.split(":", 1)[1]))
        max_nodes = values.get("MaxNodes", "UNLIMITED")
        found[name] = Partition(
            name=name,
            state=values.get("State", "UP").upper(),
            max_minutes=slurm_minutes(values.get("MaxTime", "UNLIMITED")),
            default_minutes=slurm_minutes(values.get("DefaultTime", "NONE")),
            allow_groups=_names(values.get("AllowGroups", "ALL")),
            max_nodes=None if not max_nodes.isdigit() else int(max_nodes),
            total_nodes=int(values.get("TotalNodes", "0") or 0),
            total_cpus=int(values.get("TotalCPUs", "0") or 0),
            oversubscribe=factor,
            hidden=values.get("Hidden", "NO").upper() == "YES",
            root_only=values.get("RootOnly", "NO").upper() == "YES",
        )
    return found


@dataclass
class Reservation:
    name: str
    start: dt.datetime
    end: dt.datetime
    state: str
    partition: str = ""
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def active(self, now: dt.datetime) -> bool:
        return self.state == "ACTIVE" and self.start <= now < self.end

    def minutes_left(self, now: dt.datetime) -> int:
        return max(0, int((self.end - now).total_seconds() // 60))

    def entitles(self, user: str, groups: set[str]) -> bool:
        return user in self.users or bool(groups & set(self.groups))


def parse_reservations(text: str) -> dict[str, Reservation]:
    """Reservations from ``scontrol --oneliner show reservation``."""
    found: dict[str, Reservation] = {}
    for line in text.splitlines():
        values = _fields(line)
        name = values.get("ReservationName")
        if not name:
            continue
        try:
            start = dt.datetime.fromisoformat(values["StartTime"])
            end = dt.datetime.fromisoformat(values["EndTime"])
        except (KeyError, ValueError):
            continue
        partition = values.get("PartitionName", "")
        found[name] = Reservation(
            name=name,
            start=start,
            end=end,
            state=values.get("State", "").upper(),
            partition="" if partition == "(null)" else partition,
            users=_names(values.get("Users", "(null)")) or [],
            groups=_names(values.get("Groups", "(null)")) or [],
        )
    return found


@dataclass
class Resources:
    """What sinfo reports for one partition, summed over its node groups."""

    available: str = "up"
    nodes_idle: int = 0
    nodes_other: int = 0
    nodes_total: int = 0
    cpus_alloc: int = 0
    cpus_idle: int = 0
    cpus_other: int = 0
    cpus_total: int = 0
    gpus_per_node: int = 0


def _gpus(gres: str) -> int:
    """GPUs per node of a sinfo %G value (gpu:2, gpu:a100:4(S:0-1), gpu:2,mps:100)."""
    best = 0
    for item in re.split(r",(?![^(]*\))", gres):
        item = item.split("(", 1)[0]
        if item.startswith("gpu:"):
            with contextlib.suppress(ValueError):
                best = max(best, int(item.rsplit(":", 1)[1]))
    return best


def parse_sinfo(text: str) -> dict[str, Resources]:
    """Resources per partition from ``sinfo --noheader --format=%R|%a|%F|%C|%G``."""
    found: dict[str, Resources] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 5:
            continue
        name, available, nodes, cpus, gres = parts
        try:
            _, n_idle, n_other, n_total = (int(x) for x in nodes.split("/"))
            c_alloc, c_idle, c_other, c_total = (int(x) for x in cpus.split("/"))
        except ValueError:
            continue
        res = found.setdefault(name, Resources(available=available))
        res.nodes_idle += n_idle
        res.nodes_other += n_other
        res.nodes_total += n_total
        res.cpus_alloc += c_alloc
        res.cpus_idle += c_idle
        res.cpus_other += c_other
        res.cpus_total += c_total
        res.gpus_per_node = max(res.gpus_per_node, _gpus(gres))
        if available != "up":
            res.available = available
    return found


def count_running(text: str) -> dict[str, int]:
    """Running jobs per partition from ``squeue --noheader --states=RUNNING --format=%P``."""
    counts: dict[str, int] = {}
    for line in text.split():
        counts[line] = counts.get(line, 0) + 1
    return counts


@dataclass
class JobRow:
    state: str
    name: str
    host: str
    reason: str


def parse_job(text: str) -> JobRow | None:
    """The job from ``squeue -h -j <id> -o '%T|%j|%B|%r'`` (None if squeue printed none)."""
    for line in reversed(text.strip().splitlines()):
        parts = line.strip().split("|", 3)
        if len(parts) == 4 and parts[0].isupper():
            return JobRow(*parts)
    return None


@dataclass
class NamedJob:
    job_id: str
    name: str
    state: str
    host: str

    def detail(self) -> str:
        state = self.state.lower()
        on = self.host not in ("", "n/a", "(null)") and self.state not in PENDING_STATES
        return f"{state} on {self.host}" if on else state


def parse_named_jobs(text: str, names: set[str] | frozenset[str]) -> list[NamedJob]:
    """The jobs of exactly these names that may still run, from
    ``squeue --noheader --name=<names> --format=%i|%j|%T|%B``."""
    jobs = []
    for line in text.splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) != 4:
            continue
        job_id, name, state, host = (part.strip() for part in parts)
        if name not in names or not job_id or not state.isupper() or state in ENDED_STATES:
            continue
        jobs.append(NamedJob(job_id=job_id, name=name, state=state, host=host))
    return jobs


def job_problem(reason: str) -> str | None:
    """Why a pending job can never start by itself, from its squeue reason; None if it is
    only waiting (for resources, priority, a dependency, its reservation's start)."""
    reason = reason.strip()
    first = re.split(r"[\s,(]", reason, maxsplit=1)[0]
    if first in FATAL_REASONS:
        return FATAL_REASONS[first]
    for text, problem in FATAL_TEXTS.items():
        if text in reason:
            return problem
    return None


@dataclass
class Cluster:
    """One look at the cluster: its partitions, reservations and free resources."""

    partitions: dict[str, Partition]
    reservations: dict[str, Reservation]
    resources: dict[str, Resources]
    running: dict[str, int]
    now: dt.datetime

    @classmethod
    def from_outputs(cls, outputs: dict[str, str], now: dt.datetime | None = None) -> Cluster:
        return cls(
            partitions=parse_partitions(outputs.get("partitions", "")),
            reservations=parse_reservations(outputs.get("reservations", "")),
            resources=parse_sinfo(outputs.get("resources", "")),
            running=count_running(outputs.get("running", "")),
            now=now or dt.datetime.now(),
        )


# What the form and start() ask SLURM, as the hub's own account. --all: SLURM hides the
# partitions a user's groups may not use, and the hub's account is in none of them; the
# spawner itself decides what each user sees.
CLUSTER_COMMANDS = {
    "partitions": ["scontrol", "--all", "--oneliner", "show", "partition"],
    "reservations": ["scontrol", "--oneliner", "show", "reservation"],
    "resources": ["sinfo", "--all", "--noheader", "--format=%R|%a|%F|%C|%G"],
    "running": ["squeue", "--all", "--noheader", "--states=RUNNING", "--format=%P"],
}


def _hours(minutes: int | None) -> str:
    if minutes is None:
        return "unlimited"
    return f"{minutes / 60:g}"


def _human_time(minutes: int | None) -> str:
    if minutes is None:
        return "no limit"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = ([f"{days} d"] if days else []) + ([f"{hours} h"] if hours else [])
    parts += [f"{mins} min"] if mins or not parts else []
    return " ".join(parts)


def parse_env_text(text: str) -> dict[str, str]:
    """NAME=value lines of the form's text area (blank lines and # comments skipped)."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"slurm_env: line {number} is not NAME=value: {line[:40]!r}")
        name, value = line.split("=", 1)
        env[name.strip()] = value.strip()
    return env


class SiteSlurmSpawner(InstanceServers, SlurmSpawner):
    """A notebook server as the user's own SLURM job, with the site's form and checks."""

    job_name = Unicode(
        "jupyter-{username}",
        config=True,
        help="Name of every job, formatted with {username}; starts with the instance's prefix.",
    )
    default_partition = Unicode(
        "jhub", config=True, help="Partition preselected in the form (if the user may use it)."
    )
    partitions = List(
        Unicode(),
        config=True,
        help="Partitions the form offers at most; empty offers every partition the user may use.",
    )
    notebook_venv = Unicode(
        "/opt/jupyter",
        config=True,
        help="Virtualenv of the notebook environment on the compute nodes.",
    )
    pending_timeout = Float(
        0,
        config=True,
        help="""Seconds a job may wait in the queue for any reason before the start fails with
        SLURM's reason; 0 waits until the spawn timeout. Reasons that need someone's action
        (drained node, partition down, held job) fail the start at once.""",
    )
    max_env = Int(20, config=True, help="Most extra environment variables a user may set.")
    command_timeout = Float(
        20, config=True, help="Seconds a SLURM command (scontrol, sinfo, squeue) may take."
    )
    cluster_cache_seconds = Float(
        15,
        config=True,
        help="Seconds the view of the cluster the form showed is reused to check the form.",
    )

    req_job_name = Unicode()

    # The checked values of the current start, for the batch script.
    _job_values: ClassVar[dict[str, Any]] = {}

    # The last look at the cluster (shared by all users' spawners of this hub).
    _cluster_cache: ClassVar[tuple[float, Cluster] | None] = None

    @default("req_job_name")
    def _default_req_job_name(self) -> str:
        return self.job_name.format(username=self.user.name)

    @default("batch_script")
    def _default_batch_script(self) -> str:
        return BATCH_SCRIPT

    @default("batch_submit_cmd")
    def _default_submit_cmd(self) -> str:
        return "sbatch --parsable"

    @default("batch_query_cmd")
    def _default_query_cmd(self) -> str:
        return "squeue -h -j {job_id} -o '%T|%j|%B|%r'"

    @default("batch_cancel_cmd")
    def _default_cancel_cmd(self) -> str:
        # Only a job of this instance's name is ever cancelled.
        return "scancel --name={job_name} {job_id}"

    @default("exec_prefix")
    def _default_exec_prefix(self) -> str:
        return "sudo -E -n -u {username}"

    @default("req_srun")
    def _default_srun(self) -> str:
        # The server runs in the batch step: the whole allocation stays free for srun calls
        # from the notebook (multi-node jobs).
        return ""

    @default("batchspawner_singleuser_cmd")
    def _default_singleuser_cmd(self) -> str:
        return f"{self.notebook_venv}/bin/batchspawner-singleuser"

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return [f"{self.notebook_venv}/bin/jupyterhub-singleuser"]

    @default("options_form")
    def _default_options_form(self) -> Any:
        return _standalone_form

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict:
        return self.site_options(formdata)

    # --- the cluster -----------------------------------------------------------------------------

    async def _command_output(self, argv: list[str]) -> str:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.command_timeout)
        except TimeoutError:
            proc.kill()
            raise RuntimeError(
                f"{argv[0]} did not answer within {self.command_timeout:g} s"
            ) from None
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:3])}: {err.decode(errors='replace').strip()[:200]}"
            )
        return out.decode(errors="replace")

    def _command_output_sync(self, argv: list[str]) -> str:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=self.command_timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])}: {result.stderr.strip()[:200]}")
        return result.stdout

    async def read_cluster(self) -> Cluster:
        """A fresh look at the cluster (the form shows it; start() checks against it)."""
        keys = list(CLUSTER_COMMANDS)
        try:
            outputs = await asyncio.gather(
                *(self._command_output(CLUSTER_COMMANDS[k]) for k in keys)
            )
        except (OSError, RuntimeError) as error:
            raise RuntimeError(f"The SLURM cluster does not answer: {error}") from None
        cluster = Cluster.from_outputs(dict(zip(keys, outputs, strict=True)))
        SiteSlurmSpawner._cluster_cache = (time.monotonic(), cluster)
        return cluster

    def read_cluster_sync(self) -> Cluster:
        """The cluster as the form just showed it, or a fresh look (form submissions)."""
        cached = SiteSlurmSpawner._cluster_cache
        if cached and time.monotonic() - cached[0] < self.cluster_cache_seconds:
            return cached[1]
        try:
            outputs = {k: self._command_output_sync(v) for k, v in CLUSTER_COMMANDS.items()}
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
            raise ValueError(f"The SLURM cluster does not answer: {error}") from None
        cluster = Cluster.from_outputs(outputs)
        SiteSlurmSpawner._cluster_cache = (time.monotonic(), cluster)
        return cluster

    # --- who the user is -------------------------------------------------------------------------

    def user_groups(self) -> set[str]:
        """Names of the user's groups from NSS on the hub host (what slurmctld resolves too)."""
        name = self.user.name
        if not USER_RE.match(name):
            raise ValueError(f"The user name {name[:40]!r} cannot run SLURM jobs.")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ValueError(
                f"{name} is not known to this hub host's directory (NSS): no SLURM job can run "
                "under this account."
            ) from None
        names = set()
        for gid in os.getgrouplist(name, entry.pw_gid):
            with contextlib.suppress(KeyError):
                names.add(grp.getgrgid(gid).gr_name)
        return names

    def usable(self, cluster: Cluster, groups: set[str]) -> list[Partition]:
        """Partitions this user may use, in SLURM's order, limited to ``partitions`` if set."""
        out = []
        for part in cluster.partitions.values():
            if part.hidden or part.root_only:
                continue
            if self.partitions and part.name not in self.partitions:
                continue
            if part.allow_groups is not None and not groups & set(part.allow_groups):
                continue
            out.append(part)
        return out

    def entitled(self, cluster: Cluster, groups: set[str]) -> list[Reservation]:
        """Active reservations this user may run in, on partitions the user may use."""
        usable = {p.name for p in self.usable(cluster, groups)}
        return [
            r
            for r in cluster.reservations.values()
            if r.active(cluster.now)
            and r.entitles(self.user.name, groups)
            and (not r.partition or r.partition in usable)
            and r.minutes_left(cluster.now) >= 1
        ]

    # --- checking options (the form, the REST API, start) ----------------------------------------

    def check_options(self, options: Any, cluster: Cluster, groups: set[str]) -> dict:
        """The options checked against the cluster and the user's rights, filled in; a
        ValueError naming the form field and the limit otherwise."""
        if not isinstance(options, dict):
            raise ValueError("The SLURM options must be a mapping.")
        unknown = sorted(str(k) for k in set(options) - OPTION_KEYS)
        if unknown:
            raise ValueError(
                f"Unknown SLURM options {', '.join(unknown)[:80]}; known are "
                f"{', '.join(sorted(OPTION_KEYS))}."
            )
        usable = {p.name: p for p in self.usable(cluster, groups)}
        if not usable:
            raise ValueError(
                "You may use no SLURM partition: ask the admins to add you to a group."
            )
        reservation = options.get("reservation") or ""
        resv = None
        if reservation:
            if not isinstance(reservation, str):
                raise ValueError("slurm_reservation must be the name of a reservation.")
            resv = {r.name: r for r in self.entitled(cluster, groups)}.get(reservation)
            if resv is None:
                raise ValueError(
                    f"slurm_reservation: {reservation[:40]!r} is not an active reservation you "
                    "are entitled to."
                )
        name = (
            options.get("partition") or (resv.partition if resv else "") or self._preferred(usable)
        )
        if not isinstance(name, str) or name not in usable:
            shown = name[:40] if isinstance(name, str) else type(name).__name__
            raise ValueError(
                f"slurm_partition: you may not use partition {shown!r}; yours are "
                f"{', '.join(usable)}."
            )
        part = usable[name]
        if not part.up:
            raise ValueError(f"slurm_partition: partition {name} is {part.state.lower()} now.")
        if resv and resv.partition and resv.partition != name:
            raise ValueError(
                f"slurm_reservation: {resv.name} is for partition {resv.partition}, not {name}."
            )
        if resv:
            left = resv.minutes_left(cluster.now)
            runtime = min(left, part.max_minutes) if part.max_minutes else left
        else:
            runtime = self._int(options, "runtime", part.default_minutes or part.max_minutes or 60)
            limit = part.max_minutes
            if runtime < 1 or (limit is not None and runtime > limit):
                raise ValueError(
                    f"slurm_runtime: {_human_time(runtime)} is outside 1 min to "
                    f"{_human_time(limit)}, the limit of partition {name}."
                )
        nodes = self._int(options, "nodes", 1)
        if not 1 <= nodes <= part.node_limit:
            raise ValueError(
                f"slurm_nodes: {nodes} is outside 1 to {part.node_limit}, the nodes partition "
                f"{name} allows."
            )
        gpus = self._int(options, "gpus", 0)
        most = cluster.resources.get(name, Resources()).gpus_per_node
        if not 0 <= gpus <= most:
            raise ValueError(
                f"slurm_gpus: {gpus} is outside 0 to {most}, the GPUs per node of partition {name}."
            )
        ui = options.get("ui", "lab")
        if ui not in UIS:
            raise ValueError(f"slurm_ui must be one of {', '.join(UIS)}.")
        env = self._check_env(options.get("env", {}))
        return {
            "partition": name,
            "runtime": runtime,
            "nodes": nodes,
            "gpus": gpus,
            "ui": ui,
            "env": env,
            "reservation": resv.name if resv else "",
        }

    @staticmethod
    def _int(options: dict, key: str, fallback: int) -> int:
        value = options.get(key, fallback)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"slurm_{key} must be a whole number, not {str(value)[:20]!r}.")
        return value

    def _check_env(self, env: Any) -> dict[str, str]:
        if not isinstance(env, dict):
            raise ValueError("slurm_env must be a mapping of variable names to values.")
        if len(env) > self.max_env:
            raise ValueError(f"slurm_env: at most {self.max_env} variables, not {len(env)}.")
        out = {}
        for name, value in env.items():
            if not isinstance(name, str) or not ENV_NAME_RE.match(name):
                raise ValueError(f"slurm_env: {str(name)[:40]!r} is not a variable name.")
            if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
                raise ValueError(f"slurm_env: {name} is set by the hub or SLURM, not by you.")
            if not isinstance(value, str) or len(value) > ENV_VALUE_MAX:
                raise ValueError(
                    f"slurm_env: {name} must be text of at most {ENV_VALUE_MAX} characters."
                )
            if "\x00" in value or "\n" in value or "\r" in value:
                raise ValueError(f"slurm_env: {name} holds a line break or NUL character.")
            out[name] = value
        return out

    def _preferred(self, usable: dict[str, Partition]) -> str:
        """The default partition if the user may use it, else the first that is up."""
        if self.default_partition in usable:
            return self.default_partition
        up = [name for name, part in usable.items() if part.up]
        return (up or list(usable) or [""])[0]

    # --- the form --------------------------------------------------------------------------------

    async def site_form(self) -> str:
        cluster = await self.read_cluster()
        groups = self.user_groups()
        usable = self.usable(cluster, groups)
        if not usable:
            return (
                '<div class="alert alert-warning">You may use no SLURM partition: ask the admins '
                "to add you to a group that may.</div>"
            )
        last = dict(self.user_options or {})
        names = {p.name: p for p in usable}
        picked = last.get("partition") if last.get("partition") in names else self._preferred(names)
        part = names[picked]
        runtime = last.get("runtime") if isinstance(last.get("runtime"), int) else None
        if runtime is None or (part.max_minutes and runtime > part.max_minutes):
            runtime = part.default_minutes or part.max_minutes or 60
        reservations = self.entitled(cluster, groups)
        parts = [_FORM_STYLE, self._free_table(cluster, usable)]
        parts.append(self._partition_select(cluster, usable, picked))
        if reservations:
            parts.append(self._reservation_select(cluster, reservations, last.get("reservation")))
        parts.append(
            '<div class="form-group"><label for="slurm_runtime">Run time (hours)</label>'
            f'<input class="form-control" type="number" id="slurm_runtime" name="slurm_runtime" '
            f'min="0.25" step="0.25" value="{runtime / 60:g}">'
            '<p class="help-block">The job ends after this time; never more than the '
            "partition allows.</p></div>"
        )
        nodes = last.get("nodes") if isinstance(last.get("nodes"), int) else 1
        gpus = last.get("gpus") if isinstance(last.get("gpus"), int) else 0
        parts.append(
            '<div class="form-group"><label for="slurm_nodes">Nodes</label>'
            f'<input class="form-control" type="number" id="slurm_nodes" name="slurm_nodes" '
            f'min="1" step="1" value="{nodes}"></div>'
            '<div class="form-group"><label for="slurm_gpus">GPUs per node</label>'
            f'<input class="form-control" type="number" id="slurm_gpus" name="slurm_gpus" '
            f'min="0" step="1" value="{gpus}"></div>'
        )
        ui = last.get("ui") if last.get("ui") in UIS else "lab"
        radios = "".join(
            f'<label style="margin-right:1.5em;font-weight:normal"><input type="radio" '
            f'name="slurm_ui" value="{key}"{" checked" if key == ui else ""}> {label}</label>'
            for key, label in (("lab", "JupyterLab"), ("classic", "Classic notebook"))
        )
        parts.append(f'<div class="form-group"><label>Interface</label><div>{radios}</div></div>')
        env = last.get("env") if isinstance(last.get("env"), dict) else {}
        text = "\n".join(f"{k}={v}" for k, v in env.items())
        parts.append(
            '<div class="form-group"><label for="slurm_env">Environment variables</label>'
            f'<textarea class="form-control" id="slurm_env" name="slurm_env" rows="3" '
            f'placeholder="JUPYTER_PATH=/home/you/kernels">{html.escape(text)}</textarea>'
            '<p class="help-block">One NAME=value per line, set in the job before the server '
            "starts.</p></div>"
        )
        parts.append(_FORM_SCRIPT)
        return "\n".join(parts)

    def _free_table(self, cluster: Cluster, usable: list[Partition]) -> str:
        rows = []
        for part in usable:
            res = cluster.resources.get(part.name, Resources())
            state = part.state.lower() if not part.up else res.available
            down = ' class="slurm-down"' if state != "up" else ""
            usable_cpus = res.cpus_total - res.cpus_other
            if part.oversubscribe > 1:
                slots = usable_cpus * part.oversubscribe
                free = max(0, slots - cluster.running.get(part.name, 0))
                seats = f"{free} of {slots} notebook slots"
            else:
                seats = f"{res.cpus_idle} of {res.cpus_total} CPUs"
            gpus = str(res.gpus_per_node) if res.gpus_per_node else "-"
            rows.append(
                f"<tr{down}><td>{html.escape(part.name)}</td><td>{html.escape(state)}</td>"
                f"<td>{res.nodes_idle} idle of {res.nodes_total}"
                f"{f', {res.nodes_other} unavailable' if res.nodes_other else ''}</td>"
                f"<td>{seats}</td><td>{gpus}</td><td>{_human_time(part.max_minutes)}</td></tr>"
            )
        stamp = cluster.now.strftime("%H:%M:%S")
        return (
            '<table class="table table-condensed slurm-free"><caption>Free now (SLURM, '
            f"{stamp})</caption><tr><th>Partition</th><th>State</th><th>Nodes</th>"
            "<th>Free</th><th>GPUs/node</th><th>Max run time</th></tr>" + "".join(rows) + "</table>"
        )

    def _partition_select(self, cluster: Cluster, usable: list[Partition], picked: str) -> str:
        options = []
        for part in usable:
            gpus = cluster.resources.get(part.name, Resources()).gpus_per_node
            note = "" if part.up else f" ({part.state.lower()})"
            selected = " selected" if part.name == picked else ""
            disabled = " disabled" if not part.up else ""
            options.append(
                f'<option value="{html.escape(part.name)}"{selected}{disabled} '
                f'data-max-hours="{_hours(part.max_minutes) if part.max_minutes else 100000}" '
                f'data-default-hours="{_hours(part.default_minutes or part.max_minutes or 60)}" '
                f'data-max-nodes="{part.node_limit}" data-max-gpus="{gpus}">'
                f"{html.escape(part.name)}: up to {_human_time(part.max_minutes)}{note}</option>"
            )
        return (
            '<div class="form-group"><label for="slurm_partition">Partition</label>'
            '<select class="form-control" id="slurm_partition" name="slurm_partition">'
            + "".join(options)
            + "</select></div>"
        )

    def _reservation_select(
        self, cluster: Cluster, reservations: list[Reservation], last: Any
    ) -> str:
        options = ['<option value="">none</option>']
        for resv in reservations:
            left = resv.minutes_left(cluster.now)
            selected = " selected" if resv.name == last else ""
            options.append(
                f'<option value="{html.escape(resv.name)}"{selected} '
                f'data-partition="{html.escape(resv.partition)}" data-hours-left="{left / 60:.2f}">'
                f"{html.escape(resv.name)} ({html.escape(resv.partition or 'any partition')}, "
                f"{_human_time(left)} left)</option>"
            )
        return (
            '<div class="form-group"><label for="slurm_reservation">Reservation</label>'
            '<select class="form-control" id="slurm_reservation" name="slurm_reservation">'
            + "".join(options)
            + '</select><p class="help-block">A job in a reservation runs until the '
            "reservation ends.</p></div>"
        )

    def site_options(self, formdata: dict[str, list[str]]) -> dict:
        def one(key: str, fallback: str = "") -> str:
            values = formdata.get(f"slurm_{key}") or [fallback]
            return str(values[0]).strip()

        options: dict[str, Any] = {"ui": one("ui", "lab")}
        for key in ("partition", "reservation"):
            if one(key):
                options[key] = one(key)
        if one("runtime"):
            try:
                hours = float(one("runtime"))
            except ValueError:
                raise ValueError(
                    f"slurm_runtime: {one('runtime')[:20]!r} is not a number of hours."
                ) from None
            if hours != hours or hours in (float("inf"), float("-inf")):
                raise ValueError("slurm_runtime must be a number of hours.")
            options["runtime"] = round(hours * 60)
        for key, fallback in (("nodes", "1"), ("gpus", "0")):
            try:
                options[key] = int(one(key, fallback))
            except ValueError:
                raise ValueError(f"slurm_{key}: {one(key)[:20]!r} is not a whole number.") from None
        env_text = "\n".join(formdata.get("slurm_env") or [])
        options["env"] = parse_env_text(env_text)
        return self.check_options(options, self.read_cluster_sync(), self.user_groups())

    # --- the job ---------------------------------------------------------------------------------

    async def _get_batch_script(self, **subvars: Any) -> str:
        # batchspawner merges user_options into the template values; the checked values of
        # this start always win.
        subvars.update(self._job_values)
        return format_template(self.batch_script, **subvars)

    def _job_values_for(self, options: dict) -> dict[str, Any]:
        exports = "\n".join(
            f"export {name}={shlex.quote(value)}" for name, value in options["env"].items()
        )
        return {
            "job_name": self.req_job_name,
            "partition": options["partition"],
            "runtime": str(options["runtime"]),
            "nodes": str(options["nodes"]),
            "gres": f"gpu:{options['gpus']}" if options["gpus"] else "",
            "reservation": options["reservation"],
            "user_env": exports,
            "venv_bin": shlex.quote(f"{self.notebook_venv}/bin"),
        }

    def _row(self) -> JobRow | None:
        row = parse_job(self.job_status or "")
        # A job of another name is not this instance's (a reused id after a restart).
        if row is None or row.name != self.req_job_name:
            return None
        return row

    def state_ispending(self) -> bool:
        row = self._row()
        return bool(row and row.state in PENDING_STATES)

    def state_isrunning(self) -> bool:
        row = self._row()
        return bool(row and row.state in RUNNING_STATES)

    def state_gethost(self) -> str:
        row = self._row()
        if not row or row.host in ("", "n/a", "(null)"):
            raise RuntimeError(f"SLURM job {self.job_id} runs on no host SLURM names.")
        return row.host

    def _wrappers(self) -> list[Any]:
        """The spawners that wrap this one (the site's one-form spawner). batchspawner's API
        handler gives the port the notebook reports to the spawner JupyterHub knows."""
        spawners = getattr(self.user, "spawners", None) or {}
        return [
            s
            for s in spawners.values()
            if s is not self and getattr(s, "child_spawner", None) is self
        ]

    def _reported_port(self) -> int:
        if self.port:
            return int(self.port)
        for wrapper in self._wrappers():
            if getattr(wrapper, "port", 0):
                return int(wrapper.port)
        return 0

    async def cancel_batch_job(self) -> None:
        if not self.job_id:
            # scancel --name without a job id would cancel every job of that name.
            return
        try:
            await super().cancel_batch_job()
        except RuntimeError as error:
            # Cancelling a job that already ended is not an error.
            if "Invalid job id" not in str(error) and "already completing" not in str(error):
                raise

    # --- the user's jobs of the other hub instances -------------------------------------------

    def own_server_name(self) -> str:
        return self.req_job_name

    async def _run_as_user(self, command: str) -> str:
        """A SLURM command as the user (the hub's sudoers rule), within command_timeout."""
        if not USER_RE.match(self.user.name):
            raise ValueError(f"The user name {self.user.name[:40]!r} cannot run SLURM jobs.")
        prefix = format_template(self.exec_prefix, **self.get_req_subvars())
        return await asyncio.wait_for(self.run_command(f"{prefix} {command}"), self.command_timeout)

    async def find_other_servers(self) -> list[OtherServer]:
        names = self.other_instance_names()
        if not names:
            return []
        instance_of = {name: instance for instance, name in names.items()}
        try:
            out = await self._run_as_user(
                f"squeue --noheader --user={self.user.name} "
                f"--name={','.join(sorted(instance_of))} "
                f"--format={shlex.quote(NAMED_JOBS_FORMAT)}"
            )
        except RuntimeError as error:
            if not sudo_refused(str(error)):
                raise
            # Not in jupyterhub_slurm_groups: no hub could have submitted a job as this user.
            self.log.debug("No SLURM jobs of other instances for %s: %s", self.user.name, error)
            return []
        return [
            OtherServer(
                instance=instance_of[job.name],
                name=job.name,
                kind=f"SLURM job {job.job_id}",
                ident=job.job_id,
                detail=job.detail(),
            )
            for job in parse_named_jobs(out, frozenset(instance_of))
        ]

    async def stop_other_server(self, server: OtherServer) -> None:
        if not server.ident.isdigit() or server.name not in self.other_instance_names().values():
            raise ValueError(f"Not a SLURM job of another instance: {server.describe()}")
        self.log.info(
            "Cancelling SLURM job %s (%s) of %s, a server of instance %s",
            server.ident,
            server.name,
            self.user.name,
            server.instance,
        )
        try:
            await self._run_as_user(
                f"scancel --name={server.name} --user={self.user.name} {server.ident}"
            )
        except RuntimeError as error:
            # A job that ended meanwhile is not an error.
            if "Invalid job id" not in str(error) and "already completing" not in str(error):
                raise

    async def _give_up(self, message: str) -> None:
        """Cancel the job and end the start with a message for the user. An HTTPError:
        JupyterHub shows its message on the page of a spawn that fails within a second (a
        plain exception becomes "Unhandled error"), in the progress of a slower one, and
        answers the REST API with it."""
        with contextlib.suppress(Exception):
            await self.cancel_batch_job()
        self.clear_state()
        raise web.HTTPError(503, "%s", message)

    async def start(self) -> tuple[str, int]:
        try:
            groups = self.user_groups()
            cluster = await self.read_cluster()
            options = self.check_options(self.user_options, cluster, groups)
        except (ValueError, RuntimeError) as error:
            # Options sent through the REST API are checked here only: refuse them plainly.
            raise web.HTTPError(400, "%s", str(error)) from None
        self.user_options = options
        self._job_values = self._job_values_for(options)
        self.default_url = UIS[options["ui"]]
        for wrapper in self._wrappers():
            wrapper.port = 0
        self.port = 0
        self.job_id = ""
        await self.submit_batch_script()
        if not self.job_id:
            raise web.HTTPError(503, "SLURM did not accept the notebook job (no job id).")
        job = self.job_id
        where = f"partition {options['partition']}"
        queued = time.monotonic()
        while True:
            status = await self.query_job_status()
            row = self._row()
            if status == JobStatus.RUNNING and row and row.state == "RUNNING":
                break
            if status == JobStatus.PENDING and row:
                problem = job_problem(row.reason)
                waited = time.monotonic() - queued
                if problem or (self.pending_timeout and waited > self.pending_timeout):
                    await self._give_up(
                        f"Your SLURM job {job} cannot start in {where}: "
                        f"{problem or f'still waiting after {waited:.0f} s'} "
                        f"(SLURM: {row.reason}). Pick another partition or try again later."
                    )
            elif status != JobStatus.UNKNOWN:
                state = row.state.lower() if row else "gone"
                await self._give_up(
                    f"Your SLURM job {job} ended before the notebook server started ({state}); "
                    f"see ~/.jupyterhub-slurm-{job}.log."
                )
            await asyncio.sleep(self.startup_poll_interval)
        self.ip = self.state_gethost()
        # Wait for the port the server reports, watching the job (batchspawner#254).
        checked = time.monotonic()
        while not self._reported_port():
            await asyncio.sleep(self.startup_poll_interval)
            if time.monotonic() - checked >= 2:
                checked = time.monotonic()
                status = await self.query_job_status()
                if status not in (JobStatus.RUNNING, JobStatus.UNKNOWN):
                    await self._give_up(
                        f"Your SLURM job {job} ended before the notebook server reported its "
                        f"port; see ~/.jupyterhub-slurm-{job}.log on {self.ip}."
                    )
        self.port = self._reported_port()
        self.log.info("SLURM job %s of %s runs at %s:%s", job, self.user.name, self.ip, self.port)
        return self.ip, self.port

    async def progress(self) -> Any:
        while True:
            row = self._row()
            if row and row.state in PENDING_STATES:
                yield {"message": f"SLURM job {self.job_id} waits in the queue: {row.reason}"}
            elif row and row.state in RUNNING_STATES:
                yield {
                    "message": f"SLURM job {self.job_id} runs on {row.host}; waiting for the "
                    "notebook server..."
                }
                return
            else:
                yield {"message": "Submitting the SLURM job..."}
            await asyncio.sleep(1)


async def _standalone_form(spawner: SiteSlurmSpawner) -> str:
    return await spawner.site_form()


def describe(text: str) -> str:
    """What the spawner makes of squeue output (``squeue -h -j <id> -o '%T|%j|%B|%r'``), as
    JSON: used by the slurm role's molecule scenario on real output."""
    row = parse_job(text)
    return json.dumps(
        {
            "state": row.state if row else None,
            "reason": row.reason if row else None,
            "problem": job_problem(row.reason) if row else None,
        }
    )
