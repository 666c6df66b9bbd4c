"""Render Ansible variables into HTCondor configuration files and ClassAd literals."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: htcondor_config
short_description: Render a mapping of HTCondor configuration macros as C(NAME = value) lines
description:
  - Turns a mapping of HTCondor configuration macros (knobs) into the text of a configuration
    file, one C(NAME = value) line per macro, sorted by name, so the output never changes
    order. HTCondor expands macros when a daemon looks them up, so the order of definitions
    does not matter (write C(use) metaknobs and self-references such as C($(START)) by hand
    in the template, before the generated lines).
  - A name is an HTCondor macro name, optionally with C(SUBSYS.) or C(SUBSYS.LOCALNAME.)
    prefixes (letters, digits, underscores, separated by dots).
  - A value is a string, an integer, a finite float, a boolean (written C(True)/C(False)) or a
    list of those (joined with C(, )). A value can never span lines, end in a backslash (a
    line continuation) or contain a NUL, so no value can inject another macro.
  - The companion filter C(htcondor_classad_string) writes a string as a ClassAd string literal
    (double quotes, backslash escapes) for use inside expressions.
options:
  _input:
    description: The macros, by name.
    type: dict
    required: true
author:
  - jhub-site maintainers
"""

EXAMPLES = r"""
- name: Write a drop-in of the central manager
  ansible.builtin.copy:
    dest: /etc/condor/config.d/20-site.conf
    content: "{{ knobs | htcondor_config }}"
    mode: "0644"
  vars:
    knobs:
      NEGOTIATOR_INTERVAL: 20
      GROUP_ACCEPT_SURPLUS_group_jupyter: true
      DAEMON_LIST: [MASTER, COLLECTOR, NEGOTIATOR]

# AcctGroup =?= "group_jupyter"
- name: Compare an attribute with a string in an expression
  ansible.builtin.debug:
    msg: AcctGroup =?= {{ 'group_jupyter' | htcondor_classad_string }}
"""

RETURN = r"""
_value:
  description:
    - For C(htcondor_config), the configuration text, one C(NAME = value) line per macro sorted
      by name, ending with a newline (empty for no macros).
    - For C(htcondor_classad_string), a ClassAd string literal.
  type: string
"""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")
_FORBIDDEN = {"\n": "a line break", "\r": "a carriage return", "\x00": "a NUL character"}


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AnsibleFilterError(f"htcondor_config: {name} is {value!r}; use a finite number")
        return repr(value)
    if isinstance(value, str):
        for char, what in _FORBIDDEN.items():
            if char in value:
                raise AnsibleFilterError(
                    f"htcondor_config: the value of {name} contains {what}; HTCondor would read "
                    "the rest as another line. Write the value on one line."
                )
        if value.rstrip().endswith("\\"):
            raise AnsibleFilterError(
                f"htcondor_config: the value of {name} ends in a backslash, which continues "
                "the line in HTCondor's configuration language; remove it."
            )
        return value.strip()
    raise AnsibleFilterError(
        f"htcondor_config: {name} is a {type(value).__name__}; use a string, number, boolean "
        "or a list of those"
    )


def _value(name: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_scalar(f"{name}[{i}]", item) for i, item in enumerate(value))
    return _scalar(name, value)


def htcondor_config(knobs: Mapping[str, Any]) -> str:
    """``NAME = value`` lines, sorted by name."""
    if not isinstance(knobs, Mapping):
        raise AnsibleFilterError(
            f"htcondor_config: expected a mapping of macro names to values, got "
            f"{type(knobs).__name__}"
        )
    seen: dict[str, str] = {}
    lines = []
    for name in sorted(knobs, key=lambda n: str(n).upper()):
        if not isinstance(name, str) or not _NAME.match(name):
            raise AnsibleFilterError(
                f"htcondor_config: {name!r} is not an HTCondor macro name (letters, digits and "
                "underscores, optionally prefixed with SUBSYS. or SUBSYS.LOCALNAME.)"
            )
        # HTCondor's macro names are case-insensitive: two spellings would silently collide.
        if name.upper() in seen:
            raise AnsibleFilterError(
                f"htcondor_config: {name} and {seen[name.upper()]} name the same macro "
                "(names are case-insensitive); keep one"
            )
        seen[name.upper()] = name
        value = _value(name, knobs[name])
        lines.append(f"{name} = {value}".rstrip())
    return "".join(line + "\n" for line in lines)


def htcondor_classad_string(value: Any) -> str:
    """A ClassAd string literal: double quotes, backslash and quote escaped."""
    if not isinstance(value, str):
        raise AnsibleFilterError(
            f"htcondor_classad_string: expected a string, got {type(value).__name__}"
        )
    for char, what in _FORBIDDEN.items():
        if char in value:
            raise AnsibleFilterError(f"htcondor_classad_string: {value!r} contains {what}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class FilterModule:
    """HTCondor configuration filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "htcondor_config": htcondor_config,
            "htcondor_classad_string": htcondor_classad_string,
        }
