"""Tests for filter_plugins/backup_snapshots.py: forged snapshot times found before a prune."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ansible.errors import AnsibleFilterError

from tests.conftest import REPO_ROOT, load_module

bs = load_module("backup_snapshots_filter", REPO_ROOT / "filter_plugins/backup_snapshots.py")
suspect = bs.backup_suspect_snapshots

# A real backup: started 02:00:00.123456789 UTC, uploaded ten minutes later.
STARTED = "2026-12-07T02:00:00.123456789Z"
UPLOADED = datetime(2026, 12, 7, 2, 10, tzinfo=UTC).timestamp()


def snap(ident: str, time: str) -> dict:
    return {"id": ident, "short_id": ident[:8], "time": time}


def test_a_real_snapshot_is_not_suspect() -> None:
    assert suspect([snap("a" * 64, STARTED)], {"a" * 64: UPLOADED}) == []


def test_the_find_lines_of_the_server_are_read() -> None:
    lines = [f"{'a' * 64} {UPLOADED:.10f}", ""]
    assert suspect([snap("a" * 64, STARTED)], lines) == []


def test_a_snapshot_dated_days_before_its_upload_is_found() -> None:
    forged = snap("b" * 64, "2026-12-04T02:00:00+00:00")
    found = suspect([snap("a" * 64, STARTED), forged], {"a" * 64: UPLOADED, "b" * 64: UPLOADED})
    assert [entry["id"] for entry in found] == ["b" * 64]
    assert found[0]["short_id"] == "b" * 8
    assert found[0]["reason"] == "dated 72.2 h before it was stored"


def test_local_time_offsets_are_honoured() -> None:
    # 03:00 at +01:00 is 02:00 UTC: the same real backup.
    assert suspect([snap("a" * 64, "2026-12-07T03:00:00.5+01:00")], {"a" * 64: UPLOADED}) == []


def test_the_delay_limit_is_a_parameter() -> None:
    long_backup = snap("a" * 64, "2026-12-06T12:00:00Z")  # 14 h 10 min before the upload
    assert [e["id"] for e in suspect([long_backup], {"a" * 64: UPLOADED})] == ["a" * 64]
    assert suspect([long_backup], {"a" * 64: UPLOADED}, max_delay=86400) == []


def test_a_snapshot_from_the_future_is_found() -> None:
    ahead = snap("c" * 64, "2026-12-07T03:00:00Z")  # 50 min after its upload
    found = suspect([ahead], {"c" * 64: UPLOADED})
    assert found[0]["reason"] == "dated 3000 s after it was stored"
    assert suspect([ahead], {"c" * 64: UPLOADED}, max_skew=3600) == []


def test_a_snapshot_without_a_file_is_found() -> None:
    found = suspect([snap("d" * 64, STARTED)], {})
    assert found[0]["stored"] is None
    assert found[0]["reason"] == "no snapshot file on the server"


def test_suspects_come_oldest_first() -> None:
    old = snap("e" * 64, "2026-11-01T00:00:00Z")
    older = snap("f" * 64, "2026-10-01T00:00:00Z")
    stored = {"e" * 64: UPLOADED, "f" * 64: UPLOADED}
    assert [e["id"] for e in suspect([old, older], stored)] == ["f" * 64, "e" * 64]


@pytest.mark.parametrize(
    ("snapshots", "stored", "message"),
    [
        ("not a list", {}, "expects the list"),
        ([{"id": "a"}], {}, "has no id and time"),
        ([snap("a" * 64, "yesterday")], {}, "is not an RFC 3339 time"),
        ([], ["a b c"], "is not 'NAME MTIME'"),
        ([], ["a noon"], "has no numeric time"),
        ([], 42, "must be a mapping or a list"),
    ],
)
def test_bad_input_is_named(snapshots: object, stored: object, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        suspect(snapshots, stored)


def test_negative_limits_are_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="must be >= 0"):
        suspect([], {}, max_delay=-1)


def test_the_filter_is_registered() -> None:
    assert bs.FilterModule().filters()["backup_suspect_snapshots"] is suspect
