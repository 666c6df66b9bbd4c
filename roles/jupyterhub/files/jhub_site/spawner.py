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
"""

from __future__ import annotations

import contextlib
import html
from typing import Any

from jupyterhub.spawner import Spawner
from traitlets import Dict, List, Unicode, default, observe
from traitlets.utils.importstring import import_item
from wrapspawner import WrapSpawner

# batchspawner registers its API handler (where the notebook reports its port) on import;
# a hub without batch backends has no batchspawner.
with contextlib.suppress(ImportError):
    import batchspawner  # noqa: F401

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
        child = self.construct_child()
        return await child.start()


async def _render_options_form(spawner: SiteSpawner) -> str:
    return await spawner.render_form()
