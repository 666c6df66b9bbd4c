"""Tests for filter_plugins/jupyterhub_config.py (to_python_literal, jupyterhub_config_lines)."""

from __future__ import annotations

import ast
import datetime
import decimal
import json
import keyword
import math
import os
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible.utils.unsafe_proxy import AnsibleUnsafeText, wrap_var
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import load_module

REPO_ROOT = Path(__file__).resolve().parents[3]
PLUGIN_DIR = REPO_ROOT / "filter_plugins"
PLUGIN_PATH = PLUGIN_DIR / "jupyterhub_config.py"


plugin = load_module("jupyterhub_config_filter", PLUGIN_PATH)
to_python_literal = plugin.to_python_literal
jupyterhub_config_lines = plugin.jupyterhub_config_lines

KEY_HELP = "a valid key looks like 'JupyterHub.bind_url'"


# --- helpers -------------------------------------------------------------------------------------


def strict_equal(actual: Any, expected: Any) -> bool:
    """Equality that also tells True from 1, 0.0 from -0.0 and list from tuple."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float):
        return actual == expected and math.copysign(1.0, actual) == math.copysign(1.0, expected)
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(strict_equal, actual, expected))
    if isinstance(expected, dict):
        typed_keys = {(type(key), key) for key in expected}
        if {(type(key), key) for key in actual} != typed_keys:
            return False
        return all(strict_equal(actual[key], expected[key]) for key in expected)
    return actual == expected


def as_plain(value: Any) -> Any:
    """What a value should come back as: tuples become lists, everything else is unchanged."""
    if isinstance(value, Mapping):
        return {key: as_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_plain(item) for item in value]
    return value


def literal_nodes_only(source: str) -> bool:
    """True if the expression uses nothing but literal syntax (no names, calls, attributes)."""
    allowed = (ast.Expression, ast.Constant, ast.List, ast.Dict, ast.UnaryOp, ast.USub, ast.Load)
    return all(isinstance(node, allowed) for node in ast.walk(ast.parse(source, mode="eval")))


def reversed_order(value: Any) -> Any:
    """An equal value whose dicts have the opposite insertion order."""
    if isinstance(value, dict):
        return {key: reversed_order(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_order(item) for item in value]
    return value


class FakeConfig:
    """Stand-in for traitlets' ``c``: each attribute is a namespace created on first access."""

    def __init__(self) -> None:
        self._sections: dict[str, types.SimpleNamespace] = {}

    def __getattr__(self, name: str) -> types.SimpleNamespace:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._sections.setdefault(name, types.SimpleNamespace())


def run_config(text: str, prefix: str = "c") -> dict[str, Any]:
    """Compile and execute config text without builtins; return what it assigned."""
    code = compile(text, "jupyterhub_config.py", "exec")
    fake = FakeConfig()
    # Executing the generated text is the point of the test.
    exec(code, {"__builtins__": {}, prefix: fake})
    return {
        f"{section}.{attribute}": value
        for section, namespace in fake._sections.items()
        for attribute, value in vars(namespace).items()
    }


def assignment_targets(text: str, prefix: str = "c") -> list[str]:
    """Check every statement is ``prefix.Class.attr = <literal>``; return the 'Class.attr' names."""
    names = []
    for statement in ast.parse(text).body:
        assert isinstance(statement, ast.Assign)
        assert len(statement.targets) == 1
        target = statement.targets[0]
        assert isinstance(target, ast.Attribute)
        assert isinstance(target.value, ast.Attribute)
        assert isinstance(target.value.value, ast.Name)
        assert target.value.value.id == prefix
        assert literal_nodes_only(ast.unparse(statement.value))
        names.append(f"{target.value.attr}.{target.attr}")
    return names


# --- to_python_literal: round trips --------------------------------------------------------------

TRICKY_VALUES = [
    "",
    "plain",
    "it's",
    'say "hi"',
    "both ' and \" quotes",
    "back\\slash",
    "trailing backslash \\",
    "\\' escaped quote",
    "new\nline",
    "carriage\rreturn\r\n",
    "tab\tand\x0bvertical\x0cfeed",
    "nul \x00 byte",
    "bell \x07 and escape \x1b[31m",
    "emoji 😀 👩‍👩‍👧 🏳️‍🌈",
    "RTL override \u202e and isolate \u2067 marks",
    "עברית and العربية",
    "line separators \u2028 \u2029 \x85",
    "zero width \u200b\ufeff",
    "lone surrogate \ud800",
    "\\N{BULLET} \\u0041 \\x41",
    '"); import os; ("',
    "'); import os; ('",
    "'''\nimport os\n'''",
    '"""',
    "x\nimport os",
    "\\\nimport os",
    "# comment",
    "{{ lookup('pipe', 'id') }}",
    "__import__('os').system('id')",
    0,
    1,
    -1,
    2**63,
    -(2**200),
    True,
    False,
    None,
    0.0,
    -0.0,
    1.5,
    -2.5e-10,
    1e300,
    5e-324,
    1.7976931348623157e308,
    [],
    {},
    [[]],
    [[], {}, [[[]]]],
    {"a": {"b": [1, {"c": None}]}},
    {1: "int key", None: "none key", "s": "str key", -3: "negative"},
    {True: "bool key", False: 0, 2: "int key"},
    {"": "", "with space": 1, "dotted.key": 2, "import": 3},
    [1, "1", 1.0, True, None],
    {
        "profile_list": [
            {
                "display_name": "Small (2 CPU, 4 GB)",
                "default": True,
                "kubespawner_override": {"cpu_limit": 2, "mem_limit": "4G"},
            },
            {
                "display_name": "GPU",
                "kubespawner_override": {
                    "extra_resource_limits": {"nvidia.com/gpu": "1"},
                    "node_selector": None,
                },
            },
        ]
    },
]


def stable_id(value: Any) -> str:
    """A test id that is the same in every process (pytest-xdist compares them)."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


@pytest.mark.parametrize("value", TRICKY_VALUES, ids=stable_id)
def test_round_trip(value: Any) -> None:
    source = to_python_literal(value)
    assert isinstance(source, str)
    assert type(source) is str
    assert strict_equal(ast.literal_eval(source), value)
    assert literal_nodes_only(source)
    assert "\n" not in source
    assert "\r" not in source


@pytest.mark.parametrize("value", TRICKY_VALUES, ids=stable_id)
def test_round_trip_without_sorting(value: Any) -> None:
    assert strict_equal(ast.literal_eval(to_python_literal(value, sort_keys=False)), value)


def test_tuples_become_lists() -> None:
    value = (1, ("a", (None,)), {"k": (True,)})
    source = to_python_literal(value)
    assert source == "[1, ['a', [None]], {'k': [True]}]"
    assert strict_equal(ast.literal_eval(source), as_plain(value))


def test_exact_output_for_simple_values() -> None:
    assert to_python_literal("it's") == '"it\'s"'
    assert to_python_literal("a\nb") == "'a\\nb'"
    assert to_python_literal(True) == "True"
    assert to_python_literal(None) == "None"
    assert to_python_literal(-0.0) == "-0.0"
    assert to_python_literal({"b": 1, "a": [2]}) == "{'a': [2], 'b': 1}"


def test_bidi_controls_are_escaped_but_printable_text_is_kept() -> None:
    assert to_python_literal("\u202eabc") == "'\\u202eabc'"
    assert to_python_literal("😀 שלום") == "'😀 שלום'"


def test_dict_keys_are_sorted_by_type_then_value() -> None:
    value = {"b": 1, 2: 0, None: 0, "a": 1, True: 0, -5: 0}
    assert to_python_literal(value) == "{None: 0, True: 0, -5: 0, 2: 0, 'a': 1, 'b': 1}"


def test_equal_dicts_render_identically_whatever_their_insertion_order() -> None:
    first = {"x": {"b": 1, "a": 2}, "y": [{"d": None, "c": True}]}
    assert first == reversed_order(first)
    assert to_python_literal(first) == to_python_literal(reversed_order(first))


def test_sort_keys_false_keeps_insertion_order() -> None:
    assert to_python_literal({"b": 1, "a": {"d": 1, "c": 2}}, sort_keys=False) == (
        "{'b': 1, 'a': {'d': 1, 'c': 2}}"
    )


# --- to_python_literal: hostile subclasses and other mappings ------------------------------------


class EvilStr(str):
    def __repr__(self) -> str:
        return "__import__('os').system('id')"

    def __str__(self) -> str:
        return "__import__('os').system('id')"

    def __format__(self, spec: str) -> str:
        return "__import__('os').system('id')"


class EvilInt(int):
    def __repr__(self) -> str:
        return "exit()"

    def __int__(self) -> int:
        return 666


class EvilFloat(float):
    def __repr__(self) -> str:
        return "exit()"


class EvilDict(dict):
    def __repr__(self) -> str:
        return "exit()"


class EvilList(list):
    def __repr__(self) -> str:
        return "exit()"


class ReadOnlyMapping(Mapping):
    def __init__(self, data: dict) -> None:
        self._data = data

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_subclass_reprs_are_never_used() -> None:
    value = EvilDict(
        {
            EvilStr("key"): EvilList([EvilStr("text"), EvilInt(7), EvilFloat(2.5)]),
            "n": EvilInt(-3),
        }
    )
    source = to_python_literal(value)
    assert source == "{'key': ['text', 7, 2.5], 'n': -3}"
    assert "exit" not in source
    assert "import" not in source


def test_subclass_keys_do_not_leak_into_config_lines() -> None:
    text = jupyterhub_config_lines({EvilStr("Spawner.cmd"): EvilStr("x")}, prefix=EvilStr("c"))
    assert text == "c.Spawner.cmd = 'x'\n"


def test_any_mapping_is_accepted() -> None:
    source = to_python_literal(ReadOnlyMapping({"a": ReadOnlyMapping({"b": 1})}))
    assert source == "{'a': {'b': 1}}"


# --- to_python_literal: errors -------------------------------------------------------------------

UNSUPPORTED = [
    (float("nan"), ["nan", "top level", "NaN"]),
    (float("inf"), ["inf", "top level"]),
    (float("-inf"), ["-inf"]),
    ({"a": [1.0, float("inf")]}, ["inf", "at a[1]"]),
    (b"bytes", ["bytes", "top level"]),
    (bytearray(b"x"), ["bytearray"]),
    (
        {"profiles": [{}, {}, {"kubespawner_override": {"mem": b"4G"}}]},
        ["bytes", "at profiles[2].kubespawner_override.mem"],
    ),
    ({1, 2}, ["set"]),
    ({"x": [frozenset()]}, ["frozenset", "at x[0]"]),
    (object(), ["object"]),
    ({"when": datetime.date(2024, 1, 1)}, ["datetime.date", "at when"]),
    ([datetime.datetime(2024, 1, 1, 12)], ["datetime.datetime", "at [0]"]),
    (complex(1, 2), ["complex"]),
    (decimal.Decimal("1.5"), ["decimal.Decimal"]),
    (range(3), ["range"]),
    (lambda: None, ["function"]),
    ({"a b": {3: {1}}}, ["set", "at ['a b'][3]"]),
    ({"x": {None: {"y": b""}}}, ["bytes", "at x[None].y"]),
]


@pytest.mark.parametrize(("value", "fragments"), UNSUPPORTED, ids=stable_id)
def test_unsupported_values_are_rejected_with_type_and_path(
    value: Any, fragments: list[str]
) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        to_python_literal(value)
    for fragment in fragments:
        assert fragment in str(caught.value)


BAD_DICT_KEYS = [
    ({1.5: "x"}, ["float", "top level"]),
    ({("t",): 1}, ["tuple"]),
    ({b"k": 1}, ["bytes"]),
    ({"x": {frozenset(): 1}}, ["frozenset", "at x"]),
    ({"x": [{datetime.date(2024, 1, 1): 1}]}, ["datetime.date", "at x[0]"]),
]


@pytest.mark.parametrize(("value", "fragments"), BAD_DICT_KEYS, ids=stable_id)
def test_bad_dict_keys_are_rejected(value: Any, fragments: list[str]) -> None:
    with pytest.raises(AnsibleFilterError, match="dict key") as caught:
        to_python_literal(value)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_circular_reference_is_rejected() -> None:
    value: dict[str, Any] = {"a": []}
    value["a"].append(value)
    with pytest.raises(AnsibleFilterError, match=re.escape("circular reference at a[0]")):
        to_python_literal(value)


def test_shared_but_acyclic_containers_are_fine() -> None:
    shared = [1]
    assert to_python_literal({"a": shared, "b": shared}) == "{'a': [1], 'b': [1]}"


def test_nesting_deeper_than_python_can_parse_is_rejected() -> None:
    deepest_ok: list[Any] = []
    for _ in range(plugin.MAX_DEPTH - 1):
        deepest_ok = [deepest_ok]
    assert ast.literal_eval(to_python_literal(deepest_ok)) == deepest_ok
    with pytest.raises(AnsibleFilterError, match="nested containers"):
        to_python_literal([deepest_ok])


def test_integer_too_long_for_python_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match="too many digits"):
        to_python_literal({"n": 10 ** (sys.get_int_max_str_digits() + 1)})


def test_sort_keys_must_be_a_bool() -> None:
    with pytest.raises(AnsibleFilterError, match="sort_keys"):
        to_python_literal({}, sort_keys="no")


# --- to_python_literal: properties ---------------------------------------------------------------

any_text = st.text(st.characters(codec=None, exclude_categories=()))  # includes lone surrogates
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(any_text, inner, max_size=6),
    max_leaves=40,
)


@given(json_like)
def test_property_round_trip(value: Any) -> None:
    source = to_python_literal(value)
    assert strict_equal(ast.literal_eval(source), value)
    assert literal_nodes_only(source)
    assert len(source.splitlines()) == 1


@given(json_like)
def test_property_output_depends_only_on_value(value: Any) -> None:
    assert to_python_literal(value) == to_python_literal(reversed_order(value))


@given(json_like)
def test_property_unsorted_output_round_trips_in_order(value: Any) -> None:
    result = ast.literal_eval(to_python_literal(value, sort_keys=False))
    assert strict_equal(result, value)
    assert json.dumps(result, sort_keys=False) == json.dumps(value, sort_keys=False)


# --- jupyterhub_config_lines ---------------------------------------------------------------------


def test_flat_settings_render_sorted_lines() -> None:
    settings = {
        "JupyterHub.bind_url": "http://127.0.0.1:8000",
        "Spawner.mem_limit": "4G",
        "Authenticator.allowed_users": ["alice"],
    }
    assert jupyterhub_config_lines(settings) == (
        "c.Authenticator.allowed_users = ['alice']\n"
        "c.JupyterHub.bind_url = 'http://127.0.0.1:8000'\n"
        "c.Spawner.mem_limit = '4G'\n"
    )


def test_nested_settings_render_like_flat_ones() -> None:
    flat = {
        "JupyterHub.bind_url": "http://127.0.0.1:8000",
        "JupyterHub.port": 8000,
        "Spawner.environment": {"LANG": "C.UTF-8"},
        "SwarmSpawner.extra_host_config": {"mem_limit": "4g"},
    }
    nested = {
        "JupyterHub": {"bind_url": "http://127.0.0.1:8000", "port": 8000},
        "Spawner": {"environment": {"LANG": "C.UTF-8"}},
        "SwarmSpawner.extra_host_config": {"mem_limit": "4g"},
    }
    assert jupyterhub_config_lines(nested) == jupyterhub_config_lines(flat)
    assert run_config(jupyterhub_config_lines(nested)) == flat


def test_none_renders_as_none() -> None:
    assert (
        jupyterhub_config_lines({"Spawner.default_url": None}) == "c.Spawner.default_url = None\n"
    )


def test_empty_settings_render_nothing() -> None:
    assert jupyterhub_config_lines({}) == ""
    assert jupyterhub_config_lines({"JupyterHub": {}}) == ""


def test_custom_prefix() -> None:
    text = jupyterhub_config_lines({"JupyterHub.port": 8000}, prefix="config")
    assert text == "config.JupyterHub.port = 8000\n"
    assert run_config(text, prefix="config") == {"JupyterHub.port": 8000}


INJECTION_VALUES = {
    "Authenticator.admin_users": ["alice\nimport os", "bob\r\nimport os"],
    "JupyterHub.bind_url": '"); import os; ("',
    "JupyterHub.base_url": "'); __import__('os').system('id'); ('",
    "JupyterHub.template_vars": {"motd": "'''\nimport os\n'''", "end": "\\"},
    "Spawner.cmd": ["sh", "-c", "x\nimport os; os.system('id')"],
    "Spawner.default_url": "\\\nimport os",
    "Spawner.environment": {"X\nimport os": "1", "TEMPLATE": "{{ lookup('pipe', 'id') }}"},
    "Spawner.notebook_dir": "line\u2028separator \x85 \x00 \u202e",
}


def test_config_compiles_executes_and_sets_exactly_the_values() -> None:
    text = jupyterhub_config_lines(INJECTION_VALUES)
    assert len(text.splitlines()) == len(INJECTION_VALUES)
    assert text.endswith("\n")
    assert assignment_targets(text) == sorted(INJECTION_VALUES)
    assert strict_equal(run_config(text), INJECTION_VALUES)


def test_value_errors_name_the_setting_and_path() -> None:
    settings = {
        "KubeSpawner.profile_list": [
            {"display_name": "a"},
            {"display_name": "b"},
            {"kubespawner_override": {"mem": b"4G"}},
        ]
    }
    expected = "at KubeSpawner.profile_list[2].kubespawner_override.mem"
    with pytest.raises(AnsibleFilterError, match=re.escape(expected)):
        jupyterhub_config_lines(settings)
    with pytest.raises(AnsibleFilterError, match=re.escape("at Spawner.cpu_limit")):
        jupyterhub_config_lines({"Spawner": {"cpu_limit": float("nan")}})


BAD_KEYS = [
    "JupyterHub",
    "a.b.c",
    "Jupyter Hub.x",
    "x.import",
    "_x.y",
    "x.__class__",
    "",
    ".",
    "JupyterHub.",
    ".bind_url",
    "JupyterHub.bind_url ",
    " JupyterHub.bind_url",
    "JupyterHub.bind_url\n",
    "JupyterHub.bind_url;import os",
    "JupyterHub.bind_url=1\nimport os\nc.x",
    "Jupyter-Hub.x",
    "1Hub.x",
    "None.x",
    "x.True",
    "class.x",
    "x._private",
    # Fullwidth letter: Python would NFKC-normalise it to 'j'.
    "\N{FULLWIDTH LATIN SMALL LETTER J}upyterHub.x",
    "JupyterHüb.x",
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=stable_id)
def test_bad_keys_are_rejected_naming_the_key(key: str) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        jupyterhub_config_lines({key: 1})
    message = str(caught.value)
    assert repr(key) in message
    assert KEY_HELP in message


NESTED_BAD_KEYS = [
    ({"Jupyter Hub": {"x": 1}}, "'Jupyter Hub'"),
    ({"_JupyterHub": {"x": 1}}, "'_JupyterHub'"),
    ({"import": {"x": 1}}, "'import'"),
    ({"": {"x": 1}}, "''"),
    ({"JupyterHub": {"__class__": 1}}, "'JupyterHub.__class__'"),
    ({"JupyterHub": {"a.b": 1}}, "'JupyterHub.a.b'"),
    ({"JupyterHub": {"bind url": 1}}, "'JupyterHub.bind url'"),
    ({"JupyterHub": {1: 2}}, "of type int (nested under 'JupyterHub')"),
]


@pytest.mark.parametrize(("settings", "fragment"), NESTED_BAD_KEYS, ids=stable_id)
def test_bad_nested_keys_are_rejected(settings: dict, fragment: str) -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        jupyterhub_config_lines(settings)
    assert fragment in str(caught.value)
    assert KEY_HELP in str(caught.value)


@pytest.mark.parametrize("key", [1, None, ("JupyterHub", "port"), True], ids=stable_id)
def test_non_string_keys_are_rejected(key: Any) -> None:
    with pytest.raises(
        AnsibleFilterError, match=f"invalid setting key of type {type(key).__name__}"
    ):
        jupyterhub_config_lines({key: 1})


def test_a_setting_given_twice_is_rejected() -> None:
    with pytest.raises(AnsibleFilterError, match=r"'JupyterHub\.port' is given twice"):
        jupyterhub_config_lines({"JupyterHub.port": 1, "JupyterHub": {"port": 2}})


@pytest.mark.parametrize(
    "settings", [None, [], [("JupyterHub.port", 1)], "JupyterHub.port = 1", 3], ids=repr
)
def test_settings_must_be_a_mapping(settings: Any) -> None:
    with pytest.raises(AnsibleFilterError, match="settings must be a mapping") as caught:
        jupyterhub_config_lines(settings)
    assert type(settings).__name__ in str(caught.value)


@pytest.mark.parametrize(
    "prefix", ["", "c.d", "import", "_c", "c d", "c;import os", "c\n", "None", 1, None], ids=repr
)
def test_bad_prefix_is_rejected(prefix: Any) -> None:
    with pytest.raises(AnsibleFilterError, match="invalid prefix") as caught:
        jupyterhub_config_lines({"JupyterHub.port": 1}, prefix=prefix)
    shown = repr(prefix) if isinstance(prefix, str) else type(prefix).__name__
    assert shown in str(caught.value)


# --- jupyterhub_config_lines: properties ---------------------------------------------------------

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,11}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)
)
setting_keys = st.builds(lambda cls, attr: f"{cls}.{attr}", names, names)


@given(st.dictionaries(setting_keys, json_like, max_size=8))
def test_property_config_sets_exactly_the_settings(config: dict[str, Any]) -> None:
    text = jupyterhub_config_lines(config)
    assert len(text.splitlines()) == len(config)
    assert assignment_targets(text) == sorted(config)
    assert strict_equal(run_config(text), config)


@settings(max_examples=300)
@given(any_text)
def test_property_any_key_is_either_rejected_or_a_plain_attribute(key: str) -> None:
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*", key)
    if not plain or any(keyword.iskeyword(part) for part in key.split(".")):
        with pytest.raises(AnsibleFilterError, match=re.escape(repr(key))):
            jupyterhub_config_lines({key: 1})
        return
    text = jupyterhub_config_lines({key: 1})
    assert assignment_targets(text) == [key]


# --- Ansible's own value types -------------------------------------------------------------------

SAMPLE = {
    "JupyterHub.bind_url": "http://127.0.0.1:8000",
    "Spawner.cmd": ["jupyterhub-singleuser", "--debug"],
    "Spawner.environment": {"GREETING": "x\nimport os", "TEMPLATE": "{{ 1 + 1 }}"},
    "Spawner.cpu_limit": 1.5,
    "Spawner.default_url": None,
    "JupyterHub.cleanup_servers": False,
}


def test_wrap_var_values_render_like_plain_ones() -> None:
    wrapped = wrap_var(SAMPLE)
    assert to_python_literal(wrapped) == to_python_literal(SAMPLE)
    assert jupyterhub_config_lines(wrapped) == jupyterhub_config_lines(SAMPLE)


def test_ansible_unsafe_text_renders_like_str() -> None:
    unsafe = AnsibleUnsafeText("{{ lookup('pipe', 'id') }}\nimport os")
    assert to_python_literal(unsafe) == to_python_literal("{{ lookup('pipe', 'id') }}\nimport os")
    assert jupyterhub_config_lines({AnsibleUnsafeText("Spawner.cmd"): unsafe}) == (
        "c.Spawner.cmd = \"{{ lookup('pipe', 'id') }}\\nimport os\"\n"
    )


def test_template_trusted_strings_are_written_verbatim_not_templated() -> None:
    trusted = trust_as_template("{{ 1 + 1 }}")
    assert type(trusted) is not str  # a tagged str subclass
    assert to_python_literal(trusted) == "'{{ 1 + 1 }}'"
    assert to_python_literal({trusted: [trusted]}) == "{'{{ 1 + 1 }}': ['{{ 1 + 1 }}']}"


VARS_YAML = """\
mem_gb: 4
jupyterhub_settings:
  JupyterHub:
    bind_url: http://127.0.0.1:8000
    port: 8000
    cleanup_servers: false
  Authenticator.allowed_users: [alice, "bob\\nimport os"]
  Spawner.mem_limit: "{{ mem_gb }}G"
  Spawner.environment:
    GREETING: '"); import os; ("'
    LITERAL_BRACES: !unsafe "{{ not_templated }}"
  Spawner.default_url: null
  KubeSpawner.profile_list:
    - display_name: Small
      default: true
      kubespawner_override: {mem_limit: "{{ mem_gb * 2 }}G", cpu_limit: 1.5}
"""

VARS_EXPECTED = {
    "JupyterHub.bind_url": "http://127.0.0.1:8000",
    "JupyterHub.port": 8000,
    "JupyterHub.cleanup_servers": False,
    "Authenticator.allowed_users": ["alice", "bob\nimport os"],
    "Spawner.mem_limit": "4G",
    "Spawner.environment": {
        "GREETING": '"); import os; ("',
        "LITERAL_BRACES": "{{ not_templated }}",
    },
    "Spawner.default_url": None,
    "KubeSpawner.profile_list": [
        {
            "display_name": "Small",
            "default": True,
            "kubespawner_override": {"mem_limit": "8G", "cpu_limit": 1.5},
        }
    ],
}


@pytest.fixture
def yaml_vars(tmp_path: Path) -> dict[str, Any]:
    """Variables loaded the way ansible-core loads a vars file: tagged and trusted as templates."""
    path = tmp_path / "vars.yml"
    path.write_text(VARS_YAML, encoding="utf-8")
    return DataLoader().load_from_file(str(path), trusted_as_template=True)


@pytest.fixture(scope="module")
def templar_with_plugin() -> type[Templar]:
    from ansible.plugins.loader import filter_loader

    filter_loader.add_directory(str(PLUGIN_DIR))
    return Templar


def test_yaml_loaded_values_are_ansible_subclasses(yaml_vars: dict[str, Any]) -> None:
    settings = yaml_vars["jupyterhub_settings"]
    assert type(settings) is not dict
    assert type(settings["JupyterHub"]["bind_url"]) is not str
    assert type(settings["JupyterHub"]["port"]) is not int
    assert isinstance(settings["JupyterHub"]["port"], int)


def test_yaml_loaded_values_render_like_plain_ones(yaml_vars: dict[str, Any]) -> None:
    settings = yaml_vars["jupyterhub_settings"]
    plain = yaml.safe_load(VARS_YAML.replace("!unsafe ", ""))["jupyterhub_settings"]
    assert to_python_literal(settings) == to_python_literal(plain)
    assert jupyterhub_config_lines(settings) == jupyterhub_config_lines(plain)


def test_yaml_dates_are_rejected_with_path(tmp_path: Path) -> None:
    path = tmp_path / "dates.yml"
    path.write_text("Spawner:\n  start_date: 2024-01-01\n", encoding="utf-8")
    loaded = DataLoader().load_from_file(str(path))
    with pytest.raises(AnsibleFilterError) as caught:
        jupyterhub_config_lines(loaded)
    assert "datetime.date" in str(caught.value)
    assert "at Spawner.start_date" in str(caught.value)


def test_templated_values_in_lazy_containers_are_rendered(
    yaml_vars: dict[str, Any], templar_with_plugin: type[Templar]
) -> None:
    templar = templar_with_plugin(loader=DataLoader(), variables=yaml_vars)
    text = templar.template(
        trust_as_template("{{ jupyterhub_settings | jupyterhub_config_lines }}")
    )
    assert strict_equal(run_config(text), VARS_EXPECTED)
    literal = templar.template(trust_as_template("{{ jupyterhub_settings | to_python_literal }}"))
    assert "{{ mem_gb" not in literal
    assert "'4G'" in literal
    assert "'8G'" in literal


# --- through ansible-core for real ---------------------------------------------------------------


def _ansible_command(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def _run_ansible(tmp_path: Path, command: list[str]) -> tuple[int, dict[str, Any]]:
    config = tmp_path / "ansible.cfg"
    config.write_text("", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_FILTER_PLUGINS=str(PLUGIN_DIR),
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_HOME=str(tmp_path / "ansible_home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible_tmp"),
        ANSIBLE_NOCOLOR="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.stdout.lstrip().startswith("{"), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def _host_results(output: dict[str, Any]) -> list[dict[str, Any]]:
    return [task["hosts"]["localhost"] for play in output["plays"] for task in play["tasks"]]


def _adhoc_debug(tmp_path: Path, expression: str) -> tuple[int, dict[str, Any]]:
    command = [_ansible_command("ansible"), "localhost", "-i", "localhost,", "-c", "local"]
    command += ["-m", "ansible.builtin.debug", "-a", f"msg={{{{ {expression} }}}}"]
    returncode, output = _run_ansible(tmp_path, command)
    (result,) = _host_results(output)
    return returncode, result


def test_adhoc_ansible_renders_config_lines(tmp_path: Path) -> None:
    expression = "{'JupyterHub.port': 8000, 'Spawner.cmd': ['jupyterhub-singleuser']}"
    returncode, result = _adhoc_debug(tmp_path, f"{expression} | jupyterhub_config_lines")
    assert returncode == 0, result
    assert result["msg"] == (
        "c.JupyterHub.port = 8000\nc.Spawner.cmd = ['jupyterhub-singleuser']\n"
    )


def test_adhoc_ansible_renders_literal_without_templating_its_text(tmp_path: Path) -> None:
    expression = (
        "[1, 'a\\nb', none, 2.5, {'k': '{{ lookup(\"pipe\", \"id\") }}'}] | to_python_literal"
    )
    returncode, result = _adhoc_debug(tmp_path, expression)
    assert returncode == 0, result
    assert result["msg"] == "[1, 'a\\nb', None, 2.5, {'k': '{{ lookup(\"pipe\", \"id\") }}'}]"
    assert ast.literal_eval(result["msg"])[4] == {"k": '{{ lookup("pipe", "id") }}'}


@pytest.mark.parametrize(
    ("expression", "fragments"),
    [
        ("{'Jupyter Hub.port': 8000} | jupyterhub_config_lines", ["'Jupyter Hub.port'", KEY_HELP]),
        (  # the space in "} }" keeps Jinja from reading "}}" as the end of the expression
            "{'Spawner': {'cpu_limit': 'nan' | float} } | jupyterhub_config_lines",
            ["nan", "at Spawner.cpu_limit"],
        ),
        ("{'JupyterHub.port': 1} | jupyterhub_config_lines(prefix='import')", ["'import'"]),
    ],
    ids=["bad key", "nan value", "bad prefix"],
)
def test_adhoc_ansible_reports_errors(
    tmp_path: Path, expression: str, fragments: list[str]
) -> None:
    returncode, result = _adhoc_debug(tmp_path, expression)
    assert returncode != 0
    assert result.get("failed") is True
    for fragment in fragments:
        assert fragment in result["msg"]


PLAYBOOK = """\
- name: Render jupyterhub_config.py
  hosts: localhost
  gather_facts: false
  vars_files:
    - vars.yml
  tasks:
    - name: Write the config
      ansible.builtin.copy:
        dest: "{{ output_path }}"
        content: "{{ jupyterhub_settings | jupyterhub_config_lines }}"
        mode: "0600"
"""


def test_playbook_writes_a_config_that_sets_the_vars_file_values(tmp_path: Path) -> None:
    (tmp_path / "vars.yml").write_text(VARS_YAML, encoding="utf-8")
    (tmp_path / "playbook.yml").write_text(PLAYBOOK, encoding="utf-8")
    output_path = tmp_path / "jupyterhub_config.py"
    command = [_ansible_command("ansible-playbook"), "-i", "localhost,", "-c", "local"]
    command += [
        "-e",
        f"output_path={output_path}",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
    ]
    command += [str(tmp_path / "playbook.yml")]
    returncode, output = _run_ansible(tmp_path, command)
    assert returncode == 0, _host_results(output)
    text = output_path.read_text(encoding="utf-8")
    assert assignment_targets(text) == sorted(VARS_EXPECTED)
    assert strict_equal(run_config(text), VARS_EXPECTED)


# --- plugin metadata -----------------------------------------------------------------------------


def test_filter_module_exposes_both_filters() -> None:
    filters = plugin.FilterModule().filters()
    assert filters == {
        "to_python_literal": to_python_literal,
        "jupyterhub_config_lines": jupyterhub_config_lines,
    }


@pytest.mark.parametrize("name", ["DOCUMENTATION", "EXAMPLES", "RETURN"])
def test_documentation_is_valid_yaml(name: str) -> None:
    assert yaml.safe_load(getattr(plugin, name))
