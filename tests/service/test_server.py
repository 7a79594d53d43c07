"""The service under gunicorn as `make serve` runs it: a real process with two workers on loopback."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from rentprice.io import file_md5
from tests.conftest import tool_env
from tests.service.conftest import LISTING, TOKEN
from tests.service.server_support import HOST, call, free_port, wait_until_healthy

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:rentprice.service.gunicorn_conf"]
WORKERS = 2
#: Listings per request in the concurrent pairs: long enough to keep one worker busy while the other answers.
BUSY_LISTINGS = 1000


@pytest.fixture
def server(service_dir):
    """gunicorn serving ``service_dir`` with two workers on a free loopback port; stopped afterwards."""
    port = free_port()
    env = tool_env() | {
        "RENTPRICE_MODEL": str(service_dir / "model.joblib"),
        "RENTPRICE_LOCK": str(service_dir / "dvc.lock"),
        "RENTPRICE_METRICS": str(service_dir / "metrics.json"),
        "RENTPRICE_RELOAD_TOKEN": TOKEN,
    }
    for name in ("RENTPRICE_RELOAD_SIGNAL", "RENTPRICE_MAX_LISTINGS", "RENTPRICE_MAX_REQUEST_BYTES"):
        env.pop(name, None)
    log = service_dir / "gunicorn.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*GUNICORN, "--bind", f"{HOST}:{port}", "--workers", str(WORKERS)],
            cwd=service_dir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(port, lambda: process.poll() is None)
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


def concurrent_pair(port: int) -> list[str]:
    """The model versions two simultaneous long requests report: one served by each worker."""
    with ThreadPoolExecutor(WORKERS) as pool:
        requests = [
            pool.submit(call, port, "POST", "/api/v1/predict", [LISTING] * BUSY_LISTINGS) for _ in "ab"
        ]
        answers = [request.result() for request in requests]
    assert [status for status, _ in answers] == [200, 200]
    return [body["model_version"] for _, body in answers]


def test_gunicorn_serves_predicts_reloads_every_worker_and_stops(server, service_dir, model_files):
    port, process = server
    first, second = file_md5(model_files["first"]), file_md5(model_files["second"])
    status, body = call(port, "POST", "/api/v1/predict", LISTING)
    assert status == 200
    assert body["model_version"] == first
    assert body["predictions"][0]["predicted_rent"] > 0
    assert call(port, "POST", "/api/v1/predict", {**LISTING, "area": 0})[0] == 422
    assert concurrent_pair(port) == [first, first]

    shutil.copyfile(model_files["second"], service_dir / "model.joblib")
    assert call(port, "POST", "/api/v1/model/reload", headers={"Authorization": "Bearer nope"})[0] == 403
    status, body = call(port, "POST", "/api/v1/model/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, body["model_version"]) == (200, second)
    for _ in range(3):
        assert concurrent_pair(port) == [second, second]

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    log = (service_dir / "gunicorn.log").read_text()
    assert "Traceback" not in log
    # each worker at start, then the reload in one worker and the follow in the other
    assert log.count("load model: version=") == WORKERS + 2
    assert "followed reload: serving version " + second in log
