"""Fetch URLs and print, as JSON, each one's status, Content-Security-Policy and body."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def fetch(url: str) -> dict:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    return {
        "status": status,
        "csp": headers.get("Content-Security-Policy", ""),
        "location": headers.get("Location", ""),
        "body": body.decode("utf-8", "replace"),
    }


if __name__ == "__main__":
    print(json.dumps({url: fetch(url) for url in sys.argv[1:]}))
