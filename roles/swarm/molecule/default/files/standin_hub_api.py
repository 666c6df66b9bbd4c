#!/usr/bin/env python3
"""A stand-in for the hub's API where a notebook server checks in at start (GET /hub/api/):
answers with the hub's version and logs who asked, so the test sees that a notebook
container on a worker reached the hub at an IP address.

  standin_hub_api.py PORT VERSION
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"version": sys.argv[2]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", sys.argv[2])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print(f"hub-api-request from={self.client_address[0]} path={self.path}", flush=True)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
