"""The lab's verify playbooks run one after another in one ansible-playbook run, so a
variable registered (or set as a fact) in one of them outranks a play variable of the same
name in a later one: the later play then runs with the earlier task's result instead of its
own value. No name may be both."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO_ROOT

LAB = REPO_ROOT / "molecule/lab"


class Loader(yaml.SafeLoader):
    """Reads Ansible's !unsafe and !vault tags as plain strings."""


Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
Loader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))


def test_no_play_variable_is_also_a_registered_result() -> None:
    registered: dict[str, set[str]] = {}
    play_vars: dict[str, set[str]] = {}
    for path in sorted(LAB.glob("*.yml")):
        text = path.read_text()
        for name in re.findall(r"^\s+register:\s*(\w+)\s*$", text, re.M):
            registered.setdefault(name, set()).add(path.name)
        for block in re.findall(r"set_fact:\s*\n((?:\s{8,}\w+:.*\n)+)", text):
            for name in re.findall(r"^\s+(\w+):", block, re.M):
                registered.setdefault(name, set()).add(path.name)
        plays = yaml.load(text, Loader=Loader) or []
        for play in plays if isinstance(plays, list) else []:
            if isinstance(play, dict) and "hosts" in play:
                for name in play.get("vars") or {}:
                    play_vars.setdefault(name, set()).add(path.name)
    clashes = {
        name: (sorted(registered[name]), sorted(play_vars[name]))
        for name in set(registered) & set(play_vars)
    }
    assert not clashes, (
        f"both registered and a play variable (where registered, where a play var): {clashes}"
    )
