"""Container health probe: exit 0 when the process behind HEALTHCHECK_URL answers.

HEALTHCHECK_URL      http(s) URL to GET (2xx is healthy); empty means "no probe".
HEALTHCHECK_JSONRPC  when "1", POST a Solana `getHealth` call instead and expect "ok".
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request

TIMEOUT_SECONDS = 4
GET_HEALTH = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getHealth"}).encode()


def main() -> int:
    url = os.environ.get("HEALTHCHECK_URL", "")
    jsonrpc = os.environ.get("HEALTHCHECK_JSONRPC") == "1"
    if not url:
        return 0
    if not url.startswith(("http://", "https://")):
        print(f"HEALTHCHECK_URL is not an http(s) URL: {url}", file=sys.stderr)
        return 1
    request = urllib.request.Request(
        url,
        data=GET_HEALTH if jsonrpc else None,
        headers={"Content-Type": "application/json"} if jsonrpc else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            payload = response.read()
    except OSError as error:  # urllib's HTTPError (non-2xx) is an OSError too
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    if not jsonrpc:
        return 0
    try:
        return 0 if json.loads(payload).get("result") == "ok" else 1
    except (ValueError, AttributeError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
