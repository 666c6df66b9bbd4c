"""A real JupyterHub with the site's hub extensions: what a user can do through the route
where batch notebooks report their port (POST /hub/api/batchspawner), with her server's own
token, while her server starts.

The hub runs as a process on this machine (SQLite, no proxy process: an in-memory proxy
class). Its spawner keeps starting until a port is reported, like a batch job does; it
writes the token it was given, so the test holds exactly what a notebook holds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

HUB_FILES = REPO_ROOT / "roles/jupyterhub/files"
ADMIN_TOKEN = "drill-admin-token-0123456789abcdef"

SUPPORT = textwrap.dedent(
    '''
    import asyncio, json, pathlib
    from jupyterhub.proxy import Proxy
    from jupyterhub.spawner import Spawner
    from traitlets import Unicode

    class MemoryProxy(Proxy):
        """Routes in memory: no proxy process."""
        should_start = False
        routes = {}
        async def add_route(self, routespec, target, data):
            self.routes[routespec] = {"routespec": routespec, "target": target, "data": data}
        async def delete_route(self, routespec):
            self.routes.pop(routespec, None)
        async def get_all_routes(self):
            return dict(self.routes)

    class WaitForPortSpawner(Spawner):
        """Starts like a batch job: waits until the notebook reports its port."""
        drop = Unicode(config=True)
        # Settings a forged report would like to change.
        exclusive_servers = True
        maintenance_message = ""
        async def start(self):
            out = pathlib.Path(self.drop)
            out.joinpath("token").write_text(self.api_token)
            for _ in range(600):
                if self.port:
                    break
                await asyncio.sleep(0.1)
            out.joinpath("seen").write_text(json.dumps({
                "port": self.port, "cmd": self.cmd,
                "exclusive_servers": self.exclusive_servers,
                "maintenance_message": self.maintenance_message}))
            await asyncio.sleep(3600)  # the test stops it
        async def poll(self):
            return None
        async def stop(self, now=False):
            pass
    '''
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, token: str, method: str = "GET", body: object = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"token {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def _wait_for(path: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path.name} did not appear within {seconds} s")


@pytest.fixture
def hub(tmp_path: Path):
    port, hub_port = _free_port(), _free_port()
    drop = tmp_path / "drop"
    drop.mkdir()
    (tmp_path / "drill_support.py").write_text(SUPPORT)
    (tmp_path / "jupyterhub_config.py").write_text(
        textwrap.dedent(
            f"""
            import jhub_site.spawner  # installs the site's batchspawner route, as on a hub
            c = get_config()
            c.JupyterHub.bind_url = "http://127.0.0.1:{port}/"
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {hub_port}
            c.JupyterHub.db_url = "sqlite:///{tmp_path}/hub.sqlite"
            c.JupyterHub.cookie_secret_file = "{tmp_path}/cookie_secret"
            c.JupyterHub.proxy_class = "drill_support.MemoryProxy"
            c.JupyterHub.spawner_class = "drill_support.WaitForPortSpawner"
            c.WaitForPortSpawner.drop = "{drop}"
            c.Spawner.start_timeout = 120
            # The start request answers 202 at once instead of after 10 s of waiting.
            c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
            c.JupyterHub.authenticator_class = "dummy"
            c.JupyterHub.services = [{{"name": "drill", "api_token": "{ADMIN_TOKEN}"}}]
            c.JupyterHub.load_roles = [{{"name": "drill", "services": ["drill"],
                                         "scopes": ["admin:users", "admin:servers"]}}]
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HUB_FILES), str(tmp_path)]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(tmp_path / "jupyterhub_config.py")],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "hub.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    # No proxy process: the hub's own port serves its API, as notebooks reach it.
    api = f"http://127.0.0.1:{hub_port}/hub/api"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("the hub stopped:\n" + (tmp_path / "hub.log").read_text()[-3000:])
        try:
            if _request(api, ADMIN_TOKEN) == 200:
                break
        except OSError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError(
            "the hub did not answer:\n" + (tmp_path / "hub.log").read_text()[-3000:]
        )
    yield api, drop, tmp_path / "hub.log"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_a_users_server_token_reports_a_port_and_nothing_else(hub) -> None:
    api, drop, log = hub
    assert _request(f"{api}/users/alice", ADMIN_TOKEN, "POST", {}) == 201
    assert _request(f"{api}/users/alice/server", ADMIN_TOKEN, "POST", {}) == 202
    token = _wait_for(drop / "token", 60)

    forged = {
        "port": 1,
        "cmd": ["/bin/sh", "-c", "id > /tmp/pwned"],
        "exclusive_servers": False,
        "maintenance_message": "",
    }
    forged_status = _request(f"{api}/batchspawner", token, "POST", forged)
    reported_status = _request(f"{api}/batchspawner", token, "POST", {"port": 48123})
    seen = json.loads(_wait_for(drop / "seen", 30))

    assert forged_status == 400, log.read_text()[-2000:]
    assert reported_status == 201, log.read_text()[-2000:]
    assert seen == {
        "port": 48123,
        "cmd": ["jupyterhub-singleuser"],
        "exclusive_servers": True,
        "maintenance_message": "",
    }
    # A token that is no server's (here the admin service's) reports nothing.
    assert _request(f"{api}/batchspawner", ADMIN_TOKEN, "POST", {"port": 2}) == 403
