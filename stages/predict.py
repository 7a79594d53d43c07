"""Stage predict: score a CSV or Parquet file of listings in chunks; unscorable rows go to a rejects file.

Beside the output it writes a drift summary of the scored listings against the training data
(docs/drift.md). Without ``--input`` it scores params ``predict.input`` with
``predict.max_reject_rate``, ``predict.scheduler`` and the ``drift`` thresholds (read here,
validated, not pasted into the dvc.yaml command, so any path works: spaces, quotes, ``$``).
With a scheduler it scores a data set of files on a Dask cluster instead (docs/distributed.md).
"""

from __future__ import annotations

# First: its signal set-up (rentprice/__init__.py) must precede the seconds of the other imports.
import rentprice  # noqa: F401

# isort: split

import argparse
import sys
from pathlib import Path

from loguru import logger

from rentprice.batch import (
    CHUNK_ROWS,
    MAX_REJECT_RATE,
    Summary,
    count_rows,
    default_rejects,
    describe,
    progress_reporter,
    score_file,
)
from rentprice.drift import DEFAULT_THRESHOLDS
from rentprice.drift import describe as describe_drift
from rentprice.errors import DataError
from rentprice.io import write_json
from rentprice.logs import run_stage, step
from rentprice.params import load_params, validate_group
from rentprice.scoring import DVC_LOCK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: the model, input, output and rejects paths and the reject limit."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="model file (joblib)")
    parser.add_argument(
        "--input",
        help="listings .csv or .parquet file; - reads CSV from stdin (default: params predict.input)",
    )
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file for the defaults"
    )
    parser.add_argument("--output", required=True, help="scored rows, .csv or .parquet")
    parser.add_argument("--rejects", help="rejected rows, .csv or .parquet (default: <output>.rejects.csv)")
    parser.add_argument(
        "--max-reject-rate",
        type=share,
        help="fail, writing nothing, when more than this share of rows is rejected "
        f"(default {MAX_REJECT_RATE}; without --input, params predict.max_reject_rate)",
    )
    parser.add_argument("--chunk-rows", type=positive, default=CHUNK_ROWS, help="rows scored at a time")
    parser.add_argument(
        "--lock", type=Path, default=DVC_LOCK, help="dvc.lock to check the model's md5 against"
    )
    parser.add_argument(
        "--drift",
        type=Path,
        help="drift summary, JSON (default: <output>.drift.json, for a local output; docs/drift.md)",
    )
    for name, value in DEFAULT_THRESHOLDS.items():
        kind = int if isinstance(value, int) else float
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            help=f"drift {name} (default {value}; without --input, params drift.{name})",
        )
    parser.add_argument(
        "--scheduler",
        type=scheduler,
        help="Dask scheduler (tcp://host:8786) or local[:N]: --input is then a directory, glob or file"
        " (local or s3://), and --output and --rejects are data set directories (--rejects by default"
        " <output>.rejects)",
    )
    return parser.parse_args(argv)


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


def run(args: argparse.Namespace) -> None:
    """Fill the defaults (from params without ``--input``), then score here or on the cluster."""
    defaults = {"max_reject_rate": MAX_REJECT_RATE, **DEFAULT_THRESHOLDS}
    if args.input is None:
        params = load_params(args.params)
        args.input = params.predict.input
        args.scheduler = args.scheduler or params.predict.scheduler
        defaults = {"max_reject_rate": params.predict.max_reject_rate, **params.drift.model_dump()}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    validate_group("drift", thresholds(args), "command line (--psi-warn, --psi-alert, --min-rows)")
    if args.scheduler:  # data set directories, maybe on S3: paths stay text
        args.rejects = args.rejects or rejects_dataset(args.output)
        if args.drift is None and "://" not in args.output:  # the summary is a local file
            args.drift = Path(f"{args.output.rstrip('/')}.drift.json")
        predict_on_cluster(args)
        return
    args.output = Path(args.output)
    args.rejects = Path(args.rejects) if args.rejects else default_rejects(args.output)
    args.drift = args.drift or args.output.with_name(f"{args.output.name}.drift.json")
    predict(args)


def predict(args: argparse.Namespace) -> None:
    """Score the input in chunks into the output, rejects and drift files, or fail writing none."""
    with progress_reporter(count_rows(args.input)) as progress, step("score listings") as facts:
        summary = score_file(
            args.model,
            args.input,
            args.output,
            args.rejects,
            drift=args.drift,
            thresholds=thresholds(args),
            max_reject_rate=args.max_reject_rate,
            chunk_rows=args.chunk_rows,
            lock=args.lock,
            progress=progress,
        )
        facts.update(rows=summary.rows, scored=summary.scored, rejected=summary.rejected)
        facts["rows_per_s"] = round(summary.rows / max(summary.seconds, 1e-9))
    report(summary, args)


def predict_on_cluster(args: argparse.Namespace) -> None:
    """Score the data set on the Dask cluster ``args.scheduler`` (Dask is imported only here).

    The drift summary, a local file, is written after the data sets are committed; a drift path
    that is a folder is refused before any scoring.
    """
    from rentprice.distributed import score_dataset

    if args.drift is not None and args.drift.is_dir():
        raise DataError(f"{args.drift}: --drift is a folder; give a file path")
    summary = score_dataset(
        args.model,
        args.input,
        args.output,
        args.rejects,
        args.scheduler,
        args.max_reject_rate,
        args.chunk_rows,
        lock=args.lock,
        drift=args.drift,
    )
    if args.drift is not None:
        try:
            write_json(summary.drift.summary(thresholds(args)), args.drift)
        except OSError as error:
            raise DataError(
                f"{args.drift}: cannot write the drift summary ({error.strerror or error}); "
                f"{args.output} and {args.rejects} were written"
            ) from None
    report(summary, args)


def thresholds(args: argparse.Namespace) -> dict[str, float]:
    """The drift thresholds of this run (params ``drift``, or the command line)."""
    return {name: getattr(args, name) for name in DEFAULT_THRESHOLDS}


def report(summary: Summary, args: argparse.Namespace) -> None:
    """Log what was rejected and treated as unknown, the drift summary and what was written."""
    logger.info("rejected by field: {}", describe(summary.rejected_by_field) or "none")
    logger.info(
        "scored with the value treated as unknown: {}", describe(summary.treated_as_unknown) or "none"
    )
    logger.info("{}", describe_drift(summary.drift.summary(thresholds(args))))
    if args.drift is None:  # a cluster run writing to object storage, without --drift
        logger.info("wrote {} and {} (keep the drift summary with --drift FILE)", args.output, args.rejects)
        return
    logger.info("wrote {}, {} and {}", args.output, args.rejects, args.drift)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python stages/predict.py`."""
    args = parse_args(argv)
    return run_stage("predict", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
