"""One notebook server per user across the hub instances of the site.

Each hub instance names what it spawns ``<prefix><user>`` with its own prefix
(``jupyter-a-``, ``jupyter-b-``). A backend that mixes in ``InstanceServers`` finds the
user's servers of the *other* instances by those names and can stop them; the site's spawn
wrapper (``jhub_site.spawner.SiteSpawner``) decides what to do with them before a start.

A backend implements:

- ``own_server_name() -> str``: the name of what this instance creates for the user;
- ``async find_other_servers() -> list[OtherServer]``: the user's servers of the other
  instances that still run (or are starting, or are still shutting down), found by exact
  name; an exception when the backend cannot tell;
- ``async stop_other_server(server)``: ask the backend to stop one of them gracefully;
- ``async other_server_gone(server) -> bool`` (optional): whether it has ended; the default
  looks again with ``find_other_servers``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from traitlets import Dict, Unicode
from traitlets.config import LoggingConfigurable

# What a name built from a prefix and a user name may hold before it goes into a command
# line or an API filter (Docker service names, SLURM job names, HTCondor batch names).
SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# What sudo answers when the hub may not run a command as the user (sudo -n, or no
# terminal to ask for a password on).
_SUDO_REFUSALS = (
    "a password is required",
    "is not allowed to execute",
    "a terminal is required",
    "no tty present",
)


def sudo_refused(message: str) -> bool:
    """Whether a command failed because sudo would not run it as the user: the hub's
    sudoers rule does not cover this user, so no hub instance can have started a batch job
    for them (both instances get the same rule from the role)."""
    text = message.lstrip()
    return text.startswith(("sudo:", "Sorry, user ")) and any(
        refusal in text for refusal in _SUDO_REFUSALS
    )


@dataclass(frozen=True)
class OtherServer:
    """A server of the same user that belongs to another hub instance."""

    instance: str  # the other instance, e.g. "a"
    name: str  # what that instance named it, e.g. "jupyter-a-alice"
    kind: str  # e.g. "Swarm service", "SLURM job 4242", "HTCondor job 57"
    ident: str  # what the backend stops it by (service ID, job ID, cluster ID)
    detail: str = ""  # its state for people, e.g. "running on node2"
    handles: tuple[str, ...] = ()  # what else the backend watches while it ends (task IDs)

    def describe(self) -> str:
        detail = f", {self.detail}" if self.detail else ""
        return f"instance {self.instance} ({self.name}: {self.kind}{detail})"


class InstanceServers(LoggingConfigurable):
    """What a backend needs to know about the hub instances of the site."""

    instance = Unicode(
        "",
        config=True,
        help="""Name of this hub instance (e.g. "a"). Empty: the instance whose prefix the
        backend's own server name starts with. Set by the site's spawn wrapper.""",
    )
    instance_prefixes = Dict(
        value_trait=Unicode(),
        config=True,
        help="""Server name prefix of every hub instance of the site, this one included:
        {"a": "jupyter-a-", "b": "jupyter-b-"}. Empty: no other instance is looked at.""",
    )

    def own_server_name(self) -> str:
        raise NotImplementedError

    def _own_instance(self, own: str) -> str:
        if self.instance:
            return self.instance
        matches = [
            (len(prefix), instance)
            for instance, prefix in self.instance_prefixes.items()
            if prefix and own.startswith(prefix)
        ]
        return max(matches)[1] if matches else ""

    def other_instance_names(self) -> dict[str, str]:
        """The names the other instances give this user's server, by instance; the part
        after the prefix is the one this instance uses (escaped the same way)."""
        if not self.instance_prefixes:
            return {}
        own = self.own_server_name()
        own_instance = self._own_instance(own)
        own_prefix = self.instance_prefixes.get(own_instance, "")
        if own_prefix and own.startswith(own_prefix):
            suffix = own[len(own_prefix) :]
        else:
            suffix = self.user.name
        names = {}
        for instance, prefix in sorted(self.instance_prefixes.items()):
            name = f"{prefix}{suffix}"
            if instance == own_instance or name == own:
                continue
            if not SERVER_NAME_RE.match(name):
                raise ValueError(
                    f"The server name {name[:60]!r} of instance {instance} is not a name a "
                    "backend can look for (instance_prefixes)."
                )
            names[instance] = name
        return names

    async def find_other_servers(self) -> list[OtherServer]:
        raise NotImplementedError

    async def stop_other_server(self, server: OtherServer) -> None:
        raise NotImplementedError

    async def other_server_gone(self, server: OtherServer) -> bool:
        return all(found.ident != server.ident for found in await self.find_other_servers())

    async def other_instance_servers(self) -> list[str]:
        """The user's servers of the other instances, as sentences for people."""
        return [server.describe() for server in await self.find_other_servers()]
