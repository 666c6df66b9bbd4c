"""The hub's batchspawner route (jhub_site.batchapi): a notebook reports its port, and a user
who posts anything else with her server's token changes nothing on her spawner."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest
from jupyterhub.apihandlers import default_handlers
from tornado import web

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "roles/jupyterhub/files"))

import batchspawner.api
from jhub_site import slurm, spawner  # noqa: F401  (each installs the site's)
from jhub_site.batchapi import ROUTE, SitePortHandler, reported_port


class FakeSpawner:
    def __init__(self, token: str, pending: str | None) -> None:
        self.api_token = token
        self.pending = pending
        self.port = 0
        self.cmd = ["jupyterhub-singleuser"]
        self.exclusive_servers = True
        self.maintenance_message = ""


class FakeHandler:
    """What SitePortHandler.post uses of a request: its user, token, body and reply."""

    def __init__(self, token: str, body: object, spawners: dict) -> None:
        self.current_user = SimpleNamespace(spawners=spawners)
        self._token = token
        self._body = body
        self.status = 200
        self.written = ""

    def get_auth_token(self) -> str:
        return self._token

    def get_json_body(self) -> object:
        return self._body

    def set_status(self, status: int) -> None:
        self.status = status

    def finish(self, text: str) -> None:
        self.written = text


def post(handler: FakeHandler) -> None:
    SitePortHandler.post.__wrapped__(handler)  # past @web.authenticated


def test_only_the_sites_handler_serves_the_route() -> None:
    served = [entry[1] for entry in default_handlers if entry[0] == ROUTE]
    assert served == [SitePortHandler]
    assert batchspawner.api.BatchSpawnerAPIHandler not in [e[1] for e in default_handlers]


def test_a_starting_server_reports_its_port() -> None:
    own = FakeSpawner("t-own", "spawn")
    handler = FakeHandler("t-own", {"port": 48123}, {"": own})
    post(handler)
    assert (own.port, handler.status) == (48123, 201)
    assert json.loads(handler.written)["message"] == "port recorded"


@pytest.mark.parametrize(
    "body",
    [
        {"port": 48123, "cmd": ["/bin/sh", "-c", "id"]},
        {"exclusive_servers": False},
        {"maintenance_message": ""},
        {"backends": {"swarm": {"class": "jupyterhub.spawner.SimpleLocalProcessSpawner"}}},
        {"port": "48123"},
        {"port": 0},
        {"port": 70000},
        {"port": True},
        [48123],
        None,
    ],
)
def test_anything_but_a_port_changes_nothing(body: object) -> None:
    own = FakeSpawner("t-own", "spawn")
    before = dict(vars(own))
    with pytest.raises(web.HTTPError) as refused:
        post(FakeHandler("t-own", body, {"": own}))
    assert refused.value.status_code == 400
    assert vars(own) == before


def test_a_running_server_cannot_move_its_port() -> None:
    own = FakeSpawner("t-own", None)
    with pytest.raises(web.HTTPError) as refused:
        post(FakeHandler("t-own", {"port": 48123}, {"": own}))
    assert refused.value.status_code == 409
    assert own.port == 0


def test_a_token_that_is_no_servers_own_is_refused() -> None:
    own = FakeSpawner("t-own", "spawn")
    with pytest.raises(web.HTTPError) as refused:
        post(FakeHandler("t-other", {"port": 48123}, {"": own}))
    assert refused.value.status_code == 403
    assert own.port == 0


def test_reported_port_names_what_is_wrong() -> None:
    assert reported_port({"port": 8888}) == 8888
    with pytest.raises(ValueError, match="nothing else"):
        reported_port({"port": 8888, "extra": 1})
    with pytest.raises(ValueError, match="1 to 65535"):
        reported_port({"port": -1})
