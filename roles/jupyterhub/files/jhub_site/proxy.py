"""configurable-http-proxy in its own systemd unit, with routes that survive its restarts.

The proxy runs as ``jupyterhub-proxy.service`` beside the hub (``should_start = False``), so
the hub restarts without cutting users off from their servers. The other way round, a proxy
that restarts (a package upgrade, a crash, ``systemctl restart``) comes back with an empty
routing table, and JupyterHub puts routes back only when it starts or adds a server. Users
would reach their running servers again only after the next hub restart.

``SiteProxy`` looks at the proxy's routing table every ``route_check_interval`` seconds. When
the hub's own route is missing (the sign of a proxy that started afresh) it lets JupyterHub
put every route back (``check_routes``: the hub, each running server, each service). Running
servers are not touched; their users reach them again within the interval.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.proxy import ConfigurableHTTPProxy
from tornado.ioloop import PeriodicCallback
from traitlets import Float


class SiteProxy(ConfigurableHTTPProxy):
    """The hub's proxy (started by systemd), whose lost routes the hub restores."""

    route_check_interval = Float(
        2.0,
        config=True,
        help="""Seconds between two looks at the proxy's routing table; when the hub's route
        is missing (the proxy restarted), every route is put back. 0 turns the check off.""",
    )

    _route_watch: PeriodicCallback | None = None
    _restoring = False

    async def get_all_routes(self) -> dict[str, Any]:
        routes = await super().get_all_routes()
        # JupyterHub asks for the routes once it is ready to serve (with a proxy it does not
        # start, before its first route check): the watch starts with that first answer.
        self._start_route_watch()
        return routes

    def _start_route_watch(self) -> None:
        if self._route_watch is not None or self.route_check_interval <= 0 or self.should_start:
            return
        self._route_watch = PeriodicCallback(
            self.restore_lost_routes, 1e3 * self.route_check_interval
        )
        self._route_watch.start()

    async def restore_lost_routes(self) -> bool:
        """Put every route back if the proxy lost them; True when it did."""
        if self._restoring:
            return False
        self._restoring = True
        try:
            try:
                routes = await super().get_all_routes()
            except Exception as err:  # the proxy is down or restarting: look again later
                self.log.debug(
                    "Proxy routes not readable (%s); next look in %ss",
                    err,
                    self.route_check_interval,
                )
                return False
            if self.app.hub.routespec in routes:
                return False
            self.log.warning(
                "The proxy lost its routes (%d left, the hub's among them not): it restarted."
                " Putting the routes of the hub, the running servers and the services back.",
                len(routes),
            )
            await self.check_routes(self.app.users, self.app._service_map, routes)
            return True
        finally:
            self._restoring = False

    def stop_route_watch(self) -> None:
        if self._route_watch is not None:
            self._route_watch.stop()
            self._route_watch = None
