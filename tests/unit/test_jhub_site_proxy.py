"""jhub_site.proxy.SiteProxy: routes come back after the proxy unit restarts.

The proxy's REST API is replaced by a routing table in memory that a "restart" empties; the
hub side (check_routes) is JupyterHub's own, fed with a running server of alice."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import pytest
from jupyterhub.proxy import ConfigurableHTTPProxy

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "roles/jupyterhub/files"))

from jhub_site.proxy import SiteProxy


class _Table:
    """A CHP routing table: what the hub adds, deletes and reads."""

    def __init__(self) -> None:
        self.routes: dict[str, dict] = {}
        self.reads = 0

    async def get_all_routes(self, proxy: ConfigurableHTTPProxy) -> dict:
        self.reads += 1
        return {spec: {"routespec": spec, **r} for spec, r in self.routes.items()}


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> tuple[SiteProxy, _Table, list]:
    table = _Table()
    checked: list = []

    async def get_all_routes(self: ConfigurableHTTPProxy) -> dict:
        return await table.get_all_routes(self)

    monkeypatch.setattr(ConfigurableHTTPProxy, "get_all_routes", get_all_routes)
    app = SimpleNamespace(
        hub=SimpleNamespace(routespec="/"), users={"alice": object()}, _service_map={}
    )
    site = SiteProxy(app=app, should_start=False, auth_token="t", route_check_interval=0)

    async def check_routes(user_dict, service_dict, routes=None):
        checked.append((user_dict, dict(routes or {})))
        table.routes["/"] = {"target": "http://127.0.0.1:8081", "data": {"hub": True}}
        table.routes["/user/alice/"] = {
            "target": "http://10.0.0.5:40001",
            "data": {"user": "alice", "server_name": ""},
        }

    site.check_routes = check_routes
    return site, table, checked


def test_routes_are_put_back_after_the_proxy_restarted(proxy) -> None:
    site, table, checked = proxy
    table.routes = {}  # the proxy unit started afresh
    assert asyncio.run(site.restore_lost_routes()) is True
    assert len(checked) == 1
    assert checked[0][0] == {"alice": site.app.users["alice"]}
    assert "/user/alice/" in table.routes


def test_nothing_happens_while_the_hub_route_is_there(proxy) -> None:
    site, table, checked = proxy
    table.routes = {"/": {"target": "http://127.0.0.1:8081", "data": {"hub": True}}}
    assert asyncio.run(site.restore_lost_routes()) is False
    assert checked == []


def test_a_proxy_that_does_not_answer_is_looked_at_again_later(proxy, monkeypatch) -> None:
    site, _table, checked = proxy

    async def refused(self: ConfigurableHTTPProxy) -> dict:
        raise ConnectionRefusedError("proxy API down")

    monkeypatch.setattr(ConfigurableHTTPProxy, "get_all_routes", refused)
    assert asyncio.run(site.restore_lost_routes()) is False
    assert checked == []


def test_the_watch_starts_with_the_first_look_at_the_routes(proxy) -> None:
    site, table, _checked = proxy
    site.route_check_interval = 0.05
    table.routes = {}

    async def run() -> None:
        await site.get_all_routes()  # as JupyterHub does once it starts
        await asyncio.sleep(0.3)
        site.stop_route_watch()

    asyncio.run(run())
    assert "/" in table.routes
    assert "/user/alice/" in table.routes
    assert table.reads >= 3


def test_a_proxy_the_hub_starts_itself_gets_no_watch(proxy) -> None:
    site, _table, _checked = proxy
    site.should_start = True
    site.route_check_interval = 0.05
    site._start_route_watch()
    assert site._route_watch is None
