"""gunicorn settings for the prediction service: ``gunicorn -c python:rentprice.service.gunicorn_conf``.

Sync workers (scoring is CPU-bound), each loading the model once when it starts (no preload).
Command-line options (``--bind``, ``--workers``) override these values; ``make serve`` sets both.
The master creates the reload signal file's directory, so a reload reaches every worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from rentprice.logs import setup_logging
from rentprice.service.config import PREFIX

wsgi_app = "rentprice.service:create_app()"
bind = ["127.0.0.1:8000"]
workers = 2
worker_class = "sync"
preload_app = False
timeout = 30
graceful_timeout = 10
accesslog = "-"
#: No gunicornc control socket: one fixed path per user would clash between servers, and nothing uses it.
control_socket_disable = True

SIGNAL_VARIABLE = f"{PREFIX}RELOAD_SIGNAL"
_created: list[str] = []


def on_starting(server) -> None:
    """In the master, before workers fork: service logging and a private reload signal file."""
    setup_logging("serve")
    if not os.environ.get(SIGNAL_VARIABLE):
        directory = tempfile.mkdtemp(prefix="rentprice-serve-")
        _created.append(directory)
        os.environ[SIGNAL_VARIABLE] = str(Path(directory) / "model-version")


def on_exit(server) -> None:
    """In the master, at shutdown: remove the reload signal directory it created."""
    for directory in _created:
        shutil.rmtree(directory, ignore_errors=True)
