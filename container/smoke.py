"""Smoke test of a running service container: it answers like the in-process model (make image-smoke).

container/image.sh starts the container on loopback and runs this with the engine and the container's
name. It waits (bounded) until ``/api/v1/health`` reports a model, runs the image's own HEALTHCHECK,
posts listings (valid ones and an invalid one) and compares the answer with the service's own
``judge`` run in-process on the same model file, checks that ``/api/v1/model`` vouches for that
model with its test metrics and that the web page renders. Any difference is one line and exit
code 2.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rentprice.errors import RentpriceError
from rentprice.io import file_md5
from rentprice.logs import run_stage, step
from rentprice.scoring import DVC_LOCK, load_scoring_model
from rentprice.service.listings import judge

HOST = "127.0.0.1"
POLL_SECONDS = 0.5
REQUEST_SECONDS = 30
BASE = {
    "address": "1071 HN Amsterdam",
    "area": 80,
    "construction_year": 1930,
    "rooms": 3,
    "bedrooms": 2,
    "bathrooms": 1,
    "balcony": "yes",
    "storage": "no",
    "parking": "no",
    "furnished": "yes",
    "garage": "no",
    "garden": "Present (47 m²)",
    "energy": "A",
    "facilities": "Shower, Toilet, Lift",
    "zip": "1071 HN",
    "neighborhood": "Cornelis Schuytbuurt",
}
#: Valid listings of different kinds (numbers as text, unknowns) and one the model must reject.
LISTINGS: tuple[dict[str, Any], ...] = (
    BASE,
    {**BASE, "area": "45.5", "rooms": "2", "garden": "Not present", "energy": "None", "furnished": "no"},
    {**BASE, "area": 140, "construction_year": 2015, "zip": "1011 AB", "neighborhood": "Nowhere"},
    {**BASE, "area": 0},
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", required=True, help="docker or podman")
    parser.add_argument("--container", required=True, help="name of the running service container")
    parser.add_argument("--port", type=int, required=True, help="the container's port on 127.0.0.1")
    parser.add_argument("--model", type=Path, default=Path("models/model.joblib"))
    parser.add_argument("--lock", type=Path, default=DVC_LOCK)
    parser.add_argument("--metrics", type=Path, default=Path("metrics/eval/metrics.json"))
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for health")
    return parser.parse_args(argv)


def fetch(port: int, method: str, path: str, body: object = None) -> tuple[int, str, str]:
    """One request to the service: (status, content type, body text)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=REQUEST_SECONDS)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


def call(port: int, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """One request to the JSON API: (status, parsed JSON body)."""
    status, _, text = fetch(port, method, path, body)
    try:
        return status, json.loads(text)
    except ValueError:
        raise RentpriceError(f"{method} {path}: answered {status} without JSON: {text[:80]!r}") from None


def engine_output(engine: str, *args: str) -> subprocess.CompletedProcess:
    """Run a container engine command, capturing its output."""
    return subprocess.run([engine, *args], capture_output=True, text=True, check=False)


def wait_healthy(port: int, running: Callable[[], bool], timeout: float) -> dict[str, Any]:
    """Poll ``/api/v1/health`` until it reports a model; fail when the container stops or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, health = call(port, "GET", "/api/v1/health")
        except (OSError, RentpriceError) as error:
            last = str(error)
        else:
            if status == 200 and health.get("model_loaded"):
                return health
            last = f"{status} {health}"
        if not running():
            raise RentpriceError(f"the container stopped before it became healthy (last answer: {last})")
        time.sleep(POLL_SECONDS)
    raise RentpriceError(f"not healthy within {timeout:.0f} s (last answer: {last})")


def run_healthcheck(engine: str, container: str, timeout: float) -> str:
    """Run the image's HEALTHCHECK: Podman on demand, Docker by waiting for its scheduled verdict."""
    if engine == "podman":
        result = engine_output(engine, "healthcheck", "run", container)
        if result.returncode != 0:
            raise RentpriceError(f"HEALTHCHECK failed: {(result.stdout + result.stderr).strip()}")
        return result.stdout.strip() or "healthy"
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        template = "{{if .State.Health}}{{.State.Health.Status}}{{end}}"
        status = engine_output(engine, "inspect", "--format", template, container).stdout.strip()
        if status in {"healthy", ""}:
            break
        time.sleep(POLL_SECONDS)
    if status != "healthy":
        raise RentpriceError(
            f"HEALTHCHECK status {status or 'missing (the image has none)'!r}, not 'healthy'"
        )
    return status


def expected_answer(model: dict[str, Any], listings: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the service must answer for ``listings``: the service's own ``judge``, run in-process."""
    verdict = judge(listings, model)
    return {"predictions": verdict.predictions, "errors": verdict.errors}


def differences(answer: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """How the service's answer differs from the expected one (empty when it does not)."""
    found = []
    for key in ("predictions", "errors"):
        got = {item["index"]: item for item in answer.get(key, [])}
        wanted = {item["index"]: item for item in expected[key]}
        for index in sorted(got.keys() | wanted.keys()):
            if got.get(index) != wanted.get(index):
                found.append(
                    f"listing {index} {key}: container {got.get(index)}, in-process {wanted.get(index)}"
                )
    return found


def check(args: argparse.Namespace) -> None:
    """Every check of the smoke test, each logged with its timing."""
    with step("in-process model") as facts:
        model = load_scoring_model(args.model, args.lock)
        version = file_md5(args.model)
        expected = expected_answer(model, LISTINGS)
        facts.update(version=version, listings=len(LISTINGS), rejected=len(expected["errors"]))

    def running() -> bool:
        template = "{{.State.Running}}"
        return (
            engine_output(args.engine, "inspect", "--format", template, args.container).stdout.strip()
            == "true"
        )

    with step("healthy") as facts:
        health = wait_healthy(args.port, running, args.timeout)
        facts.update(model_version=health["model_version"])
    if health["model_version"] != version:
        raise RentpriceError(
            f"the container serves model {health['model_version']}, {args.model} is {version}: "
            "run `make image`"
        )
    with step("HEALTHCHECK") as facts:
        facts.update(verdict=run_healthcheck(args.engine, args.container, args.timeout))
    with step("predict") as facts:
        status, answer = call(args.port, "POST", "/api/v1/predict", list(LISTINGS))
        facts.update(status=status, predictions=len(answer.get("predictions", [])))
    wanted_status = 422 if expected["errors"] else 200
    problems = differences(answer, expected)
    if status != wanted_status or problems:
        raise RentpriceError(
            f"POST /api/v1/predict: status {status} (want {wanted_status}); {'; '.join(problems)}"
        )
    with step("model info") as facts:
        status, info = call(args.port, "GET", "/api/v1/model")
        facts.update(status=status, source=info.get("source"))
    metrics = json.loads(args.metrics.read_text(encoding="utf-8"))
    if status != 200 or info.get("version") != version or info.get("source") != "dvc.lock":
        raise RentpriceError(f"GET /api/v1/model: {status} {info}: want version {version} from dvc.lock")
    if info.get("test_metrics") != metrics:
        raise RentpriceError(
            f"GET /api/v1/model: test_metrics {info.get('test_metrics')}, {args.metrics} has {metrics}"
        )
    with step("web page") as facts:
        status, kind, page = fetch(args.port, "GET", "/")
        facts.update(status=status, bytes=len(page))
    if status != 200 or not kind.startswith("text/html") or version not in page:
        raise RentpriceError(f"GET /: {status} {kind}: want the HTML form showing model {version}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smoke test; 0 when the container answers like the in-process model, 2 otherwise."""
    args = parse_args(argv)
    return run_stage("image-smoke", lambda: check(args))


if __name__ == "__main__":
    raise SystemExit(main())
