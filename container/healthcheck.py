"""The image's HEALTHCHECK: exit 0 when the service answers /api/v1/health with a model loaded.

A 503 with ``Retry-After`` (the service shedding load, docs/service.md) also counts as healthy: the
server is alive and answers at once, and marking it unhealthy would get it restarted under load.

Reads the address from the environment the container command uses (RENTPRICE_HOST, RENTPRICE_PORT);
a wildcard bind address is probed on loopback. Standard library only: the image has no curl.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from http import HTTPStatus

TIMEOUT_SECONDS = 4
WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def health_url(environ: dict[str, str]) -> str:
    """The health endpoint of the server this container runs."""
    host = environ.get("RENTPRICE_HOST", "")
    host = "127.0.0.1" if host in WILDCARDS else host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{environ.get('RENTPRICE_PORT', '8000')}/api/v1/health"


def main() -> int:
    """Probe the health endpoint once; print why when unhealthy (the engine keeps the output)."""
    url = health_url(dict(os.environ))
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            health = json.load(response)
    except urllib.error.HTTPError as error:
        error.close()
        if error.code == HTTPStatus.SERVICE_UNAVAILABLE and error.headers.get("Retry-After"):
            # shed under overload (by nginx or a worker): alive and answering at once, not broken;
            # calling it unhealthy would have an orchestrator restart a server under load
            print(f"healthy: busy, shedding load ({url})")
            return 0
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"unhealthy: {url}: {error}", file=sys.stderr)
        return 1
    if not health.get("model_loaded"):
        print(f"unhealthy: {url}: no model is loaded", file=sys.stderr)
        return 1
    print(f"healthy: model {health.get('model_version')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
