"""Find restic snapshots whose stated time does not match when the backup server stored them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: backup_suspect_snapshots
short_description: Snapshots whose time is far from the time the backup server stored them
description:
  - A restic snapshot carries the time its client claims (C(restic backup --time) sets any
    time). An append-only REST server keeps what a client sends, so a broken-into client can
    add snapshots dated in the past, one for each day, week and month the retention keeps,
    and the next C(forget --keep-daily/weekly/monthly) would keep those and forget the real
    ones. The server's own record is the modification time of each snapshot file, written
    when the client uploaded it.
  - Returns one entry per snapshot whose time lies more than O(max_delay) seconds before
    the time its file was stored (a backup runs from the snapshot's time until its upload,
    so a real one is stored minutes or hours later), or more than O(max_skew) seconds after
    it (a snapshot from the future), or that has no stored file at all.
options:
  _input:
    description: The snapshots, as C(restic snapshots --json) prints them (C(id), C(time)).
    type: list
    elements: dict
    required: true
  stored:
    description: >-
      When the server stored each snapshot file: its name (the snapshot ID) to its
      modification time in seconds since the epoch, or the lines of
      C(find snapshots -type f -printf '%f %T@\n').
    type: raw
    required: true
  max_delay:
    description: The longest time a real backup may take from its start to its upload, in seconds.
    type: int
    default: 43200
  max_skew:
    description: How far the clocks of client and server may differ, in seconds.
    type: int
    default: 300
author:
  - jhub-site maintainers
"""

EXAMPLES = r"""
- name: Refuse to prune while a snapshot's time is forged
  ansible.builtin.assert:
    that: __suspect | length == 0
    fail_msg: "{{ __suspect }}"
  vars:
    __suspect: >-
      {{ __snapshots.stdout | from_json | backup_suspect_snapshots(__files.stdout_lines) }}
"""

RETURN = r"""
_value:
  description: >-
    One dict per suspect snapshot, oldest first - C(id), C(short_id), C(time) (as restic gave
    it), C(stored) (ISO time of the file, or null) and C(reason).
  type: list
  elements: dict
"""

# restic writes RFC 3339 times with up to nine fractional digits; Python reads six.
_TIME = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<zone>Z|[+-]\d{2}:\d{2})$"
)


def _epoch(text: str) -> float:
    match = _TIME.match(str(text).strip())
    if not match:
        raise AnsibleFilterError(f"backup_suspect_snapshots: {text!r} is not an RFC 3339 time")
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    frac = (match["frac"] or "0")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{match['base']}.{frac}{zone}").timestamp()


def _stored_times(stored: Any) -> dict[str, float]:
    if isinstance(stored, Mapping):
        return {str(name): float(value) for name, value in stored.items()}
    if isinstance(stored, Sequence) and not isinstance(stored, str):
        times = {}
        for line in stored:
            fields = str(line).split()
            if not fields:
                continue
            if len(fields) != 2:
                raise AnsibleFilterError(
                    f"backup_suspect_snapshots: stored line {line!r} is not 'NAME MTIME'"
                )
            try:
                times[fields[0]] = float(fields[1])
            except ValueError as err:
                raise AnsibleFilterError(
                    f"backup_suspect_snapshots: stored line {line!r} has no numeric time"
                ) from err
        return times
    raise AnsibleFilterError(
        "backup_suspect_snapshots: stored must be a mapping or a list of lines"
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def backup_suspect_snapshots(
    snapshots: Any, stored: Any, max_delay: int = 43200, max_skew: int = 300
) -> list[dict[str, Any]]:
    """The snapshots whose claimed time does not fit the time the server stored them."""
    if not isinstance(snapshots, Sequence) or isinstance(snapshots, str):
        raise AnsibleFilterError(
            "backup_suspect_snapshots: expects the list of restic snapshots --json"
        )
    if int(max_delay) < 0 or int(max_skew) < 0:
        raise AnsibleFilterError("backup_suspect_snapshots: max_delay and max_skew must be >= 0")
    files = _stored_times(stored)
    suspect = []
    for snapshot in snapshots:
        if not isinstance(snapshot, Mapping) or "id" not in snapshot or "time" not in snapshot:
            raise AnsibleFilterError(f"backup_suspect_snapshots: {snapshot!r} has no id and time")
        claimed = _epoch(snapshot["time"])
        on_disk = files.get(str(snapshot["id"]))
        if on_disk is None:
            reason = "no snapshot file on the server"
        elif claimed < on_disk - int(max_delay):
            reason = f"dated {round((on_disk - claimed) / 3600, 1)} h before it was stored"
        elif claimed > on_disk + int(max_skew):
            reason = f"dated {round(claimed - on_disk)} s after it was stored"
        else:
            continue
        suspect.append(
            {
                "id": snapshot["id"],
                "short_id": snapshot.get("short_id", str(snapshot["id"])[:8]),
                "time": snapshot["time"],
                "stored": _iso(on_disk) if on_disk is not None else None,
                "reason": reason,
                "_claimed": claimed,
            }
        )
    suspect.sort(key=lambda entry: entry["_claimed"])
    for entry in suspect:
        del entry["_claimed"]
    return suspect


class FilterModule:
    """Backup filters."""

    def filters(self) -> dict[str, Any]:
        return {"backup_suspect_snapshots": backup_suspect_snapshots}
