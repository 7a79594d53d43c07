"""The container checks themselves: the smoke test's expected answer and comparison, and the HEALTHCHECK.

The image is built and run by scripts/container-ci.sh (CI, after the tests); these tests prove that its
checks can fail: a prediction that differs is reported, and the HEALTHCHECK exits non-zero when the
service has no model or does not answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rentprice.model import load_model
from tests.code.scoring_fixtures import save_tiny_model
from tests.support import REPO_ROOT, load_module

HEALTHCHECK = REPO_ROOT / "container" / "healthcheck.py"


def load_smoke():
    return load_module("container/smoke.py")


smoke = load_smoke()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_model(save_tiny_model(tmp_path_factory.mktemp("container") / "model.joblib"))


def test_the_expected_answer_scores_the_valid_listings_and_rejects_the_invalid_one(model):
    expected = smoke.expected_answer(model, smoke.LISTINGS)
    assert [item["index"] for item in expected["predictions"]] == [0, 1, 2]
    assert all(item["predicted_rent"] > 0 for item in expected["predictions"])
    assert expected["errors"] == [{"index": 3, "field": "area", "reason": "must be positive, got 0"}]


def test_an_identical_answer_passes_and_any_difference_is_reported(model):
    expected = smoke.expected_answer(model, smoke.LISTINGS)
    answer = json.loads(json.dumps({"model_version": "x", **expected}))
    assert smoke.differences(answer, expected) == []

    answer["predictions"][1]["predicted_rent"] += 0.01
    del answer["errors"][0]
    problems = smoke.differences(answer, expected)
    assert len(problems) == 2
    assert problems[0].startswith("listing 1 predictions: container")
    assert problems[1].startswith("listing 3 errors: container None")


class Health(BaseHTTPRequestHandler):
    """Answers /api/v1/health with the server's ``health`` body."""

    def do_GET(self):
        body = json.dumps(self.server.health).encode()
        status = getattr(self.server, "status", 200)
        self.send_response(status if self.path == "/api/v1/health" else 404)
        self.send_header("Content-Type", "application/json")
        if status == 503 and getattr(self.server, "retry_after", False):
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def healthcheck(port: int) -> subprocess.CompletedProcess:
    env = {"RENTPRICE_HOST": "0.0.0.0", "RENTPRICE_PORT": str(port)}
    return subprocess.run([sys.executable, HEALTHCHECK], env=env, capture_output=True, text=True, timeout=30)


def test_the_healthcheck_passes_only_with_a_model_loaded(health_server):
    port = health_server.server_address[1]
    health_server.health = {"status": "ok", "model_loaded": True, "model_version": "abc"}
    result = healthcheck(port)
    assert (result.returncode, result.stdout.strip()) == (0, "healthy: model abc")

    health_server.health = {"status": "ok", "model_loaded": False, "model_version": None}
    result = healthcheck(port)
    assert result.returncode == 1
    assert "no model is loaded" in result.stderr


@pytest.mark.parametrize(("retry_after", "code"), [(True, 0), (False, 1)])
def test_a_server_shedding_load_is_healthy_and_other_503s_are_not(health_server, retry_after, code):
    health_server.status, health_server.retry_after = 503, retry_after
    health_server.health = {"error": "the server is busy; retry later"}
    result = healthcheck(health_server.server_address[1])
    assert result.returncode == code, result.stderr
    assert ("busy, shedding load" in result.stdout) == retry_after


def test_the_healthcheck_fails_when_nothing_answers(health_server):
    port = health_server.server_address[1]
    health_server.shutdown()
    health_server.server_close()
    result = healthcheck(port)
    assert result.returncode == 1
    assert result.stderr.startswith(f"unhealthy: http://127.0.0.1:{port}/api/v1/health:")
