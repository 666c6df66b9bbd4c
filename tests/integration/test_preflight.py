"""The preflight play: bad input stops the run on the controller, before any host changes.

These runs target the real inventories. The lab containers need not exist: a run that got
past preflight would try to reach them, and the recap would show it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, run, tail

INVENTORIES = ["inventories/lab", "inventories/production.example"]


def each_on_one_inventory(cases: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Cases of one check, spread over the inventories in turn (the inventory last).

    A check is the same code on every inventory; each preflight run costs a playbook run
    (about 20 s of a core), so a check's cases are not all repeated on every inventory.
    What differs between the inventories (their group_vars) is run on each of them in
    test_group_vars_reach_every_inventory.
    """
    return [(*case, INVENTORIES[i % len(INVENTORIES)]) for i, case in enumerate(cases)]


ENTRY_PLAYBOOKS = sorted(
    p.name for p in (REPO_ROOT / "playbooks").glob("*.yml") if p.name != "preflight.yml"
)


def recap_hosts(output: str) -> dict[str, str]:
    """Host name -> its PLAY RECAP line."""
    recap = output.split("PLAY RECAP", 1)[-1]
    return {m.group(1): m.group(0) for m in re.finditer(r"^(\S+)\s+: ok=.*$", recap, re.M)}


def assert_no_host_touched(output: str) -> None:
    """No host was changed or even contacted: the production example's hosts do not exist,
    so a connection attempt would show as unreachable. (The controller itself may have
    created its directory of generated secrets.)"""
    hosts = recap_hosts(output)
    assert "localhost" in hosts
    for host, line in hosts.items():
        assert host == "localhost" or "changed=0" in line, f"{host} was changed: {line}"
        assert "unreachable=0" in line, f"{host} was contacted: {line}"
    assert "Gathering Facts" not in output


# Lab containers by this prefix never exist: a run that got past preflight gathers facts
# from no host and fails (assert_no_host_touched sees it) instead of deploying to a lab
# that is up.
NO_LAB = {"JHUB_LAB_PREFIX": "preflight-test-no-such-container-"}


def run_site(inventory: str, *extra: str) -> tuple[int, str]:
    result = run(
        ["ansible-playbook", "-i", inventory, "playbooks/site.yml", *extra],
        env=NO_LAB,
        log_name="preflight-" + Path(inventory).name,
    )
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("extra_vars", "named", "inventory"),
    each_on_one_inventory(
        [
            ("jupyterhub_active_instance=c", "jupyterhub_active_instance"),
            ("common_apt_cache_valid_time=soon", "common_apt_cache_valid_time"),
            ('{"common_service_accounts": [{"name": "slurm"}]}', "uid"),
            ('{"site_required_groups": ["proxy", "gpu_nodes"]}', "gpu_nodes"),
            ("jupyterhub_authenticator=kerberos", "jupyterhub_authenticator"),
            ("nginx_tls_cert_file=/nonexistent/cert.pem", "nginx_tls_cert_file"),
            # (the local spawner has tests of its own below)
        ]
    ),
)
def test_bad_value_stops_in_preflight_before_any_host(
    extra_vars: str, named: str, inventory: str
) -> None:
    rc, output = run_site(inventory, "-e", extra_vars)
    assert rc != 0, "the run should have failed"
    assert named in output, f"the failure does not name {named}:\n{output[-3000:]}"
    assert_no_host_touched(output)


@pytest.mark.parametrize(
    ("extra_vars", "named"),
    [
        (
            '{"jupyterhub_spawners": ["swarm"], "jupyterhub_swarm_mem_limit": "4 Gigs"}',
            "jupyterhub_swarm_mem_limit",
        ),
        (
            '{"jupyterhub_spawners": ["swarm"], "jupyterhub_swarm_default_image": "tensorflow"}',
            "jupyterhub_swarm_default_image",
        ),
        (
            '{"jupyterhub_spawners": ["swarm"],'
            ' "jupyterhub_swarm_constraints": ["node.labels.gpuu == true"]}',
            "node.labels.gpuu",
        ),
        ("nfs_server_implementation=nfsd", "nfs_server_implementation"),
        ("publishing_interval_seconds=0", "publishing_interval_seconds"),
        ("htcondor_jupyter_max_jobs_per_user=0", "htcondor_jupyter_max_jobs_per_user"),
        ('{"slurm_jhub_oversubscribe": 0}', "slurm_jhub_oversubscribe"),
        ('{"slurm_jhub_max_time": "-1"}', "slurm_jhub_max_time"),
        ('{"jupyterhub_slurm_partitions": ["nosuch"]}', "jupyterhub_slurm_partitions"),
        ("monitoring_probe_interval=0", "monitoring_probe_interval"),
        (
            '{"monitoring_alertmanager_default_receiver": "pager"}',
            "monitoring_alertmanager_default_receiver",
        ),
    ],
)
def test_bad_value_of_a_lab_tier_stops_in_preflight(extra_vars: str, named: str) -> None:
    """Settings of the compute and storage tiers, on the lab inventory."""
    rc, output = run_site("inventories/lab", "-e", extra_vars)
    assert rc != 0, "the run should have failed"
    assert named in output, f"the failure does not name {named}:\n{output[-3000:]}"
    assert_no_host_touched(output)


# The host each inventory backs up its NFS areas from (the group backup).
BACKED_UP_HOST = {
    "inventories/lab": "nfs",
    "inventories/production.example": "nfs-jupyter.example.org",
}


@pytest.mark.parametrize(
    ("repository", "inventory"),
    each_on_one_inventory(
        [
            ("/var/backups/restic",),
            ("local:/srv/restic",),
            ("sftp:backup@{host}:/srv/restic",),
            ("rest:https://{host}:8000/x/",),
        ]
    ),
)
def test_backup_repository_on_the_host_it_backs_up_is_refused(
    repository: str, inventory: str
) -> None:
    """A backup on the disks it protects is lost with them: preflight names the variable."""
    host = BACKED_UP_HOST[inventory]
    rc, output = run_site(
        inventory, "-e", f"backup_restic_repository={repository.format(host=host)}"
    )
    assert rc != 0, "the run should have failed"
    assert "backup_restic_repository" in output, output[-3000:]
    assert "the host it backs up" in output, output[-3000:]
    assert_no_host_touched(output)


def test_backup_repository_on_the_host_passes_when_allowed() -> None:
    """backup_allow_local_repository: a disk that is taken off-site, or a test setup."""
    extra = {
        "backup_restic_repository": "/var/backups/restic",
        "backup_allow_local_repository": True,
    }
    result = run(
        ["ansible-playbook", "playbooks/show-config.yml", "-e", json.dumps(extra)], env=NO_LAB
    )
    assert result.returncode == 0, tail(result)


def test_backup_server_that_backs_up_itself_is_refused() -> None:
    rc, output = run_site("inventories/lab", "-e", '{"backup_server_clients": ["nfs", "monitor"]}')
    assert rc != 0, "the run should have failed"
    assert "backup_server_clients" in output, output[-3000:]
    assert_no_host_touched(output)


# The host name of each inventory's hubs (site_public_url) and a name of its own for a service.
HUB_NAME = {
    "inventories/lab": "localhost",
    "inventories/production.example": "jupyter.example.org",
}


@pytest.mark.parametrize(("port", "inventory"), each_on_one_inventory([("",), (":4443",)]))
def test_owncloud_on_the_hubs_host_name_is_refused(port: str, inventory: str) -> None:
    """ownCloud's pages on the hubs' host name (any port: cookies ignore ports) would share
    the hubs' cookies; preflight names the variable and the way out."""
    url = f"https://{HUB_NAME[inventory].upper()}{port}/"
    rc, output = run_site(inventory, "-e", f"owncloud_public_url={url}")
    assert rc != 0, "the run should have failed"
    assert "owncloud_public_url" in output, output[-3000:]
    assert "nginx_service_hosts" in output, output[-3000:]
    assert_no_host_touched(output)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_service_host_on_a_hub_name_is_refused(inventory: str) -> None:
    """A service host may not take the production name: it would hide the hubs."""
    extra = {
        "nginx_service_hosts": [{"server_name": HUB_NAME[inventory], "upstream": "http://x:80"}]
    }
    rc, output = run_site(inventory, "-e", json.dumps(extra))
    assert rc != 0, "the run should have failed"
    assert "nginx_service_hosts" in output, output[-3000:]
    assert_no_host_touched(output)


@pytest.mark.parametrize(
    ("extra_vars", "named", "shown"),
    [
        ("nginx_https_port=70000", "nginx_https_port", "70000"),
        ("nginx_test_https_port=65536", "nginx_test_https_port", "65536"),
        ("nginx_hub_port=0", "nginx_hub_port", "0"),
        ("nginx_hsts_max_age=-1", "nginx_hsts_max_age", "-1"),
        ('{"nginx_proxy_connect_timeout": "2 s"}', "nginx_proxy_connect_timeout", "2 s"),
        ('{"nginx_fail_timeout": "0s"}', "nginx_fail_timeout", "0s"),
        ('{"nginx_websocket_timeout": "1 hour"}', "nginx_websocket_timeout", "1 hour"),
        (
            '{"nginx_server_names": ["jupyter example.org"]}',
            "nginx_server_names",
            "jupyter example.org",
        ),
        ('{"nginx_hub_address": "hub a"}', "nginx_hub_address", "hub a"),
        (
            '{"nginx_proxy_next_upstream": ["error", "timeout", "http_503"]}',
            "nginx_proxy_next_upstream",
            "http_503",
        ),
        (
            '{"nginx_test_allowed_networks": ["staff vpn"]}',
            "nginx_test_allowed_networks",
            "staff vpn",
        ),
        ("jupyterhub_idle_timeout=-1", "jupyterhub_idle_timeout", "-1"),
        ("jupyterhub_spawn_timeout=0", "jupyterhub_spawn_timeout", "0"),
        ("jupyterhub_slurm_pending_timeout=-1", "jupyterhub_slurm_pending_timeout", "-1"),
        ("jupyterhub_slurm_pending_timeout=0", "jupyterhub_slurm_pending_timeout", "'0'"),
        ("jupyterhub_slurm_pending_timeout=600", "jupyterhub_slurm_pending_timeout", "600"),
        ("jupyterhub_proxy_route_check_interval=-2", "jupyterhub_proxy_route_check_interval", "-2"),
        ("jupyterhub_hub_port=70000", "jupyterhub_hub_port", "70000"),
        ("jupyterhub_ldap_server_port=0", "jupyterhub_ldap_server_port", "0"),
        (
            '{"jupyterhub_ldap_server_address": "ldap host"}',
            "jupyterhub_ldap_server_address",
            "ldap host",
        ),
    ],
)
def test_nonsense_port_timeout_or_address_stops_in_preflight(
    extra_vars: str, named: str, shown: str
) -> None:
    """Ports, timeouts, durations and addresses of the front door and the hubs: the
    failure names the variable and its bad value."""
    rc, output = run_site("inventories/lab", "-e", extra_vars)
    assert rc != 0, "the run should have failed"
    assert named in output, f"the failure does not name {named}:\n{output[-3000:]}"
    assert shown in output, f"the failure does not show the value {shown}:\n{output[-3000:]}"
    assert_no_host_touched(output)


def test_sensible_edge_values_pass_preflight() -> None:
    """Zero where it means something (HSTS off, no route check, no status port), a pending
    limit under a second, short nginx times, and IP literals as addresses are accepted."""
    extra = {
        "nginx_hsts_max_age": 0,
        "nginx_status_port": 0,
        "nginx_proxy_connect_timeout": "500ms",
        "nginx_fail_timeout": 30,
        "nginx_server_names": ["jupyter.example.org", "*.example.org", "192.0.2.7"],
        "nginx_hub_address": "2001:db8::11",
        "nginx_test_allowed_networks": ["198.51.100.0/24", "2001:db8::/32"],
        "jupyterhub_proxy_route_check_interval": 0,
        "jupyterhub_slurm_pending_timeout": 0.5,
        "jupyterhub_ldap_server_address": "192.0.2.5",
    }
    result = run(
        ["ansible-playbook", "playbooks/show-config.yml", "-e", json.dumps(extra)], env=NO_LAB
    )
    assert result.returncode == 0, tail(result)


LOCAL_CHECK = "Check that notebooks run as the hub's account only where that is allowed"


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_local_spawner_is_refused_for_what_it_exposes(inventory: str) -> None:
    """Without jupyterhub_allow_local_spawner, the local spawner stops the run before any
    host: the message names both variables, the danger and the backends to use instead."""
    rc, output = run_site(inventory, "-e", '{"jupyterhub_spawners": ["local"]}')
    assert rc != 0, "the run should have failed"
    for fragment in (
        "jupyterhub_spawners is ['local']",
        "jupyterhub_allow_local_spawner is false",
        "reads the cookie secret",
        "swarm, slurm or condor",
    ):
        assert fragment in output, f"the failure does not say {fragment!r}:\n{output[-3000:]}"
    assert_no_host_touched(output)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_local_spawner_passes_preflight_when_allowed(inventory: str) -> None:
    """A single-user test box may set jupyterhub_allow_local_spawner: the check runs and passes."""
    extra = {"jupyterhub_spawners": ["local"], "jupyterhub_allow_local_spawner": True}
    result = run(
        ["ansible-playbook", "-i", inventory, "playbooks/show-config.yml", "-e", json.dumps(extra)],
        env=NO_LAB,
    )
    assert result.returncode == 0, tail(result)
    assert LOCAL_CHECK in result.stdout


def test_production_example_spawns_on_the_swarm_and_slurm() -> None:
    """The production example names real backends (never local, never allowed), and its
    settings pass every check of preflight as they are."""
    hub_vars = yaml.safe_load(
        (REPO_ROOT / "inventories/production.example/group_vars/jupyterhub/hub.yml").read_text()
    )
    assert hub_vars["jupyterhub_spawners"] == ["swarm", "slurm"]
    assert "jupyterhub_allow_local_spawner" not in hub_vars
    result = run(
        ["ansible-playbook", "-i", "inventories/production.example", "playbooks/show-config.yml"],
        env=NO_LAB,
    )
    assert result.returncode == 0, tail(result)
    assert LOCAL_CHECK in result.stdout


def test_role_default_spawner_passes_preflight(tmp_path: Path) -> None:
    """An inventory that names no backend gets the role's default, which is not refused (so
    not local): here the lab without its jupyterhub_spawners line."""
    inventory = tmp_path / "inventory"
    shutil.copytree(
        REPO_ROOT / "inventories/lab", inventory, ignore=shutil.ignore_patterns(".secrets")
    )
    hub_file = inventory / "group_vars/jupyterhub/hub.yml"
    text = hub_file.read_text()
    assert "jupyterhub_spawners: [swarm, slurm]\n" in text
    hub_file.write_text(text.replace("jupyterhub_spawners: [swarm, slurm]\n", ""))
    result = run(
        ["ansible-playbook", "-i", str(inventory), "playbooks/show-config.yml"], env=NO_LAB
    )
    assert result.returncode == 0, tail(result)
    assert LOCAL_CHECK in result.stdout


def test_hub_hosts_must_be_one_per_instance(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory"
    shutil.copytree(
        REPO_ROOT / "inventories/lab", inventory, ignore=shutil.ignore_patterns(".secrets")
    )
    hosts_file = inventory / "hosts.yml"
    hosts = yaml.safe_load(hosts_file.read_text())
    hosts["all"]["children"]["jupyterhub"]["hosts"]["hub-b"]["jupyterhub_instance"] = "a"
    hosts_file.write_text(yaml.safe_dump(hosts))
    rc, output = run_site(str(inventory))
    assert rc != 0
    assert "jupyterhub_instance" in output
    assert "'hub-a': 'a', 'hub-b': 'a'" in output
    assert_no_host_touched(output)


def test_server_name_prefixes_must_not_overlap(tmp_path: Path) -> None:
    """With prefixes jupyter- (b) and jupyter-a- (a), b's server of user "a-bob" and a's
    server of "bob" would both be jupyter-a-bob: the one-server check would stop the wrong
    one. Refused, naming the variable and the other host."""
    inventory = tmp_path / "inventory"
    shutil.copytree(
        REPO_ROOT / "inventories/lab", inventory, ignore=shutil.ignore_patterns(".secrets")
    )
    hosts_file = inventory / "hosts.yml"
    hosts = yaml.safe_load(hosts_file.read_text())
    hosts["all"]["children"]["jupyterhub"]["hosts"]["hub-b"]["jupyterhub_server_name_prefix"] = (
        "jupyter-"
    )
    hosts_file.write_text(yaml.safe_dump(hosts))
    rc, output = run_site(str(inventory))
    assert rc != 0
    assert "jupyterhub_server_name_prefix is 'jupyter-' on hub-b" in output
    assert "overlaps the prefix of hub-a" in output
    assert_no_host_touched(output)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_group_vars_reach_every_inventory(inventory: str) -> None:
    """The A/B switch lives only in the top-level group_vars/: preflight reports it."""
    result = run(["ansible-playbook", "-i", inventory, "playbooks/show-config.yml"])
    assert result.returncode == 0, tail(result)
    assert "production instance: a," in result.stdout


def test_flipping_group_vars_changes_what_runs(tmp_path: Path) -> None:
    """Flip the switch in a copy of the repository's group_vars: the run sees the new value."""
    work = tmp_path / "site"
    parts = ("playbooks", "roles", "inventories", "group_vars", "files", "filter_plugins")
    for part in (*parts, "ansible.cfg"):
        src = REPO_ROOT / part
        if src.is_dir():
            shutil.copytree(
                src, work / part, symlinks=True, ignore=shutil.ignore_patterns(".secrets")
            )
        else:
            shutil.copy(src, work / part)
    switch = work / "group_vars/all/jupyterhub.yml"
    switch.write_text(
        switch.read_text().replace("jupyterhub_active_instance: a", "jupyterhub_active_instance: b")
    )
    result = run(
        ["ansible-playbook", "-i", "inventories/lab", "playbooks/show-config.yml"],
        cwd=work,
        env={"ANSIBLE_CONFIG": str(work / "ansible.cfg")},
    )
    assert result.returncode == 0, tail(result)
    assert "production instance: b," in result.stdout


@pytest.mark.parametrize("playbook", ENTRY_PLAYBOOKS)
def test_every_entry_playbook_starts_with_preflight(playbook: str) -> None:
    """Entry playbooks sit in playbooks/ (where group_vars/ is linked) and validate first,
    themselves or through the entry playbook they import first (site.yml, announce.yml)."""
    first, seen = playbook, []
    while first and first != "preflight.yml" and first not in seen:
        seen.append(first)
        plays = yaml.safe_load((REPO_ROOT / "playbooks" / first).read_text())
        first = plays[0].get("ansible.builtin.import_playbook", "")
    assert first == "preflight.yml", f"{playbook} does not import preflight.yml first ({seen})"
    assert (REPO_ROOT / "playbooks/group_vars").resolve() == REPO_ROOT / "group_vars"
