"""The front door's header check (tools/frontdoor.py headers): what counts as a leak."""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT, load_module

frontdoor = load_module("frontdoor", REPO_ROOT / "tools/frontdoor.py")
NAMES = frozenset({"hub-a", "lab-hub-a", "db"})


@pytest.mark.parametrize(
    ("value", "leaked"),
    [
        ("172.18.0.16:8000", ["172.18.0.16:8000"]),
        ("172.18.0.16:8000, 172.18.0.17:8000", ["172.18.0.16:8000", "172.18.0.17:8000"]),
        ("fd00:1::16", ["fd00:1::16"]),
        ("[fd00:1::16]:8000", ["fd00:1::16"]),
        ("http://hub-a:8081/hub/", ["hub-a:8081"]),
        ("upstream=LAB-HUB-A", ["LAB-HUB-A"]),
        ("db", ["db"]),
        ("user@10.0.0.1", ["10.0.0.1"]),
        ("upstream:10.0.0.1:8000", ["10.0.0.1"]),
        ("10.0.0.1.", ["10.0.0.1"]),
    ],
)
def test_addresses_and_internal_names_are_leaks(value: str, leaked: list[str]) -> None:
    assert frontdoor.internal_parts(value, NAMES) == leaked


@pytest.mark.parametrize(
    "value",
    [
        "Mon, 07 Dec 2026 23:47:36 GMT",
        "nginx",
        "text/html; charset=UTF-8",
        "jupyterhub-session-id=abc; HttpOnly; Secure; Path=/",
        "max-age=31536000; includeSubDomains",
        "/hub/login?next=%2Fhub%2F",
        "hub-b-ish dbx",
        "1.2.3",
        "999.1.1.1",
        "https://cloud.localhost:8443/",
    ],
)
def test_ordinary_header_values_are_not_leaks(value: str) -> None:
    assert frontdoor.internal_parts(value, NAMES) == []
