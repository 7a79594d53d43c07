"""Talking to a running service on loopback: a free port, one request, waiting for health.

Standard library only; used by the tests and ``bench/serve.py``.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def call(
    port: int,
    method: str,
    path: str,
    body: object = None,
    headers: dict | None = None,
    timeout: float = 30,
) -> tuple[int, object]:
    """One HTTP request to the server on ``port``: (status, parsed JSON body or text).

    ``timeout``: seconds for connecting and for each read; OSError (TimeoutError) past it.
    """
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        sent = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=data, headers={**sent, **(headers or {})})
        response = connection.getresponse()
        text = response.read().decode()
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return response.status, json.loads(text) if is_json else text
    finally:
        connection.close()


def wait_until_healthy(port: int, alive: Callable[[], bool], seconds: float = 60) -> dict:
    """Poll ``/api/v1/health`` until it answers 200; fail when ``alive()`` turns False or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError("the server exited before it became healthy")
        try:
            status, body = call(port, "GET", "/api/v1/health")
        except OSError:
            status = None
        if status == 200:
            return body
        time.sleep(0.1)
    raise AssertionError(f"the server did not become healthy within {seconds} s")
