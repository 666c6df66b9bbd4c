#!/usr/bin/python3
"""Opens a websocket through the front door like a browser's kernel connection does.

Prints JSON: the HTTP status of the upgrade, whether Sec-WebSocket-Accept was right and
the echo of one text frame. Exits 1 unless the upgrade (101) and the echo worked.
Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import sys

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--path", default="/user/alice/api/kernels/1/channels")
    parser.add_argument("--cacert", required=True)
    parser.add_argument("--message", default="ping")
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=args.cacert)
    key = base64.b64encode(os.urandom(16)).decode()
    host = args.host if args.port == 443 else f"{args.host}:{args.port}"
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: https://{host}\r\n\r\n"
    )
    with (
        socket.create_connection((args.host, args.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=args.host) as tls,
    ):
        tls.sendall(request.encode())
        stream = tls.makefile("rb")
        status_line = stream.readline().decode().strip()
        headers = {}
        while (line := stream.readline().decode().strip()) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        expected = base64.b64encode(
            hashlib.sha1((key + WEBSOCKET_GUID).encode(), usedforsecurity=False).digest()
        ).decode()
        result = {
            "status": status,
            "accept_ok": headers.get("sec-websocket-accept") == expected,
            "served_by": headers.get("x-served-by"),
        }
        if status == 101:
            payload = args.message.encode()
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            tls.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + masked)
            head = stream.read(2)
            result["echo"] = stream.read(head[1] & 0x7F).decode()
            tls.sendall(struct.pack("!BB", 0x88, 0x80) + os.urandom(4))
    print(json.dumps(result))
    return 0 if status == 101 and result["accept_ok"] and "echo" in result else 1


if __name__ == "__main__":
    sys.exit(main())
