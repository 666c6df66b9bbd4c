#!/usr/bin/python3
"""Stand-in for one JupyterHub instance's configurable-http-proxy, for the nginx tests.

Answers every GET with JSON naming its instance and echoing the forwarded headers
(?delay=SECONDS makes it answer slowly, so a request can be in flight during a reload;
?status=CODE answers with that status, as a user's dead server behind the proxy does),
and accepts a websocket upgrade on any path, echoing text frames prefixed by the instance.
Standard library only: runs on Debian 12 and 13 as they are.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import struct
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
INSTANCE = "?"


def websocket_accept(key: str) -> str:
    """The Sec-WebSocket-Accept value of a Sec-WebSocket-Key (RFC 6455, 4.2.2)."""
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode(), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def read_frame(stream) -> tuple[int, bytes] | None:
    """(opcode, payload) of the next frame from a client, or None at the end."""
    head = stream.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", stream.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", stream.read(8))[0]
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(stream.read(length)))
    return opcode, payload


def frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final server frame."""
    if len(payload) < 126:
        header = struct.pack("!BB", 0x80 | opcode, len(payload))
    else:
        header = struct.pack("!BBH", 0x80 | opcode, 126, len(payload))
    return header + payload


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "standin-hub"

    def do_GET(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.websocket()
            return
        query = parse_qs(urlsplit(self.path).query)
        time.sleep(min(float(query.get("delay", ["0"])[0]), 10.0))
        status = int(query.get("status", ["200"])[0])
        body = json.dumps(
            {
                "instance": INSTANCE,
                "path": self.path,
                "front": self.headers.get("X-JupyterHub-Front"),
                "host": self.headers.get("Host"),
                "x_forwarded_proto": self.headers.get("X-Forwarded-Proto"),
                "x_forwarded_for": self.headers.get("X-Forwarded-For"),
                "x_real_ip": self.headers.get("X-Real-IP"),
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def websocket(self) -> None:
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header(
            "Sec-WebSocket-Accept", websocket_accept(self.headers["Sec-WebSocket-Key"])
        )
        self.end_headers()
        self.wfile.flush()
        while (received := read_frame(self.rfile)) is not None:
            opcode, payload = received
            if opcode == 0x8:  # close
                self.wfile.write(frame(0x8, payload[:2]))
                break
            if opcode == 0x9:  # ping
                self.wfile.write(frame(0xA, payload))
            elif opcode in (0x1, 0x2):
                self.wfile.write(frame(0x1, f"{INSTANCE}: ".encode() + payload))
            self.wfile.flush()
        self.close_connection = True


def main() -> None:
    global INSTANCE
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instance", required=True, help="name of the hub instance (a or b)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    INSTANCE = args.instance
    ThreadingHTTPServer(("", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
