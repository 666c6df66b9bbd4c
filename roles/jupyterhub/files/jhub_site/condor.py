"""Notebook servers as HTCondor jobs in the site's Jupyter fast lane (batchspawner's CondorSpawner).

``SiteCondorSpawner`` submits each user's server as a vanilla-universe job, as the user
(``sudo -u``), to the dedicated schedd of the htcondor role (``schedd_name`` through the
Jupyter collector ``pool``), so that the dedicated negotiator starts it within seconds on the
over-committed Jupyter slot of an execute node:

- the job is marked ``+<job_attribute> = True`` (what the negotiators' and slots' policy
  tests), charged to ``accounting_group`` as the user, and named
  ``<jupyterhub_server_name_prefix><user>`` (``JobBatchName``); queries and removals are
  restricted to that name, so a hub instance never touches another instance's jobs;
- CPUs, memory (GB) and run time (hours) come from the form fields ``condor_cpus``,
  ``condor_memory`` and ``condor_runtime``, within the site's limits; they are checked again
  in ``start()`` (the REST API takes ``user_options`` without the form) and the run time is
  enforced by HTCondor (``allowed_job_duration``);
- a held job (JobStatus 5) ends the start at once with HTCondor's hold reason instead of a
  timeout, and is removed from the queue (it would count against the one-job-per-user limit);
  a job already running that gets held is reported and removed the same way;
- a failing ``condor_q`` is not taken for a vanished job: the server is kept while the queue
  does not answer, and a start fails with the error after ``query_failure_timeout`` seconds;
- while waiting for the notebook to report its port, the job is watched, so a job that ends
  before its server comes up fails the start at once (batchspawner 1.3.0 waits until the
  start timeout).

The user's jobs of the other hub instances (``JobBatchName == "<other prefix><user>"``) are
found with condor_q on the same schedd, as the user, and removed with condor_rm by cluster
and name.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shlex
import time
from enum import Enum
from typing import Any

from batchspawner import CondorSpawner, JobStatus
from batchspawner.batchspawner import format_template
from traitlets import Float, Int, Unicode, default

from jhub_site import batchapi
from jhub_site.exclusive import InstanceServers, OtherServer, sudo_refused

# batchspawner's own port handler sets whatever the body names: the site's replaces it.
batchapi.install()

# HTCondor's JobStatus codes.
_IDLE, _RUNNING, _REMOVED, _COMPLETED, _HELD, _TRANSFERRING, _SUSPENDED = 1, 2, 3, 4, 5, 6, 7
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_DAEMON = re.compile(r"^[A-Za-z0-9._-]+(@[A-Za-z0-9._-]+)?$")
_POOL = re.compile(r"^[A-Za-z0-9._-]+(:[0-9]+)?$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^\s*[0-9]{1,6}\s*$")
# What condor_q says about a job that may still run, by JobStatus (completed jobs are gone;
# a removed job stays in the queue until its processes have ended).
_LIVE_JOB_STATES = {
    _IDLE: "idle",
    _RUNNING: "running",
    _REMOVED: "being removed",
    _HELD: "held",
    _TRANSFERRING: "transferring output",
    _SUSPENDED: "suspended",
}

# The fields of the form: option key, form field, unit, config trait prefix.
_FIELDS = (
    ("cpus", "condor_cpus", "CPUs", "cpus"),
    ("memory_gb", "condor_memory", "GB of memory", "memory_gb"),
    ("runtime_hours", "condor_runtime", "hours of run time", "runtime_hours"),
)


class JobState(Enum):
    PENDING = "pending"
    RUNNING = "running"
    HELD = "held"
    GONE = "gone"
    QUERY_FAILED = "query failed"


class SiteCondorSpawner(InstanceServers, CondorSpawner):
    """A notebook server as a job of the site's HTCondor Jupyter fast lane."""

    schedd_name = Unicode(
        config=True, help="Name of the dedicated Jupyter schedd, e.g. jupyter@condor-cm."
    )
    pool = Unicode(config=True, help="The Jupyter collector (host:port) where the schedd is found.")
    job_attribute = Unicode(
        "IsJupyterJob", config=True, help="Job attribute the policy recognises Jupyter jobs by."
    )
    accounting_group = Unicode(
        "group_jupyter", config=True, help="Accounting group Jupyter jobs are charged to."
    )
    job_name_template = Unicode(
        "jupyter-{username}",
        config=True,
        help="Name of a user's job (JobBatchName); starts with the instance's server prefix.",
    )
    max_cpus = Int(4, config=True, help="Most CPUs a user may request.")
    max_memory_gb = Int(16, config=True, help="Most memory (GB) a user may request.")
    max_runtime_hours = Int(12, config=True, help="Longest run time (hours) a user may request.")
    default_cpus = Int(1, config=True, help="CPUs preselected in the form.")
    default_memory_gb = Int(2, config=True, help="Memory (GB) preselected in the form.")
    default_runtime_hours = Int(8, config=True, help="Run time (hours) preselected in the form.")
    query_failure_timeout = Float(
        60.0,
        config=True,
        help="Seconds condor_q may fail in a row during a start before the start gives up.",
    )

    hold_reason = Unicode("")
    query_error = Unicode("")

    # --- the job ------------------------------------------------------------------------------

    @default("batch_script")
    def _default_batch_script(self) -> str:
        return "\n".join(
            [
                "universe = vanilla",
                "executable = /bin/sh",
                "arguments = \"-c 'exec {{cmd}}'\"",
                "request_cpus = {{nprocs}}",
                "request_memory = {{memory}}",
                "allowed_job_duration = {{runtime}}",
                "accounting_group = {{accounting_group}}",
                "accounting_group_user = {{username}}",
                "+{{job_attribute}} = True",
                "batch_name = {{job_name}}",
                "initialdir = {{homedir}}",
                "output = {{homedir}}/.jupyterhub.condor.out",
                "error = {{homedir}}/.jupyterhub.condor.err",
                "should_transfer_files = NO",
                "getenv = {{keepvars}}",
                "{{options}}",
                "queue",
                "",
            ]
        )

    @default("batch_submit_cmd")
    def _default_submit_cmd(self) -> str:
        return "condor_submit -name {{schedd}} -pool {{pool}}"

    @default("batch_query_cmd")
    def _default_query_cmd(self) -> str:
        return (
            "condor_q -name {{schedd}} -pool {{pool}} {{job_id}}"
            " -constraint 'JobBatchName == \"{{job_name}}\"'"
            " -json -attributes JobStatus,RemoteHost,HoldReason,JobBatchName"
        )

    @default("batch_cancel_cmd")
    def _default_cancel_cmd(self) -> str:
        return (
            "condor_rm -name {{schedd}} -pool {{pool}}"
            " -constraint 'ClusterId == {{job_id}} && JobBatchName == \"{{job_name}}\"'"
        )

    @default("startup_poll_interval")
    def _default_startup_poll_interval(self) -> float:
        return 2.0

    def job_name(self) -> str:
        return self.job_name_template.format(username=self._username())

    def _username(self) -> str:
        name = self.user.name
        if not _USERNAME.match(name):
            raise ValueError(
                f"The user name {name[:40]!r} cannot name an HTCondor job: only lower-case "
                "letters, digits, '.', '_' and '-' are allowed."
            )
        return name

    def _check_settings(self) -> None:
        """The site's settings, before anything is put into a shell command."""
        if not _DAEMON.match(self.schedd_name):
            raise ValueError(f"SiteCondorSpawner.schedd_name {self.schedd_name!r} is not set.")
        if not _POOL.match(self.pool):
            raise ValueError(f"SiteCondorSpawner.pool {self.pool!r} is not host:port.")
        for trait in ("job_attribute", "accounting_group"):
            if not _NAME.match(getattr(self, trait)):
                raise ValueError(f"SiteCondorSpawner.{trait} is not a ClassAd name.")
        if not _USERNAME.match(self.job_name()):
            raise ValueError(f"SiteCondorSpawner.job_name_template gives {self.job_name()!r}.")

    def get_req_subvars(self) -> dict[str, Any]:
        subvars = super().get_req_subvars()
        subvars.update(
            schedd=self.schedd_name,
            pool=self.pool,
            job_attribute=self.job_attribute,
            accounting_group=self.accounting_group,
            job_name=self.job_name(),
        )
        return subvars

    # --- the form and the options -------------------------------------------------------------

    def _limit(self, key: str) -> int:
        return int(getattr(self, f"max_{key}"))

    def _default(self, key: str) -> int:
        return min(int(getattr(self, f"default_{key}")), self._limit(key))

    async def site_form(self) -> str:
        last = self.user_options or {}
        parts = []
        for key, field, unit, _ in _FIELDS:
            value = last.get(key)
            if not (isinstance(value, int) and not isinstance(value, bool)):
                value = self._default(key)
            value = min(max(value, 1), self._limit(key))
            label = unit[0].upper() + unit[1:]
            parts.append(
                '<div class="form-group">'
                f'<label for="{field}">{html.escape(label)}</label>'
                f'<input class="form-control" type="number" id="{field}" name="{field}" '
                f'min="1" max="{self._limit(key)}" step="1" value="{value}" required>'
                f'<p class="help-block">1 to {self._limit(key)}.</p>'
                "</div>"
            )
        return "".join(parts)

    def site_options(self, formdata: dict[str, list[str]]) -> dict:
        options = {}
        for key, field, unit, _ in _FIELDS:
            values = formdata.get(field) or [str(self._default(key))]
            text = values[0] if isinstance(values[0], str) else ""
            if not _INT.match(text):
                raise ValueError(f"{field}: {text[:20]!r} is not a whole number of {unit}.")
            options[key] = self._check_value(key, field, unit, int(text))
        return options

    def _check_value(self, key: str, field: str, unit: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{field}: {str(value)[:20]!r} is not a whole number of {unit}.")
        if value < 1:
            raise ValueError(f"{field}: {value} is below the minimum of 1 ({unit}).")
        if value > self._limit(key):
            raise ValueError(
                f"{field}: {value} is above this site's limit of {self._limit(key)} {unit}."
            )
        return value

    def checked_options(self, options: dict | None) -> dict:
        """The user's options, checked again: the REST API accepts them without the form."""
        options = dict(options or {})
        known = {key for key, *_ in _FIELDS}
        unknown = sorted(str(k) for k in set(options) - known)
        if unknown:
            raise ValueError(
                f"Unknown options for an HTCondor job: {', '.join(unknown)[:80]}; only "
                "condor_cpus, condor_memory and condor_runtime may be chosen."
            )
        return {
            key: self._check_value(key, field, unit, options.get(key, self._default(key)))
            for key, field, unit, _ in _FIELDS
        }

    def _apply(self, options: dict) -> None:
        self.req_nprocs = str(options["cpus"])
        self.req_memory = str(options["memory_gb"] * 1024)  # request_memory is in MB
        self.req_runtime = str(options["runtime_hours"] * 3600)  # allowed_job_duration: seconds

    # --- the queue ----------------------------------------------------------------------------

    def _command(self, template: str) -> str:
        subvars = self.get_req_subvars()
        subvars["job_id"] = self.job_id
        return " ".join(
            (format_template(self.exec_prefix, **subvars), format_template(template, **subvars))
        )

    async def job_state(self) -> tuple[JobState, dict]:
        """Where the job is, from one condor_q of the dedicated schedd."""
        if not self.job_id:
            return JobState.GONE, {}
        try:
            out = await self.run_command(self._command(self.batch_query_cmd))
        except RuntimeError as err:  # condor_q exited with an error (stderr in the message)
            self.query_error = _first_line(str(err)) or "condor_q failed"
            self.job_status = ""
            return JobState.QUERY_FAILED, {}
        self.query_error = ""
        try:
            ads = json.loads(out) if out.strip() else []
        except json.JSONDecodeError:
            self.query_error = f"condor_q answered something else than JSON: {out[:80]!r}"
            return JobState.QUERY_FAILED, {}
        ads = [ad for ad in ads if isinstance(ad, dict)]
        if not ads:
            self.job_status = ""
            return JobState.GONE, {}
        ad = ads[0]
        status = ad.get("JobStatus")
        self.job_status = f"{status}, {ad.get('RemoteHost') or ''}"
        if status == _HELD:
            self.hold_reason = str(ad.get("HoldReason") or "no reason given")
            return JobState.HELD, ad
        if status == _RUNNING:
            return JobState.RUNNING, ad
        if status in (_IDLE, _SUSPENDED):
            return JobState.PENDING, ad
        return JobState.GONE, ad  # removed, completed or transferring its output at the end

    async def query_job_status(self) -> JobStatus:
        state, _ = await self.job_state()
        return {
            JobState.RUNNING: JobStatus.RUNNING,
            JobState.PENDING: JobStatus.PENDING,
            JobState.QUERY_FAILED: JobStatus.UNKNOWN,
        }.get(state, JobStatus.NOTFOUND)

    def state_gethost(self) -> str:
        host = self.job_status.split(", ", 1)[-1]
        return host.rsplit("@", 1)[-1]

    async def _remove(self) -> None:
        try:
            await self.cancel_batch_job()
        except RuntimeError as err:
            self.log.warning("Could not remove HTCondor job %s: %s", self.job_id, err)

    async def cancel_batch_job(self) -> None:
        self.log.info("Removing HTCondor job %s (%s)", self.job_id, self.job_name())
        await self.run_command(self._command(self.batch_cancel_cmd))

    def _held_message(self) -> str:
        return (
            f"Your notebook job {self.job_id} was put on hold by HTCondor: {self.hold_reason} "
            "It has been removed from the queue; fix the cause (or ask the site's support) "
            "and start your server again."
        )

    # --- the user's jobs of the other hub instances -----------------------------------------

    def own_server_name(self) -> str:
        return self.job_name()

    def _as_user(self, command: str) -> str:
        return f"{format_template(self.exec_prefix, **self.get_req_subvars())} {command}"

    async def find_other_servers(self) -> list[OtherServer]:
        names = self.other_instance_names()
        if not names:
            return []
        self._check_settings()
        instance_of = {name: instance for instance, name in names.items()}
        constraint = " || ".join(f'JobBatchName == "{name}"' for name in sorted(instance_of))
        try:
            out = await self.run_command(
                self._as_user(
                    f"condor_q -name {self.schedd_name} -pool {self.pool} "
                    f"-constraint {shlex.quote(constraint)} "
                    "-json -attributes ClusterId,ProcId,JobStatus,RemoteHost,JobBatchName"
                )
            )
        except RuntimeError as error:
            if not sudo_refused(str(error)):
                raise
            # The hub may not submit as this user: no hub could have started a job of theirs.
            self.log.debug("No HTCondor jobs of other instances for %s: %s", self.user.name, error)
            return []
        return [
            OtherServer(
                instance=instance_of[ad["JobBatchName"]],
                name=ad["JobBatchName"],
                kind=f"HTCondor job {ad['ClusterId']}",
                ident=str(ad["ClusterId"]),
                detail=_job_detail(ad),
            )
            for ad in parse_named_jobs(out, frozenset(instance_of))
        ]

    async def stop_other_server(self, server: OtherServer) -> None:
        if not server.ident.isdigit() or server.name not in self.other_instance_names().values():
            raise ValueError(f"Not an HTCondor job of another instance: {server.describe()}")
        self._check_settings()
        self.log.info(
            "Removing HTCondor job %s (%s) of %s, a server of instance %s",
            server.ident,
            server.name,
            self.user.name,
            server.instance,
        )
        constraint = f'ClusterId == {server.ident} && JobBatchName == "{server.name}"'
        await self.run_command(
            self._as_user(
                f"condor_rm -name {self.schedd_name} -pool {self.pool} "
                f"-constraint {shlex.quote(constraint)}"
            )
        )

    # --- start, poll, progress ----------------------------------------------------------------

    def _wrapper(self) -> Any:
        """The spawner JupyterHub knows for this server, when this one is a wrapped child:
        batchspawner's API handler stores the notebook's port there."""
        spawners = getattr(self.user, "spawners", None) or {}
        wrapper = spawners.get(self.name) if hasattr(spawners, "get") else None
        return wrapper if wrapper is not None and wrapper is not self else None

    def _reported_port(self) -> int:
        if self.port:
            return int(self.port)
        wrapper = self._wrapper()
        return int(getattr(wrapper, "port", 0) or 0) if wrapper is not None else 0

    async def start(self) -> tuple[str, int]:
        options = self.checked_options(self.user_options)
        self.user_options = options
        self._check_settings()
        self._apply(options)
        self.hold_reason = self.query_error = ""
        self.ip = self.traits()["ip"].default_value
        self.port = 0
        wrapper = self._wrapper()
        if wrapper is not None:
            wrapper.port = 0
        if self.server:
            self.server.port = self.port

        try:
            await self.submit_batch_script()
        except RuntimeError as err:
            raise RuntimeError(
                f"HTCondor did not take the notebook job: {_last_lines(str(err))}"
            ) from None
        if not self.job_id:
            raise RuntimeError("HTCondor did not take the notebook job (no job id).")

        await self._wait_until(JobState.RUNNING)
        self.ip = self.state_gethost()
        checked = time.monotonic()
        while not self._reported_port():
            await asyncio.sleep(self.startup_poll_interval / 4)
            if time.monotonic() - checked >= self.startup_poll_interval:
                checked = time.monotonic()
                await self._wait_until(JobState.RUNNING, waiting_for="its port")
        self.port = self._reported_port()
        self.log.info("Notebook job %s started at %s:%s", self.job_id, self.ip, self.port)
        return self.ip, self.port

    async def _wait_until(self, wanted: JobState, waiting_for: str = "") -> None:
        """Poll until the job is in the wanted state; fail at once when it cannot get there."""
        failing_since = None
        while True:
            state, _ = await self.job_state()
            if state is wanted:
                return
            if state is JobState.HELD:
                message = self._held_message()
                await self._remove()
                self.clear_state()
                raise RuntimeError(message)
            if state is JobState.GONE:
                job = self.job_id
                self.clear_state()
                when = f"while the hub waited for {waiting_for}" if waiting_for else "early"
                raise RuntimeError(
                    f"Your notebook job {job} ended {when}; see ~/.jupyterhub.condor.err in "
                    "your home directory."
                )
            if state is JobState.QUERY_FAILED:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since >= self.query_failure_timeout:
                    message = (
                        f"HTCondor's Jupyter queue {self.schedd_name} does not answer "
                        f"({self.query_error}); try again later."
                    )
                    await self._remove()
                    self.clear_state()
                    raise RuntimeError(message)
            else:
                failing_since = None
            await asyncio.sleep(self.startup_poll_interval)

    async def poll(self) -> int | None:
        state, _ = await self.job_state()
        if state in (JobState.PENDING, JobState.RUNNING, JobState.QUERY_FAILED):
            # A queue that does not answer says nothing about the job: keep the server.
            return None
        if state is JobState.HELD:
            self.log.warning(
                "Notebook job %s of %s was held (%s); removing it.",
                self.job_id,
                self.user.name,
                self.hold_reason,
            )
            await self._remove()
        self.clear_state()
        return 1

    async def progress(self) -> Any:
        while True:
            if self.hold_reason:
                yield {"message": self._held_message()}
                return
            if self.query_error:
                yield {"message": f"HTCondor's queue does not answer: {self.query_error}"}
            elif self.state_isrunning():
                yield {
                    "message": f"Job {self.job_id} runs on {self.state_gethost()}; "
                    "waiting for the notebook server"
                }
                return
            elif self.state_ispending():
                yield {"message": f"Job {self.job_id} waits in the Jupyter queue"}
            else:
                yield {"message": "Submitting the notebook job to HTCondor"}
            await asyncio.sleep(1)

    def clear_state(self) -> None:
        super().clear_state()
        self.query_error = ""


def parse_named_jobs(text: str, names: frozenset[str]) -> list[dict]:
    """The job ads of exactly these batch names that may still run, from
    ``condor_q -json -attributes ClusterId,ProcId,JobStatus,RemoteHost,JobBatchName``
    (no output at all when no job matches); ValueError for anything but such JSON."""
    if not text.strip():
        return []
    try:
        ads = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"condor_q answered something else than JSON: {text[:80]!r}") from None
    if not isinstance(ads, list):
        raise ValueError(f"condor_q answered something else than a list: {text[:80]!r}")
    return [
        ad
        for ad in ads
        if isinstance(ad, dict)
        and ad.get("JobBatchName") in names
        and isinstance(ad.get("ClusterId"), int)
        and ad.get("JobStatus") in _LIVE_JOB_STATES
    ]


def _job_detail(ad: dict) -> str:
    state = _LIVE_JOB_STATES[ad["JobStatus"]]
    host = str(ad.get("RemoteHost") or "").rsplit("@", 1)[-1]
    return f"{state} on {host}" if host and ad["JobStatus"] == _RUNNING else state


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[-count:])[:500] or "condor_submit failed"
