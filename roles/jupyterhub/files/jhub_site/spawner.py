"""One spawn form over several compute backends (Swarm containers, SLURM and HTCondor jobs).

``SiteSpawner`` wraps the spawner of the backend the user picks, built on wrapspawner's
``WrapSpawner``. Each backend class (``jhub_site.swarm``, ``jhub_site.slurm``,
``jhub_site.condor``) adds two methods to its upstream spawner:

- ``async site_form() -> str``: its fields of the form, each named ``<backend>_...``;
- ``site_options(formdata) -> dict``: those fields, parsed and checked, as its ``user_options``
  (``ValueError`` with a message for the user otherwise).

The wrapper keeps ``{"backend": name, "options": {...}}`` as its own ``user_options`` (which
JupyterHub stores as the user's last choice) and gives the child the inner ``options``. A
backend must check its ``user_options`` again in ``start()``: the REST API takes them
without any form.

One server per user, site-wide (``exclusive_servers``): before a start, the wrapper asks
every enabled backend for this user's servers of the *other* hub instances
(``jhub_site.exclusive``: the names ``<other prefix><user>`` of ``instance_prefixes``). A
start requested through the production front (the ``X-JupyterHub-Front`` header NGINX sets,
else ``instance_role``) takes over: it stops them, waits until they have ended, then starts.
A start through the test front is refused with a message naming the other instance. The
same look is taken again once the server runs, for two starts on both instances at once.

``maintenance_message``: while set, every new start on this instance is refused with it;
running servers are not touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from typing import Any

from jupyterhub.spawner import Spawner
from tornado import web
from traitlets import Bool, Dict, Enum, Float, List, Unicode, default, observe
from traitlets.utils.importstring import import_item
from wrapspawner import WrapSpawner

from jhub_site.exclusive import OtherServer

# batchspawner registers its API handler (where the notebook reports its port) on import;
# a hub without batch backends has no batchspawner. That handler sets whatever the body
# names on the spawner: the site's takes its place (jhub_site.batchapi).
with contextlib.suppress(ImportError):
    import batchspawner  # noqa: F401

    from jhub_site import batchapi

    batchapi.install()

# Traits JupyterHub sets on the spawner of a server before it starts it (tokens, OAuth
# client, certificates). The wrapper hands them to its child; configurable traits (cmd,
# limits, timeouts) are left to the child's own configuration.
_SERVER_TRAITS = (
    "api_token",
    "oauth_client_id",
    "oauth_roles",
    "oauth_access_scopes",
    "admin_access",
    "cookie_options",
    "cookie_host_prefix_enabled",
    "trusted_alt_names",
    "proxy_spec",
    "cert_paths",
    "internal_ssl",
    "internal_trust_bundles",
    "internal_certs_location",
    "handler",
)

# Settings of the site's hub instances that every backend gets from the wrapper.
_INSTANCE_TRAITS = ("instance", "instance_prefixes")
FRONTS = ("production", "test")

_FORM_STYLE = """
<style>
  .site-backend-choice label { margin-right: 1.5em; font-weight: normal; }
  .site-backend { border-left: 3px solid #ddd; padding-left: 1em; margin-top: 1em; }
</style>"""

_FORM_SCRIPT = """
<script>
(function () {
  function show() {
    var picked = document.querySelector('input[name="backend"]:checked');
    document.querySelectorAll('.site-backend').forEach(function (part) {
      var on = picked && part.dataset.backend === picked.value;
      part.style.display = on ? '' : 'none';
      part.querySelectorAll('input, select, textarea').forEach(function (field) {
        field.disabled = !on;
      });
    });
  }
  document.querySelectorAll('input[name="backend"]').forEach(function (radio) {
    radio.addEventListener('change', show);
  });
  show();
})();
</script>"""


class SiteSpawner(WrapSpawner):
    """Starts each server with the backend picked in the form (or in ``user_options``)."""

    backends = Dict(
        config=True,
        help="""Backends on offer, by name: {"swarm": {"class": "jhub_site.swarm.SiteSwarmSpawner",
        "display": "Container on the Swarm cluster"}, ...}.""",
    )
    backend_order = List(
        Unicode(),
        config=True,
        help="Names of the backends in the order of the form; the first is the default.",
    )

    instance = Unicode(
        "",
        config=True,
        help="""Name of this hub instance, e.g. "a" (the role's jupyterhub_instance).""",
    )
    instance_prefixes = Dict(
        value_trait=Unicode(),
        config=True,
        help="""Server name prefix of every hub instance of the site, this one included:
        {"a": "jupyter-a-", "b": "jupyter-b-"}. The backends look for this user's servers
        named <prefix><user> of the other instances. Empty: no look at other instances.""",
    )
    instance_role = Enum(
        FRONTS,
        "production",
        config=True,
        help="""Front a start is taken to come through when the request carries no
        front_header (REST API calls from inside the site, a proxy without the header):
        "production" on the active instance, "test" on the other.""",
    )
    front_header = Unicode(
        "X-JupyterHub-Front",
        config=True,
        help="""Request header NGINX sets on every request to say which front it came
        through: "production" or "test". NGINX overwrites what a client sends.""",
    )
    exclusive_servers = Bool(
        True,
        config=True,
        help="""One server per user on the whole site: before a start, look for this user's
        servers of the other instances (every enabled backend) and take them over or refuse
        the start. False: never look.""",
    )
    takeover_servers = Bool(
        True,
        config=True,
        help="""A start through the production front stops the user's servers of the other
        instances first. False: it is refused like a start through the test front.""",
    )
    takeover_timeout = Float(
        30.0,
        config=True,
        help="Seconds a takeover waits for the other instances' servers to end.",
    )
    exclusive_check_timeout = Float(
        20.0,
        config=True,
        help="""Seconds a backend may take to list or stop the user's servers of the other
        instances; a backend that does not answer in time refuses the start.""",
    )
    exclusive_poll_interval = Float(
        1.0, config=True, help="Seconds between two looks while a takeover waits."
    )
    maintenance_message = Unicode(
        "",
        config=True,
        help="""While not empty, every new start on this instance is refused (HTTP 503) with
        this message, which the spawn form also shows at its top. Running servers are not
        touched.""",
    )

    child_backend = Unicode("")

    @default("options_form")
    def _default_options_form(self) -> Any:
        return _render_options_form

    # --- choosing the backend -------------------------------------------------------------

    def _enabled(self) -> list[str]:
        return [name for name in self.backend_order if name in self.backends] or sorted(
            self.backends
        )

    def _check_backend(self, name: str) -> str:
        enabled = self._enabled()
        if name not in enabled:
            raise ValueError(
                f"Unknown compute backend {name!r}: this hub offers {', '.join(enabled) or 'none'}."
            )
        return name

    def _backend_of(self, options: dict) -> str:
        return self._check_backend(str(options.get("backend") or self._enabled()[0]))

    def _new_child(self, backend: str, user_options: dict) -> Spawner:
        """A spawner of the backend's class for this user and server (not started)."""
        cls = import_item(self.backends[backend]["class"])
        child = cls(
            user=self.user,
            orm_spawner=self.orm_spawner,
            _deprecated_db_session=self._deprecated_db_session,
            hub=self.hub,
            authenticator=self.authenticator,
            config=self.config,
            oauth_client_id=self.oauth_client_id,
            user_options=user_options,
            **self.child_config,
        )
        for name in _INSTANCE_TRAITS:
            value = getattr(self, name)
            if value and child.has_trait(name):
                setattr(child, name, value)
        child.clear_state()
        return child

    def last_options(self, backend: str) -> dict:
        """What the user last submitted for this backend (JupyterHub keeps it per server)."""
        stored = getattr(self.orm_spawner, "user_options", None) or {}
        if stored.get("backend") == backend and isinstance(stored.get("options"), dict):
            return dict(stored["options"])
        return {}

    # --- the form -------------------------------------------------------------------------

    async def render_form(self) -> str:
        enabled = self._enabled()
        stored = getattr(self.orm_spawner, "user_options", None) or {}
        picked = stored.get("backend") if stored.get("backend") in enabled else enabled[0]
        parts = [_FORM_STYLE]
        if self.maintenance_message:
            parts.append(
                '<div class="alert alert-warning site-maintenance">'
                f"{html.escape(self.maintenance_message)}</div>"
            )
        if len(enabled) > 1:
            parts.append(
                '<div class="form-group site-backend-choice">'
                "<p><strong>Where should your server run?</strong></p>"
            )
            for name in enabled:
                display = html.escape(self.backends[name].get("display", name))
                checked = " checked" if name == picked else ""
                parts.append(
                    f'<label><input type="radio" name="backend" value="{html.escape(name)}"'
                    f"{checked}> {display}</label>"
                )
            parts.append("</div>")
        else:
            parts.append(f'<input type="hidden" name="backend" value="{html.escape(enabled[0])}">')
        for name in enabled:
            probe = self._new_child(name, self.last_options(name))
            section = await probe.site_form()
            parts.append(
                f'<div class="site-backend" data-backend="{html.escape(name)}">{section}</div>'
            )
        if len(enabled) > 1:
            parts.append(_FORM_SCRIPT)
        return "\n".join(parts)

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict:
        backend = self._check_backend((formdata.get("backend") or [self._enabled()[0]])[0])
        probe = self._new_child(backend, {})
        return {"backend": backend, "options": probe.site_options(formdata)}

    # --- the wrapped spawner ---------------------------------------------------------------

    @observe("port")
    def _forward_port(self, change: dict) -> None:
        # batchspawner's API handler writes the port the notebook reports onto the spawner
        # JupyterHub knows (this wrapper); the waiting backend reads its own.
        if self.child_spawner is not None and change["new"]:
            self.child_spawner.port = change["new"]

    def construct_child(self) -> Spawner:
        if self.child_spawner is None:
            backend = self._backend_of(self.user_options or {})
            self.child_backend = backend
            options = (self.user_options or {}).get("options") or {}
            if not isinstance(options, dict):
                raise ValueError(
                    "user_options['options'] must be a mapping of the backend's options."
                )
            self.child_spawner = self._new_child(backend, dict(options))
            if self.child_state:
                self.child_spawner.load_state(self.child_state)
            for name in _SERVER_TRAITS:
                if self.has_trait(name) and self.child_spawner.has_trait(name):
                    setattr(self.child_spawner, name, getattr(self, name))
        return self.child_spawner

    def load_child_class(self, state: dict) -> None:
        backend = state.get("backend")
        if backend and backend in self.backends:
            self.user_options = {**(self.user_options or {}), "backend": backend}

    def get_state(self) -> dict:
        state = super().get_state()
        if self.child_backend:
            state["backend"] = self.child_backend
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.child_backend = ""

    async def start(self) -> Any:
        # A fresh start: the child follows this start's user_options, never an older child.
        self.child_spawner = None
        self.child_state = {}
        self._notes: list[str] = []
        self._child_starting = False
        if self.maintenance_message:
            raise refusal(503, self.maintenance_message)
        self._backend_of(self.user_options or {})  # an unknown backend is refused first
        if self.exclusive_servers:
            await self._one_server_per_user()
        child = self.construct_child()
        self._child_starting = True
        result = await child.start()
        if self.exclusive_servers:
            await self._recheck_after_start()
        return result

    async def progress(self) -> Any:
        """The wrapper's own notes (a takeover), then the backend's progress."""
        shown = 0
        while not getattr(self, "_child_starting", True):
            notes = getattr(self, "_notes", [])
            for note in notes[shown:]:
                yield {"message": note}
            shown = len(notes)
            await asyncio.sleep(0.25)
        for note in getattr(self, "_notes", [])[shown:]:
            yield {"message": note}
        if self.child_spawner is not None:
            async with contextlib.aclosing(self.child_spawner.progress()) as events:
                async for event in events:
                    yield event

    # --- one server per user, site-wide ------------------------------------------------------

    def front(self) -> str:
        """The front the start came through: NGINX's header, else instance_role."""
        request = getattr(getattr(self, "handler", None), "request", None)
        headers = getattr(request, "headers", None)
        value = (headers.get(self.front_header, "") if headers is not None else "") or ""
        value = value.strip().lower()
        if value in FRONTS:
            return value
        if value:
            self.log.warning(
                "Unknown %s %r for %s; taking instance_role %s",
                self.front_header,
                value[:40],
                self.user.name,
                self.instance_role,
            )
        return self.instance_role

    def _note(self, message: str) -> None:
        self.log.info("%s: %s", self.user.name, message)
        self._notes.append(message)

    async def _bounded(self, what: str, step: Any) -> Any:
        try:
            return await asyncio.wait_for(step, self.exclusive_check_timeout)
        except TimeoutError:
            raise RuntimeError(
                f"{what} did not answer within {self.exclusive_check_timeout:g} s"
            ) from None

    async def other_servers(self) -> list[tuple[Spawner, str, OtherServer]]:
        """This user's servers of the other instances on every enabled backend, with the
        backend that can stop each; a RuntimeError naming a backend that cannot tell."""
        probes = []
        for name in self._enabled():
            probe = self._new_child(name, {})
            if hasattr(probe, "find_other_servers"):
                probes.append((name, probe))
        results = await asyncio.gather(
            *(self._bounded(self._display(n), p.find_other_servers()) for n, p in probes),
            return_exceptions=True,
        )
        found = []
        for (name, probe), result in zip(probes, results, strict=True):
            if isinstance(result, BaseException):
                raise RuntimeError(
                    f"{self._display(name)}: {str(result)[:300] or type(result).__name__}"
                )
            found.extend((probe, name, server) for server in result)
        return found

    def _display(self, backend: str) -> str:
        return str(self.backends.get(backend, {}).get("display") or backend)

    async def _one_server_per_user(self) -> None:
        """Before a start: take the other instances' servers over or refuse the start."""
        try:
            found = await self.other_servers()
        except RuntimeError as error:
            raise refusal(
                503,
                "Cannot check whether you have a server on another JupyterHub instance of "
                f"this site ({error}); one server per user, so nothing was started. Try "
                "again in a minute.",
            ) from None
        if not found:
            return
        where = "; ".join(server.describe() for _, _, server in found)
        instances = ", ".join(sorted({server.instance for _, _, server in found}))
        front = self.front()
        if front != "production" or not self.takeover_servers:
            self.log.warning(
                "Refusing a start of %s (%s front): servers on %s", self.user.name, front, where
            )
            other_front = "production" if front == "test" else "test"
            raise refusal(
                409,
                f"You already have a notebook server on {where}. One server per user: stop "
                f"that server on instance {instances} first (at the site's {other_front} URL: "
                "Home page, Stop My Server), then start this one. Your files are the same on "
                "both.",
            )
        await self._take_over(found)

    async def _take_over(self, found: list[tuple[Spawner, str, OtherServer]]) -> None:
        """Stop the other instances' servers and wait (bounded) until they have ended."""
        for probe, name, server in found:
            self._note(
                f"Stopping your server on instance {server.instance} ({server.name}): "
                "one server per user..."
            )
            try:
                await self._bounded(self._display(name), probe.stop_other_server(server))
            except Exception as error:
                raise refusal(
                    503,
                    f"Could not stop your server on {server.describe()}: "
                    f"{str(error)[:300]}. Nothing was started; try again in a minute.",
                ) from None
        waiting = list(found)
        deadline = time.monotonic() + self.takeover_timeout
        while waiting:
            still = []
            for probe, name, server in waiting:
                try:
                    gone = await self._bounded(self._display(name), probe.other_server_gone(server))
                except Exception as error:
                    self.log.warning("Cannot tell whether %s ended: %s", server.describe(), error)
                    gone = False
                if gone:
                    self._note(
                        f"Stopped your server on instance {server.instance} ({server.name}): "
                        "one server per user."
                    )
                else:
                    still.append((probe, name, server))
            waiting = still
            if not waiting:
                break
            if time.monotonic() >= deadline:
                where = "; ".join(server.describe() for _, _, server in waiting)
                raise refusal(
                    503,
                    f"Your server on {where} did not end within {self.takeover_timeout:g} s. "
                    "Nothing was started; try again in a minute.",
                )
            await asyncio.sleep(self.exclusive_poll_interval)

    async def _recheck_after_start(self) -> None:
        """Once the server runs: a start on the other instance at the same moment may have
        passed its own look too. Production takes over again; test gives up its server
        (JupyterHub stops a server whose start failed)."""
        try:
            found = await self.other_servers()
        except RuntimeError as error:
            self.log.warning("Second look for servers of %s failed: %s", self.user.name, error)
            return
        if not found:
            return
        where = "; ".join(server.describe() for _, _, server in found)
        if self.front() == "production" and self.takeover_servers:
            self.log.warning(
                "%s started a server on %s meanwhile; taking over", self.user.name, where
            )
            await self._take_over(found)
            return
        raise refusal(
            409,
            f"Meanwhile a notebook server started on {where}; one server per user, so this "
            "one is stopped again.",
        )


def refusal(status: int, message: str) -> web.HTTPError:
    """An HTTPError whose message JupyterHub shows on the spawn page, in the progress
    events and in its REST API answer (it replaces the reason of failed spawns with a
    generic text, but shows ``jupyterhub_message``)."""
    error = web.HTTPError(status, "%s", message)
    error.jupyterhub_message = message  # type: ignore[attr-defined]
    return error


async def _render_options_form(spawner: SiteSpawner) -> str:
    return await spawner.render_form()
