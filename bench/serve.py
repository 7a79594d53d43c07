"""Benchmark the prediction service: in-process latency and gunicorn on loopback.

Reports in one run, on listings resampled from the real snapshot:

- in process (Flask's test client, no network): p50/p99 of ``POST /api/v1/predict`` with one
  listing, and the p50 of its two parts, ``validate_listings`` and ``score`` (target: p50 < 20 ms);
- on loopback: gunicorn started as ``make serve`` starts it (``--workers``) on a free port, then
  ``--clients`` concurrent clients send ``--requests`` requests of 1 and of 100 listings: requests/s,
  listings/s, p50 and p99 latency, and the errors (any answer but 200; must be 0).

Every loop is bounded by a request count. Exits 1 when a target is missed. Run from the repository
root after ``dvc repro`` (it needs the model and the raw snapshot): ``make bench-serve``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from flask.testing import FlaskClient

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from rentprice.schema import FEATURE_COLUMNS  # noqa: E402
from rentprice.scoring import score, validate_listings  # noqa: E402
from rentprice.service.app import create_app  # noqa: E402
from rentprice.service.config import ServiceConfig  # noqa: E402
from rentprice.service.listings import listings_frame  # noqa: E402
from rentprice.service.probe import HOST, call, free_port, wait_until_healthy  # noqa: E402

TARGET_P50_MS = 20.0
BATCH_SIZES = (1, 100)
WARMUP = 10


def parse_args() -> argparse.Namespace:
    """Command-line arguments: the model and listings, worker and client counts, loop sizes."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "model.joblib")
    parser.add_argument("--lock", type=Path, default=REPO_ROOT / "dvc.lock")
    parser.add_argument("--listings", type=Path, default=REPO_ROOT / "data" / "raw" / "listings.parquet")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=2, help="concurrent clients on loopback")
    parser.add_argument("--requests", type=int, default=200, help="requests per batch size on loopback")
    parser.add_argument("--in-process", type=int, default=200, help="one-listing requests in process")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def sample_listings(path: Path, model: dict, count: int, seed: int) -> list[dict]:
    """``count`` scorable listings drawn from the snapshot as JSON-ready dicts (missing values as None)."""
    frame = pd.read_parquet(path, columns=list(FEATURE_COLUMNS))
    scorable = frame.loc[validate_listings(frame, model).scorable.index]
    rows = scorable.iloc[np.random.default_rng(seed).integers(0, len(scorable), count)]
    return rows.astype(object).where(rows.notna(), None).to_dict("records")


def timed(function: Callable[[], object], repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """Wall and CPU milliseconds per call of ``function`` over ``repeats`` calls, after WARMUP calls.

    CPU time shows the work itself on a machine whose other processes compete for the cores.
    """
    for _ in range(WARMUP):
        function()
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return np.array(wall), np.array(cpu)


def in_process(args: argparse.Namespace, client: FlaskClient, model: dict, listings: list[dict]) -> float:
    """Print the in-process latency of one-listing requests and its parts; return the request p50."""
    cycle = itertools.count()
    listings = listings[: args.in_process]

    def one_request() -> None:
        response = client.post("/api/v1/predict", json=listings[next(cycle) % len(listings)])
        if response.status_code != 200:
            raise SystemExit(
                f"in-process request failed: {response.status_code} {response.get_data(as_text=True)}"
            )

    requests, requests_cpu = timed(one_request, args.in_process)
    frames = [listings_frame([listing]) for listing in listings]  # the frame the service judges
    validated = [validate_listings(frame, model).scorable for frame in frames]
    parts = {
        "validate_listings": timed(
            lambda: validate_listings(frames[next(cycle) % len(frames)], model), args.in_process
        ),
        "score": timed(lambda: score(model, validated[next(cycle) % len(validated)]), args.in_process),
    }
    p50, p99 = np.percentile(requests, [50, 99])
    verdict = "met" if p50 < TARGET_P50_MS else "MISSED"
    print(f"in process, 1 listing per request ({args.in_process} requests):")
    print(f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p50 < {TARGET_P50_MS:g} ms: {verdict})")
    print(f"  CPU time p50 {np.median(requests_cpu):.1f} ms")
    for name, (wall, cpu) in parts.items():
        print(f"  of which {name}: p50 {np.median(wall):.1f} ms (CPU {np.median(cpu):.1f} ms)")
    return float(p50)


def start_server(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen:
    """Start gunicorn with the service's config as `make serve` does, logging to ``log``."""
    env = dict(os.environ) | {"RENTPRICE_MODEL": str(args.model), "RENTPRICE_LOCK": str(args.lock)}
    command = [sys.executable, "-m", "gunicorn", "-c", "python:rentprice.service.gunicorn_conf"]
    command += ["--bind", f"{HOST}:{port}", "--workers", str(args.workers)]
    with open(log, "wb") as output:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


def load(port: int, bodies: list[object], clients: int) -> tuple[np.ndarray, int, float]:
    """Send every body once from ``clients`` threads: latencies (ms), error count, wall seconds."""

    def one(body: object) -> tuple[float, bool]:
        started = time.perf_counter()
        try:
            ok = call(port, "POST", "/api/v1/predict", body)[0] == 200
        except OSError:
            ok = False
        return (time.perf_counter() - started) * 1000, ok

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, bodies))
    wall = time.perf_counter() - started
    return np.array([ms for ms, _ in results]), sum(not ok for _, ok in results), wall


def on_loopback(args: argparse.Namespace, listings: list[dict]) -> int:
    """Print requests/s and latency of gunicorn per batch size; return the number of errors."""
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "gunicorn.log"
        server = start_server(args, port, log)
        try:
            wait_until_healthy(port, lambda: server.poll() is None)
            errors = 0
            print(f"gunicorn on loopback, {args.workers} workers, {args.clients} concurrent clients:")
            print("  listings/request  requests  errors  requests/s  listings/s  p50 ms  p99 ms")
            for size in BATCH_SIZES:
                bodies = [listings[index * size : (index + 1) * size] for index in range(args.requests)]
                if size == 1:
                    bodies = [body[0] for body in bodies]
                load(port, bodies[:WARMUP], args.clients)
                latencies, failed, wall = load(port, bodies, args.clients)
                errors += failed
                p50, p99 = np.percentile(latencies, [50, 99])
                print(
                    f"  {size:>16}  {len(bodies):>8}  {failed:>6}  {len(bodies) / wall:>10.1f}"
                    f"  {len(bodies) * size / wall:>10.0f}  {p50:>6.1f}  {p99:>6.1f}"
                )
        except AssertionError as failure:
            raise SystemExit(f"{failure}\n{log.read_text(errors='replace')[-3000:]}") from None
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    return errors


def main() -> int:
    """Run both measurements; 1 when the p50 target is missed or any request failed."""
    args = parse_args()
    app = create_app(ServiceConfig(model_path=args.model, lock_path=args.lock))
    served = app.extensions["rentprice"].current
    if served is None:
        raise SystemExit(f"{args.model}: no model loaded (see the log line above)")
    count = max(args.requests * max(BATCH_SIZES), args.in_process)
    listings = sample_listings(args.listings, served.bundle, count, args.seed)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; model {served.version}")
    p50 = in_process(args, app.test_client(), served.bundle, listings)
    errors = on_loopback(args, listings)
    print(f"errors: {errors}")
    return 0 if p50 < TARGET_P50_MS and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
