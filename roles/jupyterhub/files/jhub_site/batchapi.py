"""Where a batch notebook tells the hub its port, and nothing else.

batchspawner registers ``POST /hub/api/batchspawner`` when it is imported. Its handler sets
*every* attribute named in the request body on the spawner whose token sent it, and that
token is the server's own, in the user's environment. Any user could rewrite her spawner's
settings (the class of a backend, its command, the one-server rule, maintenance) and have the
hub run code as its own account on her next start.

``install()`` puts ``SitePortHandler`` on that route instead: the body must be exactly
``{"port": <1-65535>}`` (what ``batchspawner-singleuser`` sends), from the token of a server
of the user's that is starting.
"""

from __future__ import annotations

import json

from jupyterhub.apihandlers import APIHandler, default_handlers
from tornado import web

ROUTE = r"/api/batchspawner"


def reported_port(body: object) -> int:
    """The port in a notebook's report; ValueError for anything else in the body."""
    if not isinstance(body, dict) or set(body) != {"port"}:
        raise ValueError('Report {"port": <number>} and nothing else.')
    port = body["port"]
    if type(port) is not int or not 1 <= port <= 65535:
        raise ValueError("port must be a whole number from 1 to 65535.")
    return port


class SitePortHandler(APIHandler):
    """The port a batch job's notebook listens on, reported while its server starts."""

    @web.authenticated
    def post(self) -> None:
        token = self.get_auth_token()
        spawners = getattr(self.current_user, "spawners", None) or {}
        spawner = next((s for s in spawners.values() if token and s.api_token == token), None)
        if spawner is None:
            raise web.HTTPError(403, "Only a server's own token reports its port.")
        try:
            port = reported_port(self.get_json_body())
        except ValueError as err:
            raise web.HTTPError(400, str(err)) from None
        if spawner.pending != "spawn":
            raise web.HTTPError(409, "This server is not starting: its port is known.")
        spawner.port = port
        self.set_status(201)
        self.finish(json.dumps({"message": "port recorded"}))


def install() -> None:
    """Serve the route with SitePortHandler only (after batchspawner has been imported)."""
    default_handlers[:] = [entry for entry in default_handlers if entry[0] != ROUTE]
    default_handlers.append((ROUTE, SitePortHandler))
