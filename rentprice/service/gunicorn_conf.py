"""gunicorn settings for the prediction service: ``gunicorn -c python:rentprice.service.gunicorn_conf``.

``python -m rentprice.service.serve`` (``make serve``, the container) runs gunicorn with these settings
behind nginx, which reads every request whole before a worker sees it (docs/service.md). Command-line
options (``--bind``, ``--workers``) override these values.

The master builds the app and so loads the model (``preload_app``); every worker, including one that
replaces a crashed or recycled worker, is a fork of the master and serves the master's model, whether
or not the model file exists at that moment (``dvc repro`` deletes it while it trains). ``SIGHUP`` to
the master (sent by ``POST /api/v1/model/reload`` after the file loaded in a worker, or by an operator)
loads the file again in the master, keeping the model it has when the file is missing or broken, then
replaces the workers gracefully. Code changes need a restart: a ``SIGHUP`` does not re-import the code.
"""

from __future__ import annotations

import os
import signal
import sys

wsgi_app = "rentprice.service.app:create_app()"
bind = ["127.0.0.1:8000"]
workers = 2
#: Scoring is CPU-bound and nginx hands on whole requests only: one request at a time per worker.
worker_class = "sync"
preload_app = True
timeout = 30
graceful_timeout = 10
accesslog = "-"
#: No gunicornc control socket: one fixed path per user would clash between servers, and nothing uses it.
control_socket_disable = True


def on_starting(server) -> None:
    """In the master, before the app loads: the service's logging."""
    from rentprice.logs import setup_logging

    setup_logging("serve")


def on_reload(server) -> None:
    """In the master on ``SIGHUP``, before the new workers fork: load the model file again (or keep)."""
    server.app.wsgi().extensions["rentprice"].load()


def post_fork(server, worker) -> None:
    """In each new worker: a reload that succeeds there asks the master to reload every worker."""
    master = server.pid
    server.app.wsgi().extensions["rentprice"].announce = lambda: os.kill(master, signal.SIGHUP)


def worker_exit(server, worker) -> None:
    """In a worker that stops: leave at once, as multiprocessing's forked children do (``os._exit``).

    The interpreter's normal teardown would free every object the worker inherited from the
    master, copying the model's pages first: it kept a stopping worker alive 2-7 s (docs/benchmarks.md),
    and two workers recycled together left the server without a worker that long. Logs are flushed
    first; the exit status is the worker's own (gunicorn's master reads boot and load errors from it).
    """
    from loguru import logger

    error = sys.exc_info()[1]
    code = error.code if isinstance(error, SystemExit) else int(error is not None)
    logger.remove()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)
