"""Drive headless Chromium through the DevTools protocol over a pipe (no driver, no websocket, no network).

With ``--remote-debugging-pipe`` Chromium reads JSON commands from file descriptor 3 and writes
replies and events to descriptor 4, each message ending in a NUL byte.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

#: Flags for a quiet, isolated headless browser that contacts nothing but the page it is sent to.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)
TIMEOUT_SECONDS = 30
FIRST_FREE_FD = 10


def chromium_binary() -> str | None:
    """Debian's ``chromium`` (or the binary in $CHROMIUM), None when it is not installed."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium")


def _above_four(fd: int) -> int:
    """The same pipe end on a descriptor above 4, so moving it to 3 or 4 overwrites nothing."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, FIRST_FREE_FD)
    os.close(fd)
    return moved


class DevToolsError(AssertionError):
    """Chromium answered a command with an error, or did not answer in time."""


class Chromium:
    """One headless Chromium with a fresh profile and one page; use as a context manager."""

    def __init__(self, binary: str, profile: Path):
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        commands_read, replies_write = _above_four(commands_read), _above_four(replies_write)
        # bash moves the pipe ends to fd 3 and 4, then execs Chromium (dash handles only fds 0-9)
        move_fds = f'exec "$@" 3<&{commands_read} 4>&{replies_write} {commands_read}<&- {replies_write}>&-'
        self._process = subprocess.Popen(
            ["bash", "-c", move_fds, "bash", binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(commands_read, replies_write),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *_exc) -> None:
        with contextlib.suppress(DevToolsError, OSError):
            self.send("Browser.close", session=False)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._commands)
        os.close(self._replies)

    def send(self, method: str, session: bool = True, **params: Any) -> dict[str, Any]:
        """Send one command (to the page's session unless ``session`` is False) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._replies], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(self._replies, 1 << 16) if ready else b""
            if not chunk:
                raise DevToolsError("Chromium did not answer (exited or timed out)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float = TIMEOUT_SECONDS) -> Any:
        """Poll a JavaScript expression until it is truthy (errors while a page loads count as false)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except DevToolsError:
                value = None
            if value:
                return value
            time.sleep(0.05)
        raise DevToolsError(f"still false after {seconds} s: {expression}")

    def open(self, url: str) -> None:
        """Load ``url`` and wait until the document is complete."""
        self.send("Page.navigate", url=url)
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'")
