"""Run the service: nginx on ``--bind`` in front of gunicorn on a private Unix socket.

``python -m rentprice.service.serve --bind 127.0.0.1:8000 --workers 2`` (``make serve``, the container).

Why nginx in front (docs/service.md): gunicorn's sync workers, right for CPU-bound scoring, block on
a client that sends its request slowly; nginx reads every request whole, with bounded header and body
timeouts, before it hands it to a worker, so slow or stalled clients cost nginx a socket and no worker
any time. nginx also stamps ``X-Request-Start``, by which a worker sheds a request that waited too long
(``ServiceConfig.max_queue_seconds``), refuses bodies over the limit, chunked or not, with 413, and adds
the security headers to every response, its own errors included.

The launcher writes nginx's configuration into a private temporary directory, starts both servers,
forwards ``SIGTERM``/``SIGINT`` (stop) and ``SIGHUP`` (reload the model) and stops both when either exits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rentprice.errors import RentpriceError
from rentprice.service.config import ServiceConfig
from rentprice.service.security import SECURITY_HEADERS

NGINX_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
#: How long nginx waits for a client's whole header, and between two reads of its body.
CLIENT_TIMEOUT_SECONDS = 10
#: Connections nginx holds at once (clients and workers): slow clients beyond it wait to connect.
CLIENT_CONNECTIONS = 4096
#: How long nginx waits for a worker's answer (gunicorn's own worker timeout is 30 s).
UPSTREAM_TIMEOUT_SECONDS = 35
#: Requests nginx hands to gunicorn at once, per worker: one being scored and a short queue. Past
#: that nginx answers 503 at once (docs/service.md), so an overload never builds a queue whose tail
#: waits longer than clients do (measured: 86.9% answered within 3 s without it, bench/serve.py).
UPSTREAM_REQUESTS_PER_WORKER = 4
STOP_SECONDS = 15
GUNICORN = (sys.executable, "-m", "gunicorn", "-c", "python:rentprice.service.gunicorn_conf")


def nginx_conf(
    directory: Path, host: str, port: int, upstream: Path, max_request_bytes: int, workers: int
) -> str:
    """Nginx's configuration: listen on host:port, buffer each request whole, pass it to ``upstream``.

    At most UPSTREAM_REQUESTS_PER_WORKER times ``workers`` requests are passed on at once; the others
    get 503 with ``Retry-After`` from nginx itself.
    """
    temp_paths = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    headers = "\n".join(
        f'        add_header {name} "{value}" always;' for name, value in SECURITY_HEADERS.items()
    )
    hidden = "\n".join(f"            proxy_hide_header {name};" for name in SECURITY_HEADERS)
    inner_headers = "\n".join(f"    {line}" for line in headers.splitlines())
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
# a client connection takes one file, a proxied one two: allow more files than connections (with a
# common default limit of 1,024 open files, accept() failed at ~1,000 slow clients). Where the hard
# limit is lower, nginx logs an alert and keeps the lower one.
worker_rlimit_nofile {2 * CLIENT_CONNECTIONS + 1024};
daemon off;
pid {directory / "nginx.pid"};
error_log stderr warn;
events {{
    worker_connections {CLIENT_CONNECTIONS};
}}
http {{
    access_log off;
    server_tokens off;
{temp_paths}
    client_header_timeout {CLIENT_TIMEOUT_SECONDS}s;
    client_body_timeout {CLIENT_TIMEOUT_SECONDS}s;
    send_timeout {CLIENT_TIMEOUT_SECONDS}s;
    keepalive_timeout 5s;
    client_max_body_size {max_request_bytes};
    client_body_buffer_size {max_request_bytes};
    upstream gunicorn {{
        # max_fails=0: one slow answer must not mark the only upstream as down for 10 s.
        # max_conns: past it nginx has no upstream left (502), answered below as 503 "busy".
        server unix:{upstream} max_fails=0 max_conns={UPSTREAM_REQUESTS_PER_WORKER * workers};
    }}
    server {{
        listen {host}:{port};
{headers}
        # A body over the limit, with or without Content-Length, answered as the app answers it.
        error_page 413 @too_large;
        location @too_large {{
            default_type application/json;
            return 413 '{{"error": "the request is larger than {max_request_bytes} bytes"}}\n';
        }}
        # 502 is nginx's answer both when max_conns leaves no upstream ($upstream_addr is then the
        # group's name): the server is busy, 503; and when a worker died or hung up mid-request
        # ($upstream_addr is the socket): 502, not "busy". 504: no answer within proxy_read_timeout.
        error_page 502 = @no_answer;
        location @no_answer {{
            default_type application/json;
            if ($upstream_addr ~ "^unix:") {{
{inner_headers}
                return 502 '{{"error": "a worker failed to answer (it stopped or restarted); retry"}}\n';
            }}
            add_header Retry-After 1 always;
{headers}
            return 503 '{{"error": "the server is busy; retry later"}}\n';
        }}
        error_page 504 = @timed_out;
        location @timed_out {{
            default_type application/json;
{headers}
            return 504 '{{"error": "no answer from a worker within {UPSTREAM_TIMEOUT_SECONDS} s"}}\n';
        }}
        location / {{
            proxy_pass http://gunicorn;
            proxy_request_buffering on;
            proxy_buffering on;
            proxy_read_timeout {UPSTREAM_TIMEOUT_SECONDS}s;
            proxy_next_upstream off;
            proxy_redirect off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-Start "t=${{msec}}";
{hidden}
        }}
    }}
}}
"""


def nginx_binary() -> str:
    """The nginx executable; a one-line error when it is not installed."""
    found = shutil.which("nginx", path=NGINX_SEARCH_PATH)
    if found is None:
        raise RentpriceError("nginx is not installed (Debian: apt-get install nginx-light)")
    return found


def split_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` as (host, port); a one-line error otherwise."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise RentpriceError(f"--bind {bind!r}: expected HOST:PORT")
    return host, int(port)


def stop(process: subprocess.Popen, stop_signal: int) -> int:
    """Send ``stop_signal`` to ``process`` and wait; kill it after STOP_SECONDS. Returns its exit code."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def serve(bind: str, workers: int) -> int:
    """Run nginx and gunicorn until a stop signal or until one of them exits; the exit code."""
    host, port = split_bind(bind)
    config = ServiceConfig.from_env()
    nginx = nginx_binary()
    directory = Path(tempfile.mkdtemp(prefix="rentprice-serve-"))
    try:
        upstream = directory / "gunicorn.sock"
        conf = directory / "nginx.conf"
        conf.write_text(
            nginx_conf(directory, host, port, upstream, config.max_request_bytes, workers), encoding="utf-8"
        )
        gunicorn = subprocess.Popen([*GUNICORN, "--bind", f"unix:{upstream}", "--workers", str(workers)])
        proxy = subprocess.Popen([nginx, "-e", "stderr", "-p", str(directory), "-c", str(conf)])
        stopping: list[int] = []

        def forward(signum: int, _frame: object) -> None:
            if signum == signal.SIGHUP:
                gunicorn.send_signal(signal.SIGHUP)
            else:
                stopping.append(signum)

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, forward)
        while not stopping and gunicorn.poll() is None and proxy.poll() is None:
            time.sleep(0.2)
        # nginx first (SIGQUIT: finish the requests it has), then gunicorn (SIGTERM: graceful).
        proxy_code = stop(proxy, signal.SIGQUIT)
        gunicorn_code = stop(gunicorn, signal.SIGTERM)
        return 0 if stopping else (gunicorn_code or proxy_code or 1)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--bind HOST:PORT`` and ``--workers N``; errors are one line, exit code 2."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT nginx listens on")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args(argv)
    try:
        return serve(args.bind, args.workers)
    except RentpriceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
