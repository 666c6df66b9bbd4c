"""Tests for filter_plugins/htcondor_config.py (htcondor_config, htcondor_classad_string),
including a round trip through HTCondor's own configuration reader and ClassAd parser."""

from __future__ import annotations

import os
from pathlib import Path

import classad2
import htcondor2
import pytest
from ansible.errors import AnsibleFilterError

from tests.conftest import REPO_ROOT, load_module

PLUGIN_PATH = REPO_ROOT / "filter_plugins/htcondor_config.py"


plugin = load_module("htcondor_config_filter", PLUGIN_PATH)
htcondor_config = plugin.htcondor_config
htcondor_classad_string = plugin.htcondor_classad_string


def read_back(tmp_path: Path, text: str, subsystem: str = "TOOL") -> object:
    root = tmp_path / "condor_config"
    root.write_text(text)
    os.environ["CONDOR_CONFIG"] = str(root)
    htcondor2.set_subsystem(subsystem)
    htcondor2.reload_config()
    return htcondor2.param


def test_lines_are_sorted_and_typed() -> None:
    text = htcondor_config(
        {"b_knob": "x", "A_KNOB": 3, "C": True, "D": False, "E": 0.5, "F": ["MASTER", "STARTD"]}
    )
    assert text == ("A_KNOB = 3\nb_knob = x\nC = True\nD = False\nE = 0.5\nF = MASTER, STARTD\n")


def test_empty_mapping_gives_empty_text() -> None:
    assert htcondor_config({}) == ""


def test_empty_value_is_kept() -> None:
    assert htcondor_config({"LOCAL_CONFIG_FILE": ""}) == "LOCAL_CONFIG_FILE =\n"


def test_order_does_not_depend_on_the_input() -> None:
    knobs = {f"K{i}": i for i in range(20)}
    assert htcondor_config(knobs) == htcondor_config(dict(reversed(list(knobs.items()))))


def test_htcondor_reads_back_what_was_written(tmp_path: Path) -> None:
    knobs = {
        "NEGOTIATOR_JOB_CONSTRAINT": "(IsJupyterJob =?= True)",
        "NEGOTIATOR.SPECIAL": 7,
        "SPECIAL": 1,
        "GROUP_ACCEPT_SURPLUS_group_jupyter": True,
        "GROUP_QUOTA_DYNAMIC_group_jupyter": 1.0,
        "DAEMON_LIST": ["MASTER", "SCHEDD"],
        "REASON": htcondor_classad_string('say "hi" \\ bye'),
        "EXPANDED": "$(DAEMON_LIST) COLLECTOR",
    }
    params = read_back(tmp_path, htcondor_config(knobs), "NEGOTIATOR")
    assert params["NEGOTIATOR_JOB_CONSTRAINT"] == "(IsJupyterJob =?= True)"
    assert int(params["SPECIAL"]) == 7
    assert classad2.ExprTree(params["GROUP_ACCEPT_SURPLUS_group_jupyter"]).eval() is True
    assert float(params["GROUP_QUOTA_DYNAMIC_group_jupyter"]) == 1.0
    assert params["EXPANDED"] == "MASTER, SCHEDD COLLECTOR"
    assert classad2.ExprTree(params["REASON"]).eval() == 'say "hi" \\ bye'


@pytest.mark.parametrize(
    "value",
    ["a\nB = evil", "a\rB = evil", "a\x00", "continued \\", "trailing\\  "],
    ids=["newline", "carriage-return", "nul", "backslash", "backslash-space"],
)
def test_values_cannot_inject_lines(value: str) -> None:
    with pytest.raises(AnsibleFilterError, match="X"):
        htcondor_config({"X": value})


def test_list_items_are_checked_too() -> None:
    with pytest.raises(AnsibleFilterError, match=r"X\[1\]"):
        htcondor_config({"X": ["ok", "bad\nY = 1"]})


@pytest.mark.parametrize(
    "name",
    ["", "1ABC", "A B", "A=B", "A.B.C.D", "A-B", "$(A)", ".A", 3],
)
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(AnsibleFilterError, match="not an HTCondor macro name"):
        htcondor_config({name: "x"})


def test_names_differing_only_in_case_are_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="case-insensitive"):
        htcondor_config({"Start": "True", "START": "False"})


@pytest.mark.parametrize("value", [None, {"a": 1}, float("nan"), float("inf"), b"x"])
def test_unsupported_values_are_refused(value: object) -> None:
    with pytest.raises(AnsibleFilterError, match="X"):
        htcondor_config({"X": value})


def test_input_must_be_a_mapping() -> None:
    with pytest.raises(AnsibleFilterError, match="mapping"):
        htcondor_config(["A = 1"])


@pytest.mark.parametrize("text", ["plain", 'with "quotes"', "back\\slash", "", "ünïcode"])
def test_classad_strings_parse_back(text: str) -> None:
    literal = htcondor_classad_string(text)
    assert classad2.ExprTree(literal).eval() == text


@pytest.mark.parametrize("value", [3, None, "line\nbreak", "nul\x00"])
def test_classad_string_refuses_bad_input(value: object) -> None:
    with pytest.raises(AnsibleFilterError, match="htcondor_classad_string"):
        htcondor_classad_string(value)


def test_filters_are_registered() -> None:
    filters = plugin.FilterModule().filters()
    assert filters["htcondor_config"] is htcondor_config
    assert filters["htcondor_classad_string"] is htcondor_classad_string
