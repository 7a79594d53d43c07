"""Benchmark batch scoring: stages/predict.py end to end against the in-process ceiling, and its memory.

Makes synthetic inputs by resampling the real listings (jittered area, 0.1% of rows without an
area, so the reject path runs too) in a temporary directory, then reports in one run:

- the n_jobs crossover: predict time per batch size with one thread and with the trained n_jobs;
- the ceiling: rows/s of ``pipeline.predict`` on rows already in memory (at most 1M rows);
- rows/s of the script end to end (child process) per input format, and the ratio to the ceiling;
- peak RSS of the script on ``--rows`` and on ``--small-rows`` rows (memory must stay flat).

Exits 1 when a target is missed. Run from the repository root: ``make bench`` or
``python bench/predict.py --rows 10000000 --formats parquet`` (compares 10M with 1M rows).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from rentprice.model import forest_of, load_model  # noqa: E402
from rentprice.scoring import SERIAL_BELOW_ROWS, with_jobs  # noqa: E402

SCRIPT = REPO_ROOT / "stages" / "predict.py"
CEILING_ROWS = 1_000_000
WRITE_ROWS = 500_000
BATCH_SIZES = (1, 10, 100, 1000, 2000, 3000, 5000, 7000, 10_000, 20_000)
REPEATS = 3
MISSING_AREA_SHARE = 0.001
TARGET_RATIO = 0.8
TARGET_RSS_MIB = 1024
#: RSS on --rows may exceed RSS on --small-rows by this factor at most ("flat").
FLAT_FACTOR = 1.1


def parse_args() -> argparse.Namespace:
    """Command-line arguments: sizes, formats and the real files to resample and score with."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large synthetic input")
    parser.add_argument(
        "--small-rows", type=int, help="rows of the memory comparison input (default rows/10)"
    )
    parser.add_argument("--formats", default="parquet,csv", help="input formats to score end to end")
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "model.joblib")
    parser.add_argument("--listings", type=Path, default=REPO_ROOT / "data" / "raw" / "listings.parquet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.small_rows = args.small_rows or max(args.rows // 10, 1)
    return args


def synthetic_chunks(listings: pd.DataFrame, rows: int, seed: int) -> Iterator[pd.DataFrame]:
    """``rows`` listings resampled from the real ones with jittered area and an id, in chunks."""
    rng = np.random.default_rng(seed)
    features = listings.drop(columns="rent")
    for start in range(0, rows, WRITE_ROWS):
        size = min(WRITE_ROWS, rows - start)
        chunk = features.iloc[rng.integers(0, len(features), size)].reset_index(drop=True)
        area = (chunk["area"] * rng.uniform(0.9, 1.1, size)).round(1)
        chunk["area"] = area.where(rng.random(size) >= MISSING_AREA_SHARE)
        chunk.insert(0, "listing_id", np.arange(start, start + size))
        yield chunk


def write_synthetic(listings: pd.DataFrame, rows: int, seed: int, path: Path) -> None:
    """Write the synthetic listings as Parquet or CSV, chunk by chunk."""
    if path.suffix == ".parquet":
        writer = None
        for chunk in synthetic_chunks(listings, rows, seed):
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        writer.close()
    else:
        for number, chunk in enumerate(synthetic_chunks(listings, rows, seed)):
            chunk.to_csv(path, mode="a" if number else "w", header=not number, index=False)


def best_time(function, repeats: int = REPEATS) -> float:
    """Fastest of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        started = perf_counter()
        function()
        times.append(perf_counter() - started)
    return min(times)


def crossover(pipeline, listings: pd.DataFrame) -> int | None:
    """Print predict time per batch size for one thread and the trained n_jobs; return the crossover.

    The crossover is the smallest batch size from which the trained n_jobs is faster at every
    measured size.
    """
    jobs = forest_of(pipeline).n_jobs
    serial, parallel = with_jobs(pipeline, 1), with_jobs(pipeline, jobs)
    sample = listings.sample(max(BATCH_SIZES), replace=True, random_state=0).reset_index(drop=True)
    print(f"\nn_jobs crossover (best of {REPEATS}; SERIAL_BELOW_ROWS = {SERIAL_BELOW_ROWS})")
    print(f"{'rows':>8} {'n_jobs=1 (ms)':>14} {f'n_jobs={jobs} (ms)':>14} {'faster':>8}")
    parallel_wins = []
    for size in BATCH_SIZES:
        batch = sample.iloc[:size]
        one = best_time(lambda batch=batch: serial.predict(batch))
        many = best_time(lambda batch=batch: parallel.predict(batch))
        parallel_wins.append(many < one)
        winner = f"n_jobs={1 if one <= many else jobs}"
        print(f"{size:>8} {one * 1000:>14.1f} {many * 1000:>14.1f} {winner:>8}")
    for index, size in enumerate(BATCH_SIZES):
        if all(parallel_wins[index:]):
            return size
    return None


def ceiling(pipeline, path: Path) -> float:
    """Rows/s of an in-process ``pipeline.predict`` on the first CEILING_ROWS rows, already in memory."""
    frame = next(pq.ParquetFile(path).iter_batches(batch_size=CEILING_ROWS)).to_pandas()
    started = perf_counter()
    pipeline.predict(frame)
    return len(frame) / (perf_counter() - started)


def run_script(model: Path, source: Path, output: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `stages/predict.py` scoring ``source`` in a child process."""
    arguments = [
        sys.executable,
        str(SCRIPT),
        "--model",
        str(model),
        "--input",
        str(source),
        "--output",
        str(output),
    ]
    started = perf_counter()
    quiet = [(os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]  # its log lines are in logs/predict.log
    pid = os.posix_spawn(sys.executable, arguments, os.environ, file_actions=quiet)
    _, status, usage = os.wait4(pid, 0)
    seconds = perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(arguments)} failed (exit code {code}): see logs/predict.log")
    return seconds, usage.ru_maxrss / 1024


def main() -> int:
    """Run every measurement and print the report; exit 1 when a target is missed."""
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # keep the report in order with the script's log lines
    os.chdir(REPO_ROOT)
    listings = pd.read_parquet(args.listings)
    pipeline = load_model(args.model)["pipeline"]
    measured_crossover = crossover(pipeline, listings)
    jobs = forest_of(pipeline).n_jobs
    print(f"n_jobs={jobs} is faster from {measured_crossover} rows; scoring uses it from {SERIAL_BELOW_ROWS}")
    missed = []
    formats = dict.fromkeys(["parquet", *filter(None, map(str.strip, args.formats.split(",")))])
    with tempfile.TemporaryDirectory(prefix="rentprice-bench-") as directory:
        work = Path(directory)
        inputs = {(kind, args.rows): work / f"listings-{args.rows}.{kind}" for kind in formats}
        inputs["parquet", args.small_rows] = work / f"listings-{args.small_rows}.parquet"
        for (_, rows), path in inputs.items():
            started = perf_counter()
            write_synthetic(listings, rows, args.seed, path)
            print(
                f"wrote {path.name}: {path.stat().st_size / 2**20:.0f} MiB in {perf_counter() - started:.0f}s"
            )
        before = ceiling(pipeline, inputs["parquet", args.rows])
        print(f"\nceiling: in-process pipeline.predict {before:,.0f} rows/s (measured again at the end)")
        print(f"{'input':<26} {'seconds':>8} {'rows/s':>10} {'peak RSS':>11}")
        rss, speed = {}, {}
        for (kind, rows), path in sorted(inputs.items(), key=lambda item: item[0][1]):
            seconds, rss[kind, rows] = run_script(args.model, path, work / "scored.parquet")
            speed[kind, rows] = rows / seconds
            print(f"{path.name:<26} {seconds:>8.1f} {speed[kind, rows]:>10,.0f} {rss[kind, rows]:>7.0f} MiB")
            if rss[kind, rows] > TARGET_RSS_MIB:
                missed.append(
                    f"peak RSS {rss[kind, rows]:.0f} MiB on {path.name} (target {TARGET_RSS_MIB} MiB)"
                )
        after = ceiling(pipeline, inputs["parquet", args.rows])
    best = max(before, after)
    print(f"\nceiling: {before:,.0f} rows/s before and {after:,.0f} after the script runs; using the best")
    for kind in formats:
        ratio = speed[kind, args.rows] / best
        print(f"script / ceiling on {args.rows:,} rows of {kind}: {ratio:.2f}")
        if kind == "parquet" and ratio < TARGET_RATIO:
            missed.append(f"Parquet rows/s is {ratio:.2f} of the ceiling (target {TARGET_RATIO})")
    growth = rss["parquet", args.rows] / rss["parquet", args.small_rows]
    print(
        f"\npeak RSS {args.rows:,} rows / {args.small_rows:,} rows: {growth:.2f} (flat if <= {FLAT_FACTOR})"
    )
    if growth > FLAT_FACTOR:
        missed.append(f"peak RSS grows {growth:.2f}x from {args.small_rows:,} to {args.rows:,} rows")
    for line in missed:
        print(f"MISSED: {line}")
    print("all targets met" if not missed else f"{len(missed)} target(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
