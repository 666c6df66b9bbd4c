"""The firewall role's nftables table, rendered as the role renders it.

The template is rendered with the role's defaults and vars (Ansible's templar, the same
filters), for a Swarm worker, a SLURM node and other settings; the text is checked rule by
rule, and with ``nft -c -f`` where nft runs here (it needs CAP_NET_ADMIN).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.ansible_vars import trusted
from tests.conftest import REPO_ROOT

ROLE = REPO_ROOT / "roles/firewall"
TEMPLATE = "etc/nftables.d/jhub-site.nft.j2"


HUBS = {
    "hub-a": {"jupyterhub_hub_connect_ip": "10.0.1.11", "jupyterhub_hub_port": 8081},
    # No connect IP: the hub's default IPv4 address from its facts.
    "hub-b": {"ansible_facts": {"default_ipv4": {"address": "10.0.1.12"}}},
}


def templar(**overrides: Any) -> Templar:
    variables: dict[str, Any] = {}
    for part in ("defaults/main.yml", "vars/main.yml"):
        variables |= trusted(yaml.safe_load((ROLE / part).read_text()))
    variables |= {
        "inventory_hostname": "node",
        "groups": {"jupyterhub": list(HUBS)},
        "hostvars": HUBS,
        "ansible_managed": "Ansible managed",
        "ansible_facts": {"dns": {"nameservers": ["10.0.0.53", "127.0.0.11", "2001:db8::53"]}},
        "site_cluster_networks": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
    }
    variables |= trusted(overrides)
    return Templar(loader=DataLoader(), variables=variables)


def var(name: str, **overrides: Any) -> Any:
    return templar(**overrides).template(trust_as_template("{{ " + name + " }}"))


def render(**overrides: Any) -> str:
    source = (ROLE / "templates" / TEMPLATE).read_text()
    return templar(**overrides).template(trust_as_template(source))


def chain(text: str, name: str) -> list[str]:
    """The rule lines of one chain, without comments and blank lines."""
    match = re.search(rf"^\tchain {name} {{\n(.*?)^\t}}", text, re.M | re.S)
    assert match, f"no chain {name} in:\n{text}"
    return [
        line.strip()
        for line in match.group(1).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def statements(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]


WORKER = {"firewall_notebook_containers": True}
NODE = {"firewall_notebook_jobs": True}
MIRROR = {"name": "package mirror", "address": "10.0.5.20", "ports": [80, 443]}


def test_the_file_replaces_only_its_own_table() -> None:
    for settings in (WORKER, NODE, {**WORKER, **NODE}):
        text = render(**settings)
        assert "flush ruleset" not in text
        assert not [line for line in statements(text) if "flush" in line]
        lines = [line for line in statements(text) if line]
        assert lines[:3] == [
            "table inet jhub_site",
            "delete table inet jhub_site",
            "table inet jhub_site {",
        ]
        assert re.findall(r"^(?:delete )?table (\S+ \S+)", text, re.M) == ["inet jhub_site"] * 3


def test_a_swarm_worker_filters_what_its_containers_send() -> None:
    text = render(**WORKER, firewall_notebook_allowed=[MIRROR])
    assert chain(text, "forward") == [
        "type filter hook forward priority -1; policy accept;",
        'iifname "docker0" jump from_containers',
        'iifname "docker_gwbridge" jump from_containers',
    ]
    assert chain(text, "from_containers") == [
        "ct state established,related accept",
        "jump allowed",
        "ip daddr @protected jump refuse",
    ]
    assert chain(text, "input")[0] == "type filter hook input priority -1; policy accept;"
    assert chain(text, "containers_to_host")[0] == "ct state established,related accept"
    assert chain(text, "containers_to_host")[-1] == "jump refuse"
    assert "meta skuid" not in text
    assert "hook output" not in text


def test_a_slurm_node_filters_what_users_processes_send() -> None:
    text = render(**NODE)
    assert chain(text, "output") == [
        "type filter hook output priority 0; policy accept;",
        "meta skuid >= 1000 jump from_users",
    ]
    assert chain(text, "from_users") == [
        "ct state established,related accept",
        'oifname "lo" accept',
        "jump allowed",
        "ip daddr @protected jump refuse",
    ]
    assert "hook forward" not in text
    assert "hook input" not in text


def test_the_uid_threshold_follows_the_directory() -> None:
    assert "meta skuid >= 2000 jump" in render(**NODE, ldap_client_min_uid=2000)
    assert "meta skuid >= 5000 jump" in render(**NODE, firewall_user_min_uid=5000)


def test_allowed_destinations_come_before_the_refusal() -> None:
    extra = [
        MIRROR,
        {"name": "compute nodes", "address": "10.0.2.0/24"},
        {"name": "syslog", "address": "10.0.5.40", "ports": [514], "protocol": "udp"},
    ]
    text = render(**WORKER, **NODE, firewall_notebook_allowed=extra)
    assert chain(text, "allowed") == [
        'ip daddr 10.0.1.11 tcp dport { 8081 } accept comment "hub API of hub-a"',
        'ip daddr 10.0.1.12 tcp dport { 8081 } accept comment "hub API of hub-b"',
        'ip daddr 10.0.0.53 udp dport { 53 } accept comment "DNS resolver 10.0.0.53"',
        'ip daddr 10.0.0.53 tcp dport { 53 } accept comment "DNS resolver 10.0.0.53"',
        'ip daddr 10.0.5.20 tcp dport { 80, 443 } accept comment "package mirror"',
        'ip daddr 10.0.2.0/24 meta l4proto tcp accept comment "compute nodes"',
        'ip daddr 10.0.5.40 udp dport { 514 } accept comment "syslog"',
    ]
    for name in ("from_containers", "from_users"):
        rules = chain(text, name)
        assert rules.index("jump allowed") < rules.index("ip daddr @protected jump refuse")
    assert chain(text, "refuse") == [
        "meta l4proto tcp reject with tcp reset",
        "reject with icmpx type admin-prohibited",
    ]
    assert "elements = { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 }" in text


def test_the_hub_api_and_dns_can_be_left_to_the_inventory() -> None:
    text = render(**NODE, firewall_allow_hub_api=False, firewall_allow_dns=False)
    assert chain(text, "allowed") == []


def test_without_internet_everything_not_allowed_is_refused() -> None:
    text = render(**WORKER, **NODE, firewall_notebook_internet=False)
    assert chain(text, "from_containers")[-1] == "jump refuse"
    assert chain(text, "from_users")[-1] == "jump refuse"
    assert "@protected" not in text.split("chain allowed")[1]


def test_containers_may_reach_the_listed_host_ports_only() -> None:
    text = render(**WORKER, firewall_container_host_ports=[8080, 9100])
    assert "meta l4proto { tcp, udp } th dport { 8080, 9100 } accept" in chain(
        text, "containers_to_host"
    )
    text = render(**WORKER, firewall_container_interfaces=["docker0", "br-*"])
    assert 'iifname "br-*" jump containers_to_host' in chain(text, "input")


def test_rejects_are_logged_before_they_happen_when_asked() -> None:
    assert "log " not in render(**NODE)
    rules = chain(render(**NODE, firewall_log_rejects=True), "refuse")
    assert rules[0].startswith("limit rate 10/minute burst 5 packets log prefix ")
    assert '"jhub-site reject: "' in rules[0]
    assert rules[1:] == [
        "meta l4proto tcp reject with tcp reset",
        "reject with icmpx type admin-prohibited",
    ]


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        ([{"name": "x", "address": "10.0.0.300"}], 'address "10.0.0.300" is not an IPv4'),
        ([{"name": "x", "address": "mirror.example.org"}], "is not an IPv4 address or CIDR"),
        ([{"name": "x", "address": "10.0.0.0/33"}], "is not an IPv4 address or CIDR"),
        ([{"name": "x", "address": "10.0.0.1", "ports": [0]}], "port 0 is not a port"),
        ([{"name": "x", "address": "10.0.0.1", "ports": [70000]}], "port 70000 is not"),
        ([{"name": "x", "address": "10.0.0.1", "ports": 80}], "ports must be a list"),
        ([{"name": "x", "address": "10.0.0.1", "protocol": "icmp"}], "must be tcp or udp"),
        ([{"name": 'a "quote"', "address": "10.0.0.1"}], "without double quotes"),
        ([{"address": "10.0.0.1"}], "(no name): name must be"),
        (["10.0.0.1"], "firewall_notebook_allowed[0] is"),
    ],
)
def test_bad_allowed_entries_are_named(allowed: list, message: str) -> None:
    errors = var("__firewall_allowed_errors", firewall_notebook_allowed=allowed)
    assert any(message in error for error in errors), errors


def test_good_settings_have_no_errors() -> None:
    settings = {
        **WORKER,
        **NODE,
        "firewall_notebook_allowed": [
            MIRROR,
            {"name": "nodes", "address": "10.0.2.0/24", "ports": [], "protocol": "udp"},
        ],
        "firewall_container_interfaces": ["docker0", "br-*"],
        "firewall_container_host_ports": [8080],
    }
    for name in ("allowed", "network", "container"):
        assert var(f"__firewall_{name}_errors", **settings) == []


def test_bad_networks_interfaces_and_ports_are_named() -> None:
    errors = var(
        "__firewall_network_errors", firewall_protected_networks=["10.0.0.0/8", "fd00::/8"]
    )
    assert errors == [
        'firewall_protected_networks[1] is "fd00::/8", not an IPv4 CIDR such as 10.0.0.0/8'
    ]
    errors = var(
        "__firewall_container_errors",
        firewall_container_interfaces=["docker0", "a-much-too-long-name"],
        firewall_container_host_ports=[22, 99999],
    )
    assert len(errors) == 2
    assert "firewall_container_interfaces[1]" in errors[0]
    assert "firewall_container_host_ports[1] is 99999" in errors[1]


NFT = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")


@pytest.mark.skipif(NFT is None, reason="nft is not installed here")
@pytest.mark.parametrize(
    "settings",
    [
        WORKER,
        NODE,
        {**WORKER, **NODE, "firewall_notebook_internet": False, "firewall_log_rejects": True},
        {
            **WORKER,
            "firewall_notebook_allowed": [MIRROR, {"name": "nodes", "address": "10.0.2.0/24"}],
            "firewall_container_interfaces": ["docker0", "br-*"],
            "firewall_container_host_ports": [8080],
            "firewall_protected_networks": ["10.0.0.0/8", "10.1.0.0/16"],
        },
    ],
)
def test_nft_accepts_the_table(settings: dict, tmp_path: Path) -> None:
    ruleset = tmp_path / "jhub-site.nft"
    ruleset.write_text(render(**settings))
    result = subprocess.run(
        [str(NFT), "-c", "-f", str(ruleset)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        pytest.skip("nft may not talk to the kernel here (needs CAP_NET_ADMIN)")
    assert result.returncode == 0, result.stderr
