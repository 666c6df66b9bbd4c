#!/usr/bin/env python3
"""Browser probe of the JupyterHub service: a scheduled user's path, end to end.

  probe.py --url https://jupyter.example.org/ --user probe --password-file FILE \
      [--ca site-ca.pem] [--output-dir /var/lib/prometheus/node-exporter] \
      [--failure-dir /var/lib/jupyterhub-probe/failures] [--production-instance a]

Drives Debian's Chromium (headless, through Playwright) through the real login page: logs
in, starts the server (submitting the spawn form's defaults when the hub shows one), opens
a notebook, runs a cell (print(6*7)) and checks its output (42), stops the server and logs
out. Writes the outcome for Prometheus in the node exporter's textfile format (atomically):
success (0/1), duration, the seconds of each step, the step that failed and the hub
instance that answered (header X-JupyterHub-Instance). On failure it saves a screenshot and
a log next to it. Prints one JSON line; exit code 0 when the probe passed, 1 when it
failed, 2 on bad arguments.

Every option can also come from the environment (JHUB_PROBE_URL, JHUB_PROBE_USER,
JHUB_PROBE_PASSWORD_FILE, JHUB_PROBE_CA_FILE, JHUB_PROBE_OUTPUT_DIR, ...): the systemd
service on the monitoring host and the test suite run the same script. The password is only
ever read from a file and never printed. Playwright must never download a browser: this
script sets PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 and always starts --chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

# Flags for a headless Chromium in a container or a locked-down service.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
STEPS = ["login", "spawn", "notebook", "execute", "stop", "logout"]
INSTANCE_HEADER = "x-jupyterhub-instance"
NOTEBOOK_NAME = "jupyterhub-probe.ipynb"
LABEL_VALUE = re.compile(r"[\\\"\n]")
# The prompt of a code cell the kernel has taken: [*] while it runs, then [1], [2]...
RAN_PROMPT = re.compile(r"\[(\*|\d+)\]")


class ProbeError(Exception):
    """A step of the user's path did not do what a user expects."""


@dataclass
class Outcome:
    """What one run of the probe saw."""

    name: str
    started: float = field(default_factory=time.time)
    success: bool = False
    failed_step: str = ""
    error: str = ""
    steps: dict[str, float] = field(default_factory=dict)
    hub_instance: str = ""
    duration: float = 0.0
    output: str = ""
    screenshot: str = ""


def env_default(name: str, default: str | None = None) -> str | None:
    """JHUB_PROBE_<name> from the environment; unset or empty gives the default."""
    return os.environ.get(f"JHUB_PROBE_{name}") or default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:]),
    )
    add = parser.add_argument
    add("--url", default=env_default("URL"), help="the hub's public URL (JHUB_PROBE_URL)")
    add("--user", default=env_default("USER", "probe"), help="login name of the probe user")
    add(
        "--password-file",
        type=Path,
        default=env_default("PASSWORD_FILE"),
        help="file holding the probe user's password (JHUB_PROBE_PASSWORD_FILE)",
    )
    add("--ca", type=Path, default=env_default("CA_FILE"), help="CA (PEM) of the front door")
    add(
        "--output-dir",
        type=Path,
        default=env_default("OUTPUT_DIR"),
        help="node exporter textfile directory for the metrics; none: no metrics",
    )
    add(
        "--failure-dir",
        type=Path,
        default=env_default("FAILURE_DIR"),
        help="where screenshots and logs of failed runs go (default: --output-dir)",
    )
    add("--name", default=env_default("NAME", "production"), help="probe label and file name")
    add(
        "--production-instance",
        default=env_default("PRODUCTION_INSTANCE", ""),
        help="hub instance that should answer (a or b): labels the answer production or test",
    )
    add("--timeout", type=float, default=float(env_default("TIMEOUT", "300") or 300))
    add("--code", default=env_default("CODE", "print(6*7)"), help="code the cell runs")
    add("--expect", default=env_default("EXPECT", "42"), help="output the cell must show")
    add("--chromium", default=env_default("CHROMIUM", "/usr/bin/chromium"))
    add(
        "--keep-failures",
        type=int,
        default=int(env_default("KEEP_FAILURES", "20") or 20),
        help="screenshots/logs of failed runs kept",
    )
    add(
        "--interval",
        type=float,
        default=float(env_default("INTERVAL", "0") or 0),
        help="seconds between scheduled runs, exported so alerts can tell a stale probe",
    )
    args = parser.parse_args(argv)
    if not args.url or not args.password_file:
        parser.error("--url and --password-file (or JHUB_PROBE_URL/_PASSWORD_FILE) are required")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", args.name):
        parser.error(f"--name {args.name!r}: use letters, digits, - and _ only")
    if not args.url.endswith("/"):
        args.url += "/"
    if args.failure_dir is None:
        args.failure_dir = args.output_dir
    return args


def label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return LABEL_VALUE.sub(lambda m: {"\\": "\\\\", '"': '\\"', "\n": "\\n"}[m[0]], value)


def number(value: float) -> str:
    """A sample value as the text format writes it: integers without a fraction."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(round(value, 3))


def hub_role(instance: str, production: str) -> str:
    if not instance:
        return "unknown"
    if not production:
        return "unknown"
    return "production" if instance == production else "test"


def render_metrics(outcome: Outcome, production: str = "", interval: float = 0) -> str:
    """The node exporter textfile with this run's outcome."""
    probe = f'probe="{label(outcome.name)}"'
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        if not samples:
            return
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{{{probe}{labels}}} {number(value)}")

    metric(
        "jupyterhub_probe_success",
        "gauge",
        "Whether the last browser probe passed the whole user path (1) or not (0).",
        [("", 1 if outcome.success else 0)],
    )
    metric(
        "jupyterhub_probe_duration_seconds",
        "gauge",
        "Seconds the last browser probe took.",
        [("", round(outcome.duration, 3))],
    )
    metric(
        "jupyterhub_probe_last_run_timestamp_seconds",
        "gauge",
        "When the last browser probe finished (Unix time).",
        [("", round(outcome.started + outcome.duration))],
    )
    metric(
        "jupyterhub_probe_step_duration_seconds",
        "gauge",
        "Seconds each step of the last browser probe took.",
        [(f',step="{step}"', round(seconds, 3)) for step, seconds in outcome.steps.items()],
    )
    metric(
        "jupyterhub_probe_failed_step",
        "gauge",
        "The step at which the last browser probe failed (1), absent when it passed.",
        [(f',step="{label(outcome.failed_step)}"', 1)] if outcome.failed_step else [],
    )
    if outcome.hub_instance:
        role = hub_role(outcome.hub_instance, production)
        labels = f',hub_instance="{label(outcome.hub_instance)}",hub_role="{role}"'
        metric(
            "jupyterhub_probe_answered_by",
            "gauge",
            "The hub instance that answered the last browser probe (header X-JupyterHub-Instance).",
            [(labels, 1)],
        )
    if interval > 0:
        metric(
            "jupyterhub_probe_interval_seconds",
            "gauge",
            "Seconds between scheduled runs of the browser probe.",
            [("", interval)],
        )
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Replace path with text so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def prune_failures(directory: Path, name: str, keep: int) -> None:
    """Keep the newest `keep` failure records (screenshot + log) of this probe."""
    record = re.compile(rf"probe-{re.escape(name)}-\d{{8}}T\d{{6}}Z")
    runs = sorted({p.stem for p in directory.iterdir() if record.fullmatch(p.stem)})
    for stem in runs[: max(len(runs) - keep, 0)]:
        for path in directory.glob(f"{stem}.*"):
            path.unlink(missing_ok=True)


def scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


@contextlib.contextmanager
def browser_home(ca: Path | None) -> Iterator[Path]:
    """A throw-away HOME for Chromium whose NSS database trusts the site CA, so the
    browser checks the front door's certificate as a user's browser with that CA does."""
    with tempfile.TemporaryDirectory(prefix="jupyterhub-probe-") as tmp:
        home = Path(tmp)
        if ca is not None:
            certutil = shutil.which("certutil")
            if certutil is None:
                raise ProbeError("--ca needs certutil (Debian package libnss3-tools)")
            nssdb = home / ".pki" / "nssdb"
            nssdb.mkdir(parents=True)
            db = f"sql:{nssdb}"
            for cmd in (
                [certutil, "-N", "-d", db, "--empty-password"],
                [certutil, "-A", "-d", db, "-n", "site-ca", "-t", "C,,", "-i", str(ca)],
            ):
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise ProbeError(f"certutil could not trust {ca}: {done.stderr.strip()}")
        yield home


class Walk:
    """The user's path through one browser page."""

    def __init__(self, page: Any, args: argparse.Namespace, password: str, outcome: Outcome):
        self.page = page
        self.args = args
        self.password = password
        self.outcome = outcome
        self.deadline = time.monotonic() + args.timeout
        self.server_url = ""
        self.spawned = False
        page.on("response", self._saw_response)
        # JupyterLab asks before leaving a page with unsaved changes: leave.
        page.on("dialog", lambda dialog: dialog.accept())

    def _saw_response(self, response: Any) -> None:
        instance = response.headers.get(INSTANCE_HEADER)
        if instance:
            self.outcome.hub_instance = instance

    def left(self, cap: float) -> float:
        """Milliseconds a step may wait: its own cap, within the run's deadline."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeError(f"the probe ran out of its {self.args.timeout:.0f} s")
        return min(cap, remaining) * 1000

    def url(self, path: str) -> str:
        return urljoin(self.args.url, path)

    def login(self) -> None:
        reply = self.page.goto(self.url("hub/login"), timeout=self.left(60))
        if reply is None or reply.status != 200:
            raise ProbeError(f"login page: HTTP {reply.status if reply else 'no answer'}")
        self.page.fill("#username_input", self.args.user, timeout=self.left(30))
        self.page.fill("#password_input", self.password, timeout=self.left(30))
        with self.page.expect_navigation(timeout=self.left(60)):
            self.page.click("#login_submit", timeout=self.left(30))
        if "/hub/login" in urlsplit(self.page.url).path:
            error = self.page.locator(".login_error")
            message = error.inner_text() if error.count() else "still on the login page"
            raise ProbeError(f"login refused: {message.strip()}")

    def spawn(self) -> None:
        """From wherever the hub sends a fresh login to a running JupyterLab."""
        user_path = f"/user/{self.args.user}/"
        while True:
            path = urlsplit(self.page.url).path
            if user_path in path:
                break
            form = self.page.locator("#spawn_form")
            if "/hub/spawn/" in path or path.endswith("/hub/spawn"):
                refused = self.page.locator(".spawn-error-msg")
                if refused.count():
                    raise ProbeError(f"the hub refused the spawn: {refused.first.inner_text()}")
                if form.count():
                    # The defaults of the form, as a user who just clicks Start.
                    with self.page.expect_navigation(timeout=self.left(60)):
                        form.locator("[type=submit]").first.click(timeout=self.left(30))
                    self.spawned = True
                    continue
            elif "/hub/spawn-pending/" in path:
                self.spawned = True
            elif path.rstrip("/").endswith("/hub/home") or path.rstrip("/").endswith("/hub"):
                self.page.goto(self.url("hub/spawn"), timeout=self.left(60))
                continue
            self._wait_for_change(path)
        # Running now (started here or left by an earlier run): stop it at the end either way.
        self.spawned = True
        self.server_url = self.page.url[: self.page.url.index(user_path) + len(user_path)]
        self.page.wait_for_selector("#jp-main-dock-panel", timeout=self.left(120))

    def _wait_for_change(self, path: str) -> None:
        """Wait for the hub to move the browser on (spawn-pending redirects when ready)."""
        try:
            self.page.wait_for_url(
                lambda url: urlsplit(url).path != path, timeout=self.left(self.args.timeout)
            )
        except Exception as error:
            progress = self.page.locator("#progress-message")
            said = progress.inner_text().strip() if progress.count() else ""
            raise ProbeError(f"stuck at {path}: {said or error}") from None

    def notebook(self) -> None:
        """Put a notebook with one cell in the user's home, then open it in JupyterLab."""
        content = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "metadata": {},
                    "outputs": [],
                    "source": self.args.code,
                }
            ],
            "metadata": {
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        status = self.page.evaluate(
            """async ([url, content]) => {
                const m = document.cookie.match(/(?:^|; )_xsrf=([^;]*)/);
                const headers = {"Content-Type": "application/json"};
                if (m) headers["X-XSRFToken"] = decodeURIComponent(m[1]);
                const r = await fetch(url, {method: "PUT", headers, credentials: "same-origin",
                    body: JSON.stringify({type: "notebook", content})});
                return r.status;
            }""",
            [f"{self.server_url}api/contents/{NOTEBOOK_NAME}", content],
        )
        if status not in (200, 201):
            raise ProbeError(f"saving {NOTEBOOK_NAME} through the contents API: HTTP {status}")
        self.page.goto(f"{self.server_url}lab/tree/{NOTEBOOK_NAME}", timeout=self.left(60))
        self.page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=self.left(120))

    def execute(self) -> None:
        panel = self.page.locator(".jp-NotebookPanel:visible").first
        # A cell run before the kernel is connected is silently not run: wait for it.
        kernel = panel.locator(".jp-Notebook-ExecutionIndicator")
        try:
            kernel.and_(self.page.locator("[data-status=idle]")).first.wait_for(
                timeout=self.left(120)
            )
        except Exception:
            status = kernel.first.get_attribute("data-status") if kernel.count() else None
            raise ProbeError(f"the notebook's kernel is not ready (status {status})") from None
        cell = panel.locator(".jp-CodeCell").first
        prompt = cell.locator(".jp-InputPrompt")
        outputs = cell.locator(".jp-OutputArea-output")
        for _attempt in range(3):
            self._accept_dialog()
            # Run the cell in place (Ctrl+Enter), as a user does.
            cell.locator(".jp-InputArea-editor").click(timeout=self.left(30))
            self.page.keyboard.press("Control+Enter")
            # Right after the kernel connects JupyterLab may drop a run: the prompt stays
            # "[ ]:". Run it again then; once it shows [*] or a number, the kernel has it.
            try:
                prompt.filter(has_text=RAN_PROMPT).wait_for(timeout=self.left(10))
                break
            except Exception:
                continue
        with contextlib.suppress(Exception):
            outputs.first.wait_for(timeout=self.left(60))
        with contextlib.suppress(Exception):
            # Output may come in pieces: a little longer for the expected text.
            outputs.filter(has_text=self.args.expect).first.wait_for(timeout=self.left(5))
        shown = [text.strip() for text in outputs.all_inner_texts()]
        self.outcome.output = self.args.expect if self.args.expect in shown else " | ".join(shown)
        if self.args.expect not in shown:
            raise ProbeError(
                f"the cell {self.args.code!r} showed {shown or 'no output'}, "
                f"not {self.args.expect!r}"
            )
        # Save, so that JupyterLab has nothing to ask about when the page is left.
        self.page.keyboard.press("Control+s")

    def _accept_dialog(self) -> None:
        """Answer a JupyterLab dialog with its default button, as a user who clicks on
        does: "Select Kernel" (the notebook's own kernel preselected) may come up while
        the notebook opens."""
        dialog = self.page.locator(".jp-Dialog")
        with contextlib.suppress(Exception):
            dialog.first.wait_for(timeout=self.left(2))
        if dialog.count():
            dialog.first.locator(".jp-mod-accept").first.click(timeout=self.left(30))
            dialog.first.wait_for(state="detached", timeout=self.left(30))

    def stop(self) -> None:
        self.page.goto(self.url("hub/home"), timeout=self.left(60))
        stop = self.page.locator("#stop")
        if not stop.count():
            raise ProbeError("the hub's home page shows no running server to stop")
        # The button works once the page's scripts have loaded; a click before that is lost.
        for _attempt in range(8):
            if stop.is_hidden():
                break
            stop.click(timeout=self.left(30))
            with contextlib.suppress(Exception):
                stop.wait_for(state="hidden", timeout=self.left(15))
        if not stop.is_hidden():
            raise ProbeError("the server did not stop from the hub's home page")
        self.spawned = False

    def logout(self) -> None:
        self.page.goto(self.url("hub/logout"), timeout=self.left(60))
        self.page.wait_for_selector("#username_input", timeout=self.left(30))


def run_probe(args: argparse.Namespace, password: str, outcome: Outcome) -> None:
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    with browser_home(args.ca) as home, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            env={**os.environ, "HOME": str(home)},
        )
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            walk = Walk(page, args, password, outcome)
            step = ""
            try:
                for step in STEPS:
                    started = time.monotonic()
                    getattr(walk, step)()
                    outcome.steps[step] = time.monotonic() - started
                outcome.success = True
            except Exception as error:
                outcome.failed_step = step
                outcome.error = scrub(f"{type(error).__name__}: {error}", password)
                outcome.screenshot = save_failure(args, outcome, page)
                if walk.spawned:
                    # Leave no server behind for the next run (best effort).
                    with contextlib.suppress(Exception):
                        walk.deadline = time.monotonic() + 60
                        walk.stop()
        finally:
            browser.close()
    outcome.duration = time.monotonic() - t0


def save_failure(args: argparse.Namespace, outcome: Outcome, page: Any | None) -> str:
    """A screenshot and a log of a failed run; returns the screenshot's path ('' if none)."""
    if args.failure_dir is None:
        return ""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = args.failure_dir / f"probe-{args.name}-{stamp}"
    args.failure_dir.mkdir(parents=True, exist_ok=True)
    shot = ""
    if page is not None:
        with contextlib.suppress(Exception):
            page.screenshot(path=f"{stem}.png", full_page=True, timeout=15000)
            shot = f"{stem}.png"
    page_url = ""
    with contextlib.suppress(Exception):
        page_url = page.url if page is not None else ""
    stem.with_suffix(".log").write_text(
        f"probe {args.name} failed at step {outcome.failed_step or '(start)'}\n"
        f"url: {args.url}\npage: {page_url}\nhub instance: {outcome.hub_instance or '?'}\n"
        f"error: {outcome.error}\n"
    )
    prune_failures(args.failure_dir, args.name, args.keep_failures)
    return shot


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outcome = Outcome(name=args.name)
    password = ""
    t0 = time.monotonic()
    try:
        password = args.password_file.read_text().strip()
        if not password:
            raise ProbeError(f"{args.password_file} is empty")
        run_probe(args, password, outcome)
    except Exception as error:
        # Before the browser ran (no password, no Chromium, no certutil...).
        outcome.success = False
        outcome.failed_step = outcome.failed_step or "start"
        outcome.error = outcome.error or scrub(f"{type(error).__name__}: {error}", password)
        outcome.duration = time.monotonic() - t0
        if not outcome.screenshot:
            with contextlib.suppress(Exception):
                save_failure(args, outcome, None)
    if args.output_dir is not None:
        write_atomically(
            args.output_dir / f"jupyterhub_probe_{args.name}.prom",
            render_metrics(outcome, args.production_instance, args.interval),
        )
    report = {
        "probe": args.name,
        "url": args.url,
        "user": args.user,
        "success": outcome.success,
        "duration_s": round(outcome.duration, 3),
        "steps_s": {k: round(v, 3) for k, v in outcome.steps.items()},
        "hub_instance": outcome.hub_instance,
        "hub_role": hub_role(outcome.hub_instance, args.production_instance),
        "output": outcome.output,
        "failed_step": outcome.failed_step,
        "error": outcome.error,
        "screenshot": outcome.screenshot,
    }
    print(json.dumps(report))
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main())
