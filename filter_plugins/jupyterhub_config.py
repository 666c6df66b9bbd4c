"""Render Ansible variables into ``jupyterhub_config.py`` as inert Python literals."""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: jupyterhub_config_lines
short_description: Render JupyterHub settings as safe C(jupyterhub_config.py) lines
description:
  - Turns a mapping of traitlets settings into the text of a C(jupyterhub_config.py), one
    C(c.Class.attribute = <literal>) line per setting, sorted by setting name.
  - Every value is written as a Python literal (see the companion filter C(to_python_literal) in
    the same file), so no value can inject code into the configuration file.
  - The companion filter C(to_python_literal) renders one value as Python source text that
    C(ast.literal_eval) turns back into an equal value. It accepts str, int, finite float, bool,
    None, list, tuple (written as a list) and dict with str, int, bool or None keys, nested in any
    combination, and takes one option C(sort_keys) (bool, default V(true)) that writes dict keys
    in a canonical order rather than insertion order.
  - Anything else (NaN, infinity, bytes, sets, dates, other objects, invalid keys) fails with an
    error naming the offending key or the path to the offending value.
options:
  _input:
    description:
      - >-
        The settings, either flat (keys like C(JupyterHub.bind_url)) or nested by class (key
        C(JupyterHub) holding a mapping with key C(bind_url)). Both forms may be mixed; a setting
        given twice is an error.
      - A setting name must be exactly two dot-separated ASCII identifiers (C(Class.attribute))
        that are not Python keywords and do not start with an underscore.
    type: dict
    required: true
  prefix:
    description:
      - Name of the config object the lines assign to.
      - Must follow the same rules as one part of a setting name.
    type: string
    default: c
author:
  - JupyterHub deployment maintainers
"""

EXAMPLES = r"""
- name: Write the JupyterHub configuration
  ansible.builtin.copy:
    dest: /etc/jupyterhub/jupyterhub_config.py
    content: "{{ jupyterhub_settings | jupyterhub_config_lines }}"
    mode: "0640"
  vars:
    jupyterhub_settings:
      JupyterHub.bind_url: http://127.0.0.1:8000
      Authenticator.allowed_users: [alice, bob]
      Spawner:
        mem_limit: 4G
        cmd: [jupyterhub-singleuser]

# In a template: c.KubeSpawner.profile_list = [{'display_name': 'Small', ...}]
- name: Render one value as a Python literal
  ansible.builtin.debug:
    msg: "c.KubeSpawner.profile_list = {{ profiles | to_python_literal }}"
"""

RETURN = r"""
_value:
  description:
    - For C(jupyterhub_config_lines), the configuration text, one C(c.Class.attribute = literal)
      line per setting sorted by setting name, ending with a newline (empty for no settings).
    - For C(to_python_literal), Python source text on one line that C(ast.literal_eval) turns
      back into a value equal to the input.
  type: string
"""

# Python's parser refuses more than 200 nested brackets; stay well below so output always parses.
MAX_DEPTH = 100

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_KEY_HELP = (
    "a valid key looks like 'JupyterHub.bind_url': exactly two dot-separated ASCII identifiers "
    "that are not Python keywords and do not start with an underscore"
)
# Allowed dict key types in output order; bool before int because bool is an int subclass.
_KEY_TYPES: tuple[type, ...] = (type(None), bool, int, str)


def _type_name(value: object) -> str:
    """Name the nearest non-Ansible class of ``value``.

    Ansible tags wrap builtins in subclasses, so those subclasses are skipped.
    """
    for cls in type(value).__mro__:
        if not cls.__module__.startswith("ansible"):
            break
    qualname = cls.__qualname__
    if cls.__module__ != "builtins":
        qualname = f"{cls.__module__}.{qualname}"
    if cls is type(value):
        return qualname
    return f"{qualname} (as {type(value).__qualname__})"


def _where(path: str) -> str:
    return f"at {path}" if path else "at the top level"


def _child_path(path: str, key: object) -> str:
    if isinstance(key, str) and _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}" if path else str.__str__(key)
    return f"{path}[{_render_scalar(key, path)}]"


def _key_sort_value(key: object) -> tuple[int, Any]:
    """Order keys by type first so None, bools, ints and strs never get compared to each other."""
    rank = next(index for index, key_type in enumerate(_KEY_TYPES) if isinstance(key, key_type))
    return (rank, 0 if key is None else key)


def _render_int(value: int, path: str) -> str:
    try:
        return int.__repr__(value)
    except ValueError as exc:  # more digits than sys.get_int_max_str_digits() allows
        raise AnsibleFilterError(
            f"cannot render value as a Python literal: integer {_where(path)} has too many digits"
        ) from exc


def _render_float(value: float, path: str) -> str:
    if not math.isfinite(value):
        raise AnsibleFilterError(
            f"cannot render value as a Python literal: float {float.__repr__(value)} {_where(path)}"
            " is not a Python literal (NaN and infinity are not allowed)"
        )
    return float.__repr__(value)


def _render_scalar(value: object, path: str) -> str:
    """Render None, bool, int, float or str.

    Uses the builtin type's own repr, never a subclass's.
    """
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return _render_int(value, path)
    if isinstance(value, float):
        return _render_float(value, path)
    if isinstance(value, str):
        return str.__repr__(value)
    raise _unsupported(value, path)


def _unsupported(value: object, path: str) -> AnsibleFilterError:
    return AnsibleFilterError(
        f"cannot render value as a Python literal: unsupported type {_type_name(value)}"
        f" {_where(path)}; allowed are str, int, finite float, bool, None, list, tuple and dict"
        " (convert it first, e.g. with the 'string' filter)"
    )


def _render_key(key: object, path: str) -> str:
    if isinstance(key, _KEY_TYPES):
        return _render_scalar(key, path)
    raise AnsibleFilterError(
        f"cannot render value as a Python literal: dict key of type {_type_name(key)}"
        f" {_where(path)}; dict keys must be str, int, bool or None"
    )


def _render_dict(value: Mapping, path: str, ancestors: tuple[int, ...], sort_keys: bool) -> str:
    # Iterate through the public Mapping API: Ansible's lazy dicts template values on access,
    # while dict.items(value) would expose their internal placeholders.
    items = [(_render_key(key, path), key, item) for key, item in value.items()]
    if sort_keys:
        items.sort(key=lambda entry: _key_sort_value(entry[1]))
    parts = (
        f"{rendered}: {_render(item, _child_path(path, key), ancestors, sort_keys)}"
        for rendered, key, item in items
    )
    return "{" + ", ".join(parts) + "}"


def _render_list(
    value: list | tuple, path: str, ancestors: tuple[int, ...], sort_keys: bool
) -> str:
    parts = (
        _render(item, f"{path}[{index}]", ancestors, sort_keys) for index, item in enumerate(value)
    )
    return "[" + ", ".join(parts) + "]"


def _enter(value: object, path: str, ancestors: tuple[int, ...]) -> tuple[int, ...]:
    if id(value) in ancestors:
        raise AnsibleFilterError(
            f"cannot render value as a Python literal: circular reference {_where(path)}"
        )
    if len(ancestors) >= MAX_DEPTH:
        raise AnsibleFilterError(
            f"cannot render value as a Python literal: more than {MAX_DEPTH} nested containers"
            f" {_where(path)}"
        )
    return (*ancestors, id(value))


def _render(value: object, path: str, ancestors: tuple[int, ...], sort_keys: bool) -> str:
    if isinstance(value, Mapping):
        return _render_dict(value, path, _enter(value, path, ancestors), sort_keys)
    if isinstance(value, (list, tuple)):
        return _render_list(value, path, _enter(value, path, ancestors), sort_keys)
    return _render_scalar(value, path)


def to_python_literal(value: Any, sort_keys: bool = True) -> str:
    """Return Python source text that ``ast.literal_eval`` turns back into ``value``.

    Dict keys are written in a canonical order (None, bools, ints, then strings, each sorted)
    unless ``sort_keys`` is false, in which case insertion order is kept.
    """
    if not isinstance(sort_keys, bool):
        raise AnsibleFilterError(f"sort_keys must be a bool, got {_type_name(sort_keys)}")
    return _render(value, "", (), sort_keys)


def _is_name(name: object) -> bool:
    return (
        isinstance(name, str) and bool(_IDENTIFIER.fullmatch(name)) and not keyword.iskeyword(name)
    )


def _bad_key(key: object, detail: str = "") -> AnsibleFilterError:
    shown = str.__repr__(key) if isinstance(key, str) else f"of type {_type_name(key)}"
    return AnsibleFilterError(f"invalid setting key {shown}{detail}; {_KEY_HELP}")


def _setting_name(key: object, detail: str = "") -> str:
    """Validate a flat 'Class.attribute' key and return it as a plain str."""
    if not isinstance(key, str):
        raise _bad_key(key, detail)
    parts = str.__str__(key).split(".")
    if len(parts) != 2 or not all(_is_name(part) for part in parts):
        raise _bad_key(key, detail)
    return ".".join(parts)


def _nested_entries(class_name: str, attributes: Mapping) -> list[tuple[str, Any]]:
    if not _is_name(class_name):
        raise _bad_key(class_name, " (a class name holding nested settings)")
    detail = f" (nested under {str.__repr__(class_name)})"
    entries = []
    for attribute, value in attributes.items():
        if not isinstance(attribute, str):
            raise _bad_key(attribute, detail)
        entries.append(
            (_setting_name(f"{str.__str__(class_name)}.{str.__str__(attribute)}", detail), value)
        )
    return entries


def _flat_settings(settings: Mapping) -> dict[str, Any]:
    """Normalise flat and class-nested settings into one {'Class.attribute': value} dict."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(key, str) and "." not in key and isinstance(value, Mapping):
            entries = _nested_entries(key, value)
        else:
            entries = [(_setting_name(key), value)]
        for name, item in entries:
            if name in flat:
                raise AnsibleFilterError(f"setting {name!r} is given twice")
            flat[name] = item
    return flat


def jupyterhub_config_lines(settings: Mapping, prefix: str = "c") -> str:
    """Render settings as sorted ``prefix.Class.attribute = <literal>`` lines."""
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError(
            f"settings must be a mapping of 'Class.attribute' to value, got {_type_name(settings)}"
        )
    if not _is_name(prefix):
        shown = str.__repr__(prefix) if isinstance(prefix, str) else f"of type {_type_name(prefix)}"
        raise AnsibleFilterError(
            f"invalid prefix {shown}; the prefix must be an ASCII identifier"
            " that is not a Python keyword and does not start with an underscore, e.g. 'c'"
        )
    flat = _flat_settings(settings)
    lines = [
        f"{str.__str__(prefix)}.{name} = {_render(flat[name], name, (), True)}\n"
        for name in sorted(flat)
    ]
    return "".join(lines)


class FilterModule:
    """Filters that write Ansible variables into jupyterhub_config.py as inert literals."""

    def filters(self) -> dict[str, Any]:
        return {
            "to_python_literal": to_python_literal,
            "jupyterhub_config_lines": jupyterhub_config_lines,
        }
