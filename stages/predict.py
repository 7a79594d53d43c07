"""Stage predict: score a CSV or Parquet file of listings in chunks; unscorable rows go to a rejects file.

With --scheduler, score a data set of files on a Dask cluster instead (docs/distributed.md).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from contextlib import ExitStack
from itertools import chain
from pathlib import Path
from time import perf_counter

from loguru import logger
from tqdm import tqdm

from rentprice.batch import (
    CHUNK_ROWS,
    STDIN,
    check_reject_rate,
    count_rows,
    describe,
    file_format,
    output_schemas,
    read_chunks,
    score_chunk,
    table_writer,
    use_jemalloc,
)
from rentprice.logs import run_stage, step
from rentprice.scoring import DVC_LOCK, FIELD, load_scoring_model

PROGRESS_SECONDS = 30


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: the model, input, output and rejects paths and the reject limit."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="model file (joblib)")
    parser.add_argument(
        "--input", required=True, help="listings .csv or .parquet file; - reads CSV from stdin"
    )
    parser.add_argument("--output", required=True, help="scored rows, .csv or .parquet")
    parser.add_argument("--rejects", help="rejected rows, .csv or .parquet (default: <output>.rejects.csv)")
    parser.add_argument(
        "--max-reject-rate",
        type=share,
        default=0.5,
        help="fail, writing nothing, when more than this share of rows is rejected (default 0.5)",
    )
    parser.add_argument("--chunk-rows", type=positive, default=CHUNK_ROWS, help="rows scored at a time")
    parser.add_argument(
        "--lock", type=Path, default=DVC_LOCK, help="dvc.lock to check the model's md5 against"
    )
    parser.add_argument(
        "--scheduler",
        type=scheduler,
        help="Dask scheduler (tcp://host:8786) or local[:N]: --input is then a directory, glob or file"
        " (local or s3://), --output and --rejects data set directories (default: <output>.rejects)",
    )
    args = parser.parse_args(argv)
    if args.scheduler:  # data set directories, maybe on S3: paths stay text
        args.rejects = args.rejects or rejects_dataset(args.output)
        return args
    args.output = Path(args.output)
    args.rejects = (
        Path(args.rejects) if args.rejects else args.output.with_name(f"{args.output.stem}.rejects.csv")
    )
    return args


def rejects_dataset(output: str) -> str:
    """The rejects data set beside ``output``: out → out.rejects, out.parquet → out.rejects.parquet."""
    head, dot, suffix = output.rstrip("/").rpartition(".")
    if not dot or "/" in suffix:
        return f"{output.rstrip('/')}.rejects"
    return f"{head}.rejects.{suffix}"


def scheduler(text: str) -> str | None:
    """An argparse type: a Dask scheduler; None for empty or None/null (what dvc.yaml pastes for null)."""
    return None if text.strip().lower() in ("", "none", "null") else text.strip()


def share(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def positive(text: str) -> int:
    """An argparse type: a whole number above 0."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def predict(args: argparse.Namespace) -> None:
    """Score the input in chunks into the output and rejects files, or fail writing neither."""
    for path in (args.output, args.rejects):
        file_format(path, "output")
    source = "stdin" if args.input == STDIN else args.input
    use_jemalloc()
    chunks = read_chunks(args.input, args.chunk_rows)
    first = next(chunks)
    passthrough, *schemas = output_schemas(first, source)
    chunks = chain([first], chunks)
    del first  # so each chunk is freed once scored
    model = load_scoring_model(args.model, args.lock)
    rows, scored, recovered, rejected_fields = 0, 0, Counter(), Counter()
    with step("score listings") as facts, ExitStack() as stack:
        write_scored = stack.enter_context(table_writer(args.output, schemas[0]))
        write_rejects = stack.enter_context(table_writer(args.rejects, schemas[1]))
        bar = stack.enter_context(
            tqdm(total=count_rows(args.input), unit="rows", disable=not sys.stderr.isatty())
        )
        started = last_report = perf_counter()
        for table in chunks:
            scored_rows, rejects, chunk_recovered = score_chunk(model, table, rows, passthrough, schemas)
            write_scored(scored_rows)
            write_rejects(rejects)
            rows, scored = rows + table.num_rows, scored + scored_rows.num_rows
            recovered.update(chunk_recovered)
            rejected_fields.update(rejects.column(FIELD).to_pylist())
            bar.update(table.num_rows)
            if bar.disable and perf_counter() - last_report >= PROGRESS_SECONDS:
                last_report = perf_counter()
                logger.info("progress: {} rows, {:.0f} rows/s", rows, rows / (last_report - started))
        check_reject_rate(source, rows, rejected_fields, args.max_reject_rate)
        facts.update(rows=rows, scored=scored, rejected=rows - scored)
        facts["rows_per_s"] = round(rows / max(perf_counter() - started, 1e-9))
    logger.info("rejected by field: {}", describe(rejected_fields) or "none")
    logger.info("scored with the value treated as unknown: {}", describe(recovered) or "none")
    logger.info("wrote {} and {}", args.output, args.rejects)


def predict_on_cluster(args: argparse.Namespace) -> None:
    """Score the data set on the Dask cluster ``args.scheduler`` (Dask is imported only here)."""
    from rentprice.distributed import score_dataset

    score_dataset(
        args.model,
        args.input,
        args.output,
        args.rejects,
        args.scheduler,
        args.max_reject_rate,
        args.chunk_rows,
        lock=args.lock,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python stages/predict.py`."""
    args = parse_args(argv)
    return run_stage("predict", lambda: (predict_on_cluster if args.scheduler else predict)(args))


if __name__ == "__main__":
    sys.exit(main())
