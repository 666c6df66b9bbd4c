"""A small client that does what a user does with the hub through the front door.

Log in through the login form, start the server, run code in a kernel over the websocket,
stop the server. Used by the lab's verify step and by the benchmark scripts.
"""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
import websocket


class HubError(RuntimeError):
    """What the user would have seen go wrong."""


@dataclass
class HubUser:
    base_url: str
    name: str
    password: str
    ca_file: str | bool = True
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    @property
    def xsrf(self) -> str:
        return self.xsrf_for("/hub/")

    def xsrf_for(self, path: str) -> str:
        """The _xsrf cookie the hub (/hub/) or the user's server (/user/<name>/) set."""
        return next(
            (c.value for c in self.session.cookies if c.name == "_xsrf" and c.path == path), ""
        )

    def open_lab(self, attempts: int = 5) -> None:
        """Open JupyterLab as a browser does (the server's OAuth login with the hub). A
        server error right after a start is tried again, as a user reloads the page; the
        error names what the server said."""
        for attempt in range(attempts):
            reply = self.session.get(
                self.url(f"/user/{self.name}/lab"), verify=self.ca_file, timeout=60
            )
            if reply.status_code == 200:
                return
            if reply.status_code < 500 or attempt == attempts - 1:
                break
            time.sleep(2.0)
        text = " ".join(reply.text.split())[:300]
        raise HubError(
            f"opening JupyterLab of {self.name}: HTTP {reply.status_code} "
            f"({attempt + 1} tries; {reply.url}): {text}"
        )

    def request(self, method: str, path: str, **kwargs: object) -> requests.Response:
        scope = f"/user/{self.name}/" if path.startswith("/user/") else "/hub/"
        if scope != "/hub/" and not self.xsrf_for(scope):
            # Not yet logged in to this server (a new server after a restart): as a browser does.
            self.open_lab()
        headers = {"X-XSRFToken": self.xsrf_for(scope), "Accept": "application/json"}
        return self.session.request(
            method, self.url(path), headers=headers, verify=self.ca_file, timeout=30, **kwargs
        )

    def login(self) -> None:
        """Log in through the form; raises HubError when the hub refuses."""
        self.session.get(self.url("/hub/login"), verify=self.ca_file, timeout=30)
        reply = self.session.post(
            self.url("/hub/login"),
            data={"username": self.name, "password": self.password, "_xsrf": self.xsrf},
            verify=self.ca_file,
            timeout=30,
            allow_redirects=False,
        )
        if reply.status_code != 302 or "/hub/login" in reply.headers.get("Location", ""):
            raise HubError(f"login of {self.name} refused (HTTP {reply.status_code})")

    def served_by(self) -> str:
        """The instance that answers (a or b), from the page the hub renders."""
        reply = self.request("GET", "/hub/api/")
        return reply.headers.get("X-JupyterHub-Instance", "")

    def start_server(self, timeout: float = 120, options: dict | None = None) -> float:
        """Start the default server through the REST API and wait until it is ready; returns
        the seconds it took. options are the server's user_options (JSON body), e.g.
        {"backend": "slurm", "options": {...}}; None starts with the user's last choices."""
        started = time.monotonic()
        body = {} if options is None else {"json": options}
        reply = self.request("POST", f"/hub/api/users/{self.name}/server", **body)
        if reply.status_code not in (201, 202, 400):
            raise HubError(f"spawn of {self.name}: HTTP {reply.status_code} {reply.text[:200]}")
        return self.wait_ready(started, timeout)

    def spawn_form(self) -> str:
        """The spawn form the hub shows this user (HTML)."""
        reply = self.session.get(
            self.url(f"/hub/spawn/{self.name}"), verify=self.ca_file, timeout=60
        )
        if reply.status_code != 200:
            raise HubError(f"spawn form of {self.name}: HTTP {reply.status_code}")
        return reply.text

    def start_with_form(self, fields: dict[str, str | list[str]], timeout: float = 120) -> float:
        """Submit the spawn form as a browser does and wait until the server is ready; returns
        the seconds it took. A form the hub refuses raises HubError with the hub's message."""
        self.spawn_form()
        started = time.monotonic()
        reply = self.session.post(
            self.url(f"/hub/spawn/{self.name}"),
            data={**fields, "_xsrf": self.xsrf},
            verify=self.ca_file,
            timeout=60,
            allow_redirects=False,
        )
        if reply.status_code not in (302, 303):
            # The form comes back with the spawner's message (spawn-error-msg); the page
            # also holds the hidden template of an ajax error dialog, which is not it.
            message = re.search(
                r'<(p|div)[^>]*class="[^"]*spawn-error-msg[^"]*"[^>]*>(.*?)</\1>', reply.text, re.S
            )
            text = (
                html.unescape(re.sub(r"<[^>]+>|\s+", " ", message.group(2))).strip()
                if message
                else reply.text[:300]
            )
            raise HubError(f"spawn form of {self.name} refused (HTTP {reply.status_code}): {text}")
        return self.wait_ready(started, timeout)

    def wait_ready(self, started: float, timeout: float) -> float:
        """Wait until the default server is ready; raises HubError with the hub's last
        progress message when it stops or fails instead."""
        while time.monotonic() - started < timeout:
            model = self.request("GET", f"/hub/api/users/{self.name}").json()
            server = model.get("servers", {}).get("", {})
            if server.get("ready"):
                return time.monotonic() - started
            if not server and not model.get("pending"):
                raise HubError(
                    f"server of {self.name} stopped while starting: {self.last_progress()}"
                )
            time.sleep(0.2)
        raise HubError(f"server of {self.name} not ready after {timeout} s")

    def last_progress(self) -> str:
        """The last message of the hub's progress stream for the default server (what the
        spawn page shows, e.g. why a spawn failed)."""
        reply = self.session.get(
            self.url(f"/hub/api/users/{self.name}/server/progress"),
            headers={"Accept": "text/event-stream", "X-XSRFToken": self.xsrf},
            verify=self.ca_file,
            timeout=10,
        )
        messages = [
            json.loads(line[len("data:") :]).get("message", "")
            for line in reply.text.splitlines()
            if line.startswith("data:")
        ]
        return messages[-1] if messages else f"(no progress: HTTP {reply.status_code})"

    def stop_server(self, timeout: float = 60) -> None:
        self.request("DELETE", f"/hub/api/users/{self.name}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.request("GET", f"/hub/api/users/{self.name}").json()
            if not model.get("servers") and not model.get("pending"):
                return
            time.sleep(0.2)
        raise HubError(f"server of {self.name} did not stop within {timeout} s")

    def run_code(self, code: str, timeout: float = 60) -> str:
        """Run code in a new kernel over the websocket; returns the text of the result."""
        if not self.xsrf_for(f"/user/{self.name}/"):
            self.open_lab()
        reply = self.request("POST", f"/user/{self.name}/api/kernels", json={"name": "python3"})
        if reply.status_code != 201:
            raise HubError(f"kernel start: HTTP {reply.status_code} {reply.text[:200]}")
        kernel = reply.json()["id"]
        try:
            return self._execute(kernel, code, timeout)
        finally:
            self.request("DELETE", f"/user/{self.name}/api/kernels/{kernel}")

    def run_code_until_kernel_dies(self, code: str, timeout: float = 120) -> str:
        """Run code that should get its kernel killed (e.g. by a memory limit); returns the
        kernel state the server reports ("restarting", "dead") or "closed" when the server
        closes the websocket. Raises HubError when the code finishes instead."""
        if not self.xsrf_for(f"/user/{self.name}/"):
            self.open_lab()
        reply = self.request("POST", f"/user/{self.name}/api/kernels", json={"name": "python3"})
        if reply.status_code != 201:
            raise HubError(f"kernel start: HTTP {reply.status_code} {reply.text[:200]}")
        kernel = reply.json()["id"]
        conn = self._channels(kernel, timeout)
        try:
            msg_id = uuid.uuid4().hex
            conn.send(json.dumps(execute_request(msg_id, code)))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    message = json.loads(conn.recv())
                except websocket.WebSocketConnectionClosedException:
                    return "closed"
                kind, content = message.get("msg_type"), message.get("content", {})
                state = content.get("execution_state") if kind == "status" else None
                if state in ("restarting", "autorestarting", "dead"):
                    return state
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if kind in ("execute_result", "error"):
                    raise HubError(f"the code finished ({kind}) although its kernel should die")
            raise HubError(f"the kernel neither finished nor died within {timeout} s")
        finally:
            conn.close()
            self.request("DELETE", f"/user/{self.name}/api/kernels/{kernel}")

    def _channels(self, kernel: str, timeout: float) -> websocket.WebSocket:
        """The websocket of a kernel's channels, with the user's cookies."""
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        ws_url = f"{scheme}://{parts.netloc}/user/{self.name}/api/kernels/{kernel}/channels"
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        sslopt = {"ca_certs": self.ca_file} if isinstance(self.ca_file, str) else {}
        return websocket.create_connection(
            ws_url,
            cookie=cookies,
            header={"X-XSRFToken": self.xsrf},
            sslopt=sslopt,
            timeout=timeout,
        )

    def _execute(self, kernel: str, code: str, timeout: float) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        ws_url = f"{scheme}://{parts.netloc}/user/{self.name}/api/kernels/{kernel}/channels"
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        sslopt = {"ca_certs": self.ca_file} if isinstance(self.ca_file, str) else {}
        conn = websocket.create_connection(
            ws_url,
            cookie=cookies,
            header={"X-XSRFToken": self.xsrf},
            sslopt=sslopt,
            timeout=timeout,
        )
        try:
            msg_id = uuid.uuid4().hex
            conn.send(json.dumps(execute_request(msg_id, code)))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                message = json.loads(conn.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "execute_result":
                    return content["data"]["text/plain"]
                if kind == "error":
                    raise HubError(f"{content['ename']}: {content['evalue']}")
            raise HubError(f"no result within {timeout} s")
        finally:
            conn.close()


def execute_request(msg_id: str, code: str) -> dict:
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "",
            "session": uuid.uuid4().hex,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "buffers": [],
    }
