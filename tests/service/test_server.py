"""The service as real processes on loopback: gunicorn's master and workers, and nginx in front."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from rentprice.io import file_md5
from rentprice.service.config import DEFAULT_MAX_REQUEST_BYTES
from rentprice.service.probe import HOST, call, free_port, wait_until_healthy
from rentprice.service.security import SECURITY_HEADERS
from rentprice.service.serve import UPSTREAM_REQUESTS_PER_WORKER, nginx_binary
from tests.support import tool_env
from tests.support.service import LISTING, TOKEN

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:rentprice.service.gunicorn_conf"]
LAUNCHER = [sys.executable, "-m", "rentprice.service.serve"]
WORKERS = 2
#: Listings per request in the concurrent pairs: long enough to keep one worker busy while the other answers.
BUSY_LISTINGS = 1000
#: Bounds on waiting for the server, never expected to be reached.
WAIT_SECONDS = 60
#: A request that a blocked server would not answer in this time fails the test.
ANSWER_SECONDS = 10
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def service_env(service_dir: Path) -> dict[str, str]:
    """The environment of a server on ``service_dir`` with the test token and the default limits."""
    env = {name: value for name, value in tool_env().items() if not name.startswith("RENTPRICE_")}
    return env | {
        "RENTPRICE_MODEL": str(service_dir / "model.joblib"),
        "RENTPRICE_LOCK": str(service_dir / "dvc.lock"),
        "RENTPRICE_METRICS": str(service_dir / "metrics.json"),
        "RENTPRICE_RELOAD_TOKEN": TOKEN,
    }


@contextmanager
def running(command: list[str], service_dir: Path):
    """``command`` started in ``service_dir`` until healthy; yields (port, process); stopped afterwards."""
    port = free_port()
    log = service_dir / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*command, "--bind", f"{HOST}:{port}", "--workers", str(WORKERS)],
            cwd=service_dir,
            env=service_env(service_dir),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(port, lambda: process.poll() is None, WAIT_SECONDS)
        yield port, process
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{log.read_text(errors='replace')}") from None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def gunicorn(service_dir):
    """gunicorn alone (no proxy) serving ``service_dir`` with two workers; yields (port, master)."""
    with running(GUNICORN, service_dir) as server:
        yield server


@pytest.fixture
def proxied(service_dir):
    """The service as `make serve` runs it: nginx in front of gunicorn; yields (port, launcher)."""
    try:
        nginx_binary()
    except Exception:
        pytest.skip("nginx is not installed: apt-get install nginx-light (.ci/run installs it for CI)")
    with running(LAUNCHER, service_dir) as server:
        yield server


def children(pid: int) -> set[int]:
    """The process ids of ``pid``'s children (Linux /proc)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(child) for child in text.split()}


def eventually(check, seconds: float = WAIT_SECONDS):
    """Call ``check()`` until it returns a true value (returned); fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not true within {seconds} s: {check.__doc__ or check}")


def concurrent_pair(port: int) -> list[str]:
    """The model versions two simultaneous long requests report: one served by each worker."""
    with ThreadPoolExecutor(WORKERS) as pool:
        requests = [
            pool.submit(call, port, "POST", "/api/v1/predict", [LISTING] * BUSY_LISTINGS) for _ in "ab"
        ]
        answers = [request.result() for request in requests]
    assert [status for status, _ in answers] == [200, 200]
    return [body["model_version"] for _, body in answers]


def replaced_workers(master: int, old: set[int]) -> set[int]:
    """Wait until ``master`` has WORKERS workers, none of them in ``old``; return them."""

    def new_workers() -> set[int] | None:
        """WORKERS new workers"""
        now = children(master)
        return now if len(now) == WORKERS and not now & old else None

    return eventually(new_workers)


def test_gunicorn_serves_predicts_reloads_every_worker_and_stops(gunicorn, service_dir, model_files):
    port, master = gunicorn
    first, second = file_md5(model_files["first"]), file_md5(model_files["second"])
    status, body = call(port, "POST", "/api/v1/predict", LISTING)
    assert (status, body["model_version"]) == (200, first)
    assert body["predictions"][0]["predicted_rent"] > 0
    assert call(port, "POST", "/api/v1/predict", {**LISTING, "area": 0})[0] == 422
    assert concurrent_pair(port) == [first, first]

    workers = children(master.pid)
    shutil.copyfile(model_files["second"], service_dir / "model.joblib")
    assert call(port, "POST", "/api/v1/model/reload", headers={"Authorization": "Bearer nope"})[0] == 403
    status, body = call(port, "POST", "/api/v1/model/reload", headers=AUTH)
    assert (status, body["model_version"]) == (200, second)
    replaced_workers(master.pid, workers)
    for _ in range(3):
        assert concurrent_pair(port) == [second, second]

    master.send_signal(signal.SIGTERM)
    assert master.wait(timeout=30) == 0
    log = (service_dir / "server.log").read_text()
    assert "Traceback" not in log
    # the master at start, the worker that took the reload, then the master on SIGHUP
    assert log.count("load model: version=") == 3


def test_a_worker_started_while_the_model_file_is_missing_serves_the_last_good_model(
    gunicorn, service_dir, model_files
):
    port, master = gunicorn
    first, second = file_md5(model_files["first"]), file_md5(model_files["second"])
    model = service_dir / "model.joblib"
    model.unlink()  # as `dvc repro` does while it trains
    workers = children(master.pid)
    for worker in workers:  # a crash, a timeout or max_requests: the master starts a new worker
        os.kill(worker, signal.SIGKILL)
    workers = replaced_workers(master.pid, workers)
    assert concurrent_pair(port) == [first, first]
    assert call(port, "GET", "/api/v1/health")[1]["model_version"] == first

    # a reload while the file is missing or broken keeps the model in every worker
    for problem in ("missing", "broken"):
        if problem == "broken":
            shutil.copyfile(model_files["broken"], model)
        master.send_signal(signal.SIGHUP)
        workers = replaced_workers(master.pid, workers)
        assert concurrent_pair(port) == [first, first]

    # the file restored (a newer model): the next reload serves it everywhere
    shutil.copyfile(model_files["second"], model)
    master.send_signal(signal.SIGHUP)
    replaced_workers(master.pid, workers)
    assert concurrent_pair(port) == [second, second]
    assert "Traceback" not in (service_dir / "server.log").read_text()


def test_a_server_started_without_a_model_serves_one_after_a_reload(service_dir, model_files):
    (service_dir / "model.joblib").unlink()
    with running(GUNICORN, service_dir) as (port, master):
        assert call(port, "GET", "/api/v1/health")[1]["model_loaded"] is False
        assert call(port, "POST", "/api/v1/predict", LISTING)[0] == 503
        workers = children(master.pid)
        shutil.copyfile(model_files["second"], service_dir / "model.joblib")
        assert call(port, "POST", "/api/v1/model/reload", headers=AUTH)[0] == 200
        replaced_workers(master.pid, workers)
        assert concurrent_pair(port) == [file_md5(model_files["second"])] * 2


def slow_connection(port: int, partial: bytes) -> socket.socket:
    """A connection that sent only ``partial`` of its request and then nothing."""
    connection = socket.create_connection((HOST, port), timeout=ANSWER_SECONDS)
    connection.sendall(partial)
    return connection


def test_slow_clients_do_not_block_other_clients(proxied):
    port, _ = proxied
    started_headers = (
        b"POST /api/v1/predict HTTP/1.1\r\nHost: rentprice\r\nContent-Type: application/json\r\n"
    )
    started_body = started_headers + b"Content-Length: 1000\r\n\r\n[{"
    with ExitStack() as stack:
        # more slow connections than there are workers, both kinds: unfinished headers and body
        for partial in (started_headers, started_body) * (WORKERS + 1):
            stack.callback(slow_connection(port, partial).close)
        time.sleep(0.5)
        for _ in range(3):
            assert call(port, "GET", "/api/v1/health", timeout=ANSWER_SECONDS)[0] == 200
            assert call(port, "POST", "/api/v1/predict", LISTING, timeout=ANSWER_SECONDS)[0] == 200


def raw_response(port: int, request: bytes) -> http.client.HTTPResponse:
    """The server's answer to the bytes ``request``, as sent."""
    connection = socket.create_connection((HOST, port), timeout=ANSWER_SECONDS)
    connection.sendall(request)
    response = http.client.HTTPResponse(connection)
    response.begin()
    response.read()
    connection.close()
    return response


def assert_secured(response: http.client.HTTPResponse) -> None:
    """Every security header once, with its value."""
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get_all(name) == [value], name


def test_through_the_proxy_limits_hold_and_every_response_is_secured(proxied):
    port, launcher = proxied
    ok = raw_response(port, b"GET /api/v1/health HTTP/1.1\r\nHost: rentprice\r\nConnection: close\r\n\r\n")
    assert ok.status == 200
    assert_secured(ok)

    # a chunked body over the limit: 413, not a body cut short and "not valid JSON"
    connection = http.client.HTTPConnection(HOST, port, timeout=ANSWER_SECONDS)
    body = json.dumps([{**LISTING, "address": "x" * DEFAULT_MAX_REQUEST_BYTES}]).encode()
    chunks = (body[start : start + 4096] for start in range(0, len(body), 4096))
    connection.request(
        "POST",
        "/api/v1/predict",
        body=chunks,
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    too_large = connection.getresponse()
    answer = json.loads(too_large.read())
    connection.close()
    assert too_large.status == 413
    assert answer == {"error": f"the request is larger than {DEFAULT_MAX_REQUEST_BYTES} bytes"}
    assert_secured(too_large)

    # errors nginx itself answers: a malformed request, a request line or a header too long
    malformed = raw_response(port, b"NOT HTTP AT ALL\r\n\r\n")
    long_line = raw_response(port, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: r\r\n\r\n")
    long_header = raw_response(port, b"GET / HTTP/1.1\r\nHost: r\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n")
    assert [malformed.status, long_line.status, long_header.status] == [400, 414, 400]
    for response in (malformed, long_line, long_header):
        assert_secured(response)

    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=30) == 0


def busy_post(port: int, body: bytes) -> tuple[http.client.HTTPResponse, dict]:
    """The answer to one predict request with ``body`` and its JSON."""
    connection = http.client.HTTPConnection(HOST, port, timeout=WAIT_SECONDS)
    connection.request("POST", "/api/v1/predict", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response, answer


def test_past_capacity_every_answer_is_200_or_a_json_503_with_retry_after_never_a_502(proxied):
    port, _ = proxied
    limit = UPSTREAM_REQUESTS_PER_WORKER * WORKERS
    bodies = [
        json.dumps([{**LISTING, "area": 40 + (i * 7 + n) % 60} for i in range(BUSY_LISTINGS)]).encode()
        for n in range(3 * limit)
    ]
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda body: busy_post(port, body), bodies))
    statuses = [response.status for response, _ in responses]
    assert set(statuses) == {200, 503}, statuses
    # nginx's own "busy" (past max_conns, or a worker that shed the request and closed the connection
    # before reading its body), or the app's, which says how long the request waited for a worker
    assert all("busy" in answer["error"] for response, answer in responses if response.status == 503)
    for response, _ in responses:
        if response.status == 503:
            assert response.headers["Retry-After"] == "1"
            assert_secured(response)


def open_files(pid: int) -> int:
    """How many file descriptors ``pid`` has open: one more while a worker holds a connection."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def killed_mid_request(port: int, master: int, body: bytes) -> tuple[http.client.HTTPResponse, dict]:
    """The answer to a predict whose worker is killed (SIGKILL, all workers) once one has taken it."""
    workers = children(master)
    idle = {pid: open_files(pid) for pid in workers}
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(busy_post, port, body)
        deadline = time.monotonic() + WAIT_SECONDS
        while not any(open_files(pid) > count for pid, count in idle.items()):  # a worker took it
            assert time.monotonic() < deadline and not answer.done(), answer.result()[0].status
            time.sleep(0.001)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        result = answer.result()
    replaced_workers(master, workers)
    return result


def test_a_worker_dying_mid_request_is_a_json_502_not_busy(proxied):
    port, launcher = proxied
    master = next(
        pid for pid in children(launcher.pid) if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    body = json.dumps([{**LISTING, "area": 40 + i % 60} for i in range(BUSY_LISTINGS)]).encode()
    statuses = []
    while 502 not in statuses and len(statuses) < 5:  # the kill may come before the worker takes it
        response, error = killed_mid_request(port, master, body)
        statuses.append(response.status)
        if response.status != 200:  # served by a new worker when the kill came too early
            assert response.status == 502, (response.status, error)
            assert "a worker failed to answer" in error["error"] and "busy" not in error["error"]
            assert_secured(response)
    assert 502 in statuses, statuses
    assert call(port, "GET", "/api/v1/health")[0] == 200


def test_settings_and_the_gunicorn_master_config_import_without_the_app():
    probe = (
        "import sys, rentprice.service, rentprice.service.config, rentprice.service.gunicorn_conf, "
        "rentprice.service.serve; "
        "print(sorted(m for m in ('flask', 'sklearn', 'pandas', 'scipy', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=tool_env()
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("arguments", "variables", "message"),
    [
        (["--bind", "nope"], {}, "error: --bind 'nope': expected HOST:PORT"),
        (
            ["--bind", "127.0.0.1:1"],
            {"RENTPRICE_MAX_QUEUE_SECONDS": "0"},
            "error: RENTPRICE_MAX_QUEUE_SECONDS: '0': ",
        ),
    ],
    ids=["bind", "setting"],
)
def test_the_launcher_refuses_a_bad_bind_or_setting_in_one_line(arguments, variables, message, tmp_path):
    result = subprocess.run(
        [*LAUNCHER, *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=tool_env() | variables,
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
