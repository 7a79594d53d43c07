"""Benchmark batch scoring: stages/predict.py end to end against the in-process ceiling, and its memory.

Makes synthetic inputs by resampling the real listings (area jittered by up to 10% and rounded
to 0.1 m², 0.1% of rows without an area, so the reject path runs too) in a temporary directory,
then reports in one run:

- the ceiling: rows/s of ``pipeline.predict`` on rows already in memory (at most 1M rows),
  measured before and after each script run, since other load on the machine shifts it; and
  beside it rows/s of the script's own scoring (``rentprice.scoring.score``: the pipeline's
  predict plus the price range) on the same rows;
- rows/s of the script end to end (child process, best of ``--repeats`` runs) per input format,
  and its ratio to the best ceiling in wall-clock time and in CPU time (the CPU ratio is what
  the script's overhead costs, whatever else runs on the machine), and its ratio to its own
  scoring in memory (what reading, validating and writing cost);
- peak RSS of the script on ``--rows`` rows and, in one more Parquet run, on ``--memory-rows``
  rows (10 times as many by default): memory must not grow with the input.

Resampled rows repeat (about 196,000 distinct rows in 1M); ``--distinct`` keeps the area unrounded
so that no two rows are alike. Exits 1 when a target is missed. Run from the repository root:
``make bench``, or ``python bench/predict.py --distinct``.

With ``--scheduler local:1,local:2`` it measures scoring on Dask LocalClusters instead
(docs/distributed.md): a data set of ``--files`` Parquet files holding ``--rows`` rows in all, scored
by ``rentprice.distributed.score_dataset`` on each cluster (rows/s, and the ratio of the last
cluster's to the first's: the scaling), by the streaming script on the same rows in one file in the
same run, and each worker's peak RSS on ``--rows`` and on ``--memory-rows`` rows (2 x by default):
memory per worker must not grow with the data set.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from rentprice.model import load_model  # noqa: E402
from rentprice.scoring import score  # noqa: E402

SCRIPT = REPO_ROOT / "stages" / "predict.py"
CEILING_ROWS = 1_000_000
WRITE_ROWS = 500_000
MISSING_AREA_SHARE = 0.001
TARGET_RATIO = 0.8
TARGET_RSS_MIB = 1024
#: Peak RSS on --memory-rows may exceed peak RSS on --rows by this factor at most ("flat").
FLAT_FACTOR = 1.1


def parse_args() -> argparse.Namespace:
    """Command-line arguments: sizes, formats and the real files to resample and score with."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the input of each format")
    parser.add_argument(
        "--memory-rows",
        type=int,
        help="rows of the Parquet input whose peak RSS is compared (default 10 x rows)",
    )
    parser.add_argument("--formats", default="parquet,csv", help="input formats to score end to end")
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "model.joblib")
    parser.add_argument("--listings", type=Path, default=REPO_ROOT / "data" / "raw" / "listings.parquet")
    parser.add_argument("--repeats", type=int, default=2, help="script runs per format (the best counts)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="keep the jittered area unrounded, so no two rows are alike",
    )
    parser.add_argument(
        "--scheduler",
        help="local:N clusters to compare, comma-separated (local:1,local:2), instead of the file benchmark",
    )
    parser.add_argument("--files", type=int, default=8, help="files of the data set for --scheduler")
    args = parser.parse_args()
    args.memory_rows = args.memory_rows or (2 if args.scheduler else 10) * args.rows
    return args


def synthetic_chunks(listings: pd.DataFrame, rows: int, seed: int, distinct: bool) -> Iterator[pd.DataFrame]:
    """``rows`` listings resampled from the real ones with jittered area and an id, in chunks.

    The area is rounded to 0.1 m², so rows repeat; ``distinct`` keeps it unrounded, so none do.
    """
    rng = np.random.default_rng(seed)
    features = listings.drop(columns="rent")
    for start in range(0, rows, WRITE_ROWS):
        size = min(WRITE_ROWS, rows - start)
        chunk = features.iloc[rng.integers(0, len(features), size)].reset_index(drop=True)
        area = chunk["area"] * rng.uniform(0.9, 1.1, size)
        area = area if distinct else area.round(1)
        chunk["area"] = area.where(rng.random(size) >= MISSING_AREA_SHARE)
        chunk.insert(0, "listing_id", np.arange(start, start + size))
        yield chunk


def write_synthetic(listings: pd.DataFrame, rows: int, seed: int, distinct: bool, path: Path) -> None:
    """Write the synthetic listings as Parquet or CSV, chunk by chunk."""
    if path.suffix == ".parquet":
        writer = None
        for chunk in synthetic_chunks(listings, rows, seed, distinct):
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        writer.close()
    else:
        for number, chunk in enumerate(synthetic_chunks(listings, rows, seed, distinct)):
            chunk.to_csv(path, mode="a" if number else "w", header=not number, index=False)


@dataclass(frozen=True)
class Run:
    """Wall and CPU (user + system, all threads) seconds of one measurement over ``rows`` rows."""

    rows: int
    wall: float
    cpu: float

    def speed(self) -> float:
        """Rows per wall-clock second."""
        return self.rows / self.wall

    def cpu_speed(self) -> float:
        """Rows per CPU second: what the work costs, whatever else runs on the machine."""
        return self.rows / self.cpu


def cpu_seconds() -> float:
    """CPU seconds this process has used so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_memory(predict: Callable[[pd.DataFrame], object], frame: pd.DataFrame) -> Run:
    """An in-process ``predict`` of rows already in memory."""
    wall, cpu = perf_counter(), cpu_seconds()
    predict(frame)
    return Run(len(frame), perf_counter() - wall, cpu_seconds() - cpu)


#: Runs a command and prints its CPU seconds and peak RSS (KiB). A child forked straight from this
#: large process would report this process's RSS as its own peak (Linux carries the high-water
#: mark across fork and exec), so the script is started from this small launcher instead.
LAUNCHER = """
import os, sys
devnull = os.open(os.devnull, os.O_WRONLY)
pid = os.fork()
if pid == 0:
    os.dup2(devnull, 2)  # the script's log lines are in logs/predict.log
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_script(model: Path, source: Path, rows: int, output: Path) -> tuple[Run, float]:
    """`stages/predict.py` scoring ``source`` end to end in a child process, and its peak RSS in MiB."""
    arguments = [sys.executable, str(SCRIPT), "--model", str(model), "--input", str(source)]
    started = perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *arguments, "--output", str(output)], capture_output=True, text=True
    )
    wall = perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(arguments)} failed (exit code {result.returncode}): see logs/predict.log")
    cpu, maxrss = result.stdout.split()
    return Run(rows, wall, float(cpu)), int(maxrss) / 1024


TABLE_HEADER = ("input", "seconds", "rows/s", "ratio", "cpu", "own", "peak RSS")


def table_row(name: str, run: Run, peak_mib: float, references: tuple[Run, Run, Run]) -> str:
    """One script run: seconds, rows/s, its ratios to the fastest in-memory runs, and its peak RSS.

    ``references``: the fastest ceiling in wall-clock time, the fastest in CPU time, and the fastest
    run of the script's own scoring in memory.
    """
    best, best_cpu, best_own = references
    cells = (
        name,
        f"{run.wall:.1f}",
        f"{run.speed():,.0f}",
        f"{run.speed() / best.speed():.2f}",
        f"{run.cpu_speed() / best_cpu.cpu_speed():.2f}",
        f"{run.speed() / best_own.speed():.2f}",
        f"{peak_mib:.0f} MiB",
    )
    return "{:<34} {:>8} {:>9} {:>6} {:>5} {:>5} {:>9}".format(*cells)


def main() -> int:
    """Run every measurement and print the report; exit 1 when a target is missed."""
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    os.chdir(REPO_ROOT)
    listings = pd.read_parquet(args.listings)
    if args.scheduler:
        return cluster_benchmark(args, listings)
    model = load_model(args.model)
    pipeline = model["pipeline"]

    def own_scoring(frame: pd.DataFrame) -> pd.DataFrame:
        return score(model, frame)

    formats = list(dict.fromkeys(["parquet", *filter(None, map(str.strip, args.formats.split(",")))]))
    missed, rss = [], {}
    with tempfile.TemporaryDirectory(prefix="rentprice-bench-") as directory:
        work = Path(directory)
        one = work / "listings-1.parquet"
        inputs = {kind: work / f"listings-{args.rows}.{kind}" for kind in formats}
        large = work / f"listings-{args.memory_rows}.parquet"
        sizes = [(1, one), *((args.rows, path) for path in inputs.values()), (args.memory_rows, large)]
        for rows, path in sizes:
            started = perf_counter()
            write_synthetic(listings, rows, args.seed, args.distinct, path)
            print(
                f"wrote {path.name}: {path.stat().st_size / 2**20:.0f} MiB in {perf_counter() - started:.0f}s"
            )
        frame = next(pq.ParquetFile(inputs["parquet"]).iter_batches(batch_size=CEILING_ROWS)).to_pandas()
        fixed = min(run_script(args.model, one, 1, work / "scored.parquet")[0].wall for _ in range(2))
        ceilings, owns, scripts = [in_memory(pipeline.predict, frame)], [in_memory(own_scoring, frame)], {}
        for kind, path in inputs.items():
            for _ in range(args.repeats):
                run, peak = run_script(args.model, path, args.rows, work / "scored.parquet")
                scripts[kind] = max(scripts.get(kind, run), run, key=Run.speed)
                rss[kind] = max(rss.get(kind, 0), peak)
                ceilings.append(in_memory(pipeline.predict, frame))
                owns.append(in_memory(own_scoring, frame))
        memory_run, rss["memory"] = run_script(args.model, large, args.memory_rows, work / "scored.parquet")
    best, best_own = max(ceilings, key=Run.speed), max(owns, key=Run.speed)
    print(f"\nin memory, {len(frame):,} rows, measured before and after each script run (rows/s):")
    print(f"  ceiling, pipeline.predict: {', '.join(f'{run.speed():,.0f}' for run in ceilings)}")
    print(
        f"  the script's scoring, rentprice.scoring.score: {', '.join(f'{run.speed():,.0f}' for run in owns)}"
    )
    print(
        f"script: best of {args.repeats} runs; ratio = script / best ceiling, in wall-clock and in CPU time;"
        " own = script / its best scoring in memory (what reading, validating, writing and start-up cost)"
    )
    best_cpu = max(ceilings, key=Run.cpu_speed)
    print("{:<34} {:>8} {:>9} {:>6} {:>5} {:>5} {:>9}".format(*TABLE_HEADER))
    for kind, run in scripts.items():
        print(table_row(inputs[kind].name, run, rss[kind], (best, best_cpu, best_own)))
    print(table_row(f"{large.name} (1 run)", memory_run, rss["memory"], (best, best_cpu, best_own)))
    ratio = scripts["parquet"].speed() / best.speed()
    if ratio < TARGET_RATIO:
        missed.append(f"Parquet rows/s is {ratio:.2f} of the ceiling (target {TARGET_RATIO})")
    print(
        f"\nfixed cost of a run (start-up, imports, model load; best of 2 runs on {one.name}): {fixed:.1f}s"
    )
    if scripts["parquet"].wall > fixed:
        loop = args.rows / (scripts["parquet"].wall - fixed)
        print(
            f"without it, the Parquet ratio would be {loop / best.speed():.2f}"
            f" (own {loop / best_own.speed():.2f}): rows/s of the chunk loop / in memory"
        )
    for name, peak in rss.items():
        if peak > TARGET_RSS_MIB:
            missed.append(f"peak RSS {peak:.0f} MiB scoring {name} input (target {TARGET_RSS_MIB} MiB)")
    growth = rss["memory"] / rss["parquet"]
    print(
        f"\npeak RSS {args.memory_rows:,} rows / {args.rows:,} rows: {growth:.2f} (flat if <= {FLAT_FACTOR})"
    )
    if growth > FLAT_FACTOR:
        missed.append(f"peak RSS grows {growth:.2f}x from {args.rows:,} to {args.memory_rows:,} rows")
    for line in missed:
        print(f"MISSED: {line}")
    print("all targets met" if not missed else f"{len(missed)} target(s) missed")
    return 1 if missed else 0


#: local:2 must score at least this many times the rows/s of local:1 (issue 16, on 2 cores).
TARGET_SCALING = 1.7


def write_dataset(listings: pd.DataFrame, args: argparse.Namespace, rows: int, directory: Path) -> Path:
    """``rows`` synthetic listings as ``args.files`` Parquet files in ``directory`` and as one file."""
    directory.mkdir()
    single = directory.with_suffix(".parquet")
    per_file = -(-rows // args.files)
    writer = None
    for number in range(args.files):
        size = min(per_file, rows - number * per_file)
        if size <= 0:
            break
        path = directory / f"part-{number:03d}.parquet"
        write_synthetic(listings, size, args.seed + number, args.distinct, path)
        table = pq.read_table(path)
        writer = writer or pq.ParquetWriter(single, table.schema)
        writer.write_table(table, row_group_size=WRITE_ROWS)
    writer.close()
    return single


def cluster_run(scheduler: str, model: Path, dataset: Path, rows: int, work: Path) -> tuple[Run, list[float]]:
    """``score_dataset`` on a new LocalCluster: wall time (start-up excluded), workers' peak RSS (MiB)."""
    from distributed import Client, LocalCluster

    from rentprice.distributed import local_workers, score_dataset

    workers = local_workers(scheduler)
    if workers is None:
        sys.exit(f"--scheduler {scheduler}: the benchmark starts its own clusters; give local:N")
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        started = perf_counter()
        score_dataset(
            model, str(dataset), str(work / "out"), str(work / "out.rejects"), cluster.scheduler_address
        )
        wall = perf_counter() - started
        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return Run(rows, wall, float("nan")), sorted(peaks.values())


def cluster_benchmark(args: argparse.Namespace, listings: pd.DataFrame) -> int:
    """Rows/s per LocalCluster and of the streaming script on the same rows; peak RSS per worker."""
    from rentprice.logs import setup_logging

    schedulers = [name.strip() for name in args.scheduler.split(",") if name.strip()]
    setup_logging("bench-predict")
    missed = []
    with tempfile.TemporaryDirectory(prefix="rentprice-bench-") as directory:
        work = Path(directory)
        started = perf_counter()
        single = write_dataset(listings, args, args.rows, work / "listings")
        write_dataset(listings, args, args.memory_rows, work / "listings-large")
        print(
            f"wrote {args.rows:,} and {args.memory_rows:,} rows in {args.files} files each"
            f" ({perf_counter() - started:.0f}s)"
        )
        streaming, streaming_rss = run_script(args.model, single, args.rows, work / "scored.parquet")
        runs = {
            name: cluster_run(name, args.model, work / "listings", args.rows, work) for name in schedulers
        }
        large, large_peaks = cluster_run(
            schedulers[-1], args.model, work / "listings-large", args.memory_rows, work
        )
    print(
        f"\n{args.rows:,} rows in {args.files} Parquet files; the streaming script's time includes its"
        " start-up (imports, model load), the clusters' excludes their start-up (a few seconds)"
    )
    print(f"{'scorer':<28} {'seconds':>8} {'rows/s':>9} {'vs streaming':>12} {'peak RSS per worker':>22}")
    print(
        f"{'streaming script, 1 file':<28} {streaming.wall:>8.1f} {streaming.speed():>9,.0f} {1:>12.2f}"
        f" {streaming_rss:>18.0f} MiB"
    )
    for name, (run, peaks) in runs.items():
        print(
            f"{name:<28} {run.wall:>8.1f} {run.speed():>9,.0f} {run.speed() / streaming.speed():>12.2f}"
            f" {', '.join(f'{peak:.0f}' for peak in peaks):>18} MiB"
        )
    first, last = runs[schedulers[0]][0], runs[schedulers[-1]][0]
    scaling = last.speed() / first.speed()
    print(f"scaling {schedulers[-1]} / {schedulers[0]}: {scaling:.2f}x (target {TARGET_SCALING}x)")
    if schedulers[0] == "local:1" and schedulers[-1] == "local:2" and scaling < TARGET_SCALING:
        missed.append(f"scaling {scaling:.2f}x (target {TARGET_SCALING}x)")
    growth = max(large_peaks) / max(runs[schedulers[-1]][1])
    print(
        f"{schedulers[-1]} on {args.memory_rows:,} rows: {large.speed():,.0f} rows/s, peak RSS per worker"
        f" {', '.join(f'{peak:.0f}' for peak in large_peaks)} MiB: {growth:.2f}x its peak on {args.rows:,}"
        f" (flat if <= {FLAT_FACTOR})"
    )
    if growth > FLAT_FACTOR:
        missed.append(
            f"peak RSS per worker grows {growth:.2f}x from {args.rows:,} to {args.memory_rows:,} rows"
        )
    for line in missed:
        print(f"MISSED: {line}")
    print("all targets met" if not missed else f"{len(missed)} target(s) missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
