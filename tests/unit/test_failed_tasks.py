"""The failed-task digest that ends a molecule scenario's assertion message."""

from __future__ import annotations

import subprocess

from tests.conftest import failed_tasks


def completed(stdout: str) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(args=["molecule"], returncode=2, stdout=stdout, stderr="")


def test_each_failed_task_comes_with_its_task_line() -> None:
    output = "\n".join(
        [
            "TASK [Start the hub] ****",
            "ok: [hub]",
            "TASK [Check the spawn] ****",
            "Friday 04 December 2026",
            "fatal: [hub]: FAILED! =>",
            "    msg: spawn timed out",
            "PLAY RECAP ****",
        ]
    )
    digest = failed_tasks(completed(output), after=2)
    assert digest.splitlines() == [
        "TASK [Check the spawn] ****",
        "Friday 04 December 2026",
        "fatal: [hub]: FAILED! =>",
        "    msg: spawn timed out",
    ]


def test_a_clean_run_has_no_digest() -> None:
    assert failed_tasks(completed("TASK [Start the hub] ****\nok: [hub]\n")) == ""
