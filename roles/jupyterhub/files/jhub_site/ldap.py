"""LDAP login whose administrators follow directory groups, checked at every login."""

from __future__ import annotations

from typing import Any

from ldapauthenticator import LDAPAuthenticator
from traitlets import List, Unicode


class SiteLDAPAuthenticator(LDAPAuthenticator):
    """ldapauthenticator's LDAPAuthenticator with ``admin_groups``.

    ldapauthenticator checks the groups of ``allowed_groups`` at login and keeps the ones the
    user belongs to in the auth state (``ldap_groups``). A user is an administrator when one
    of them is in ``admin_groups``, so every admin group must also be an allowed group (the
    jupyterhub role adds them). Someone in no admin group and not in ``admin_users`` loses
    administrator rights at the next login.
    """

    admin_groups = List(
        Unicode(),
        config=True,
        help="DNs of LDAP groups whose members are JupyterHub administrators.",
    )

    def is_admin(self, handler: Any, authentication: dict) -> bool | None:
        if super().is_admin(handler, authentication):
            return True
        if not self.admin_groups:
            return None
        groups = set((authentication.get("auth_state") or {}).get("ldap_groups") or [])
        return bool(groups.intersection(self.admin_groups))
