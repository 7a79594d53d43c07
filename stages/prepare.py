"""Stage prepare: deduplicate, check, mask placeholder values and split train/test by address."""

from __future__ import annotations

# First: its signal set-up (rentprice/__init__.py) must precede the seconds of the other imports.
import rentprice  # noqa: F401

# isort: split

import argparse
import sys
from pathlib import Path

from rentprice.dataset import clean_listings, group_split
from rentprice.io import read_parquet, write_json, write_parquet
from rentprice.logs import run_stage, step
from rentprice.params import load_params


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: every input and output path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--input", type=Path, required=True, help="raw listings Parquet file")
    parser.add_argument("--train", type=Path, required=True, help="train split output")
    parser.add_argument("--test", type=Path, required=True, help="test split output")
    parser.add_argument("--report", type=Path, required=True, help="data report JSON output")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace) -> None:
    """Read the raw snapshot, clean it, split it by address and write splits and report."""
    params = load_params(args.params)
    with step("read raw snapshot") as facts:
        raw = read_parquet(args.input)
        facts["rows"] = len(raw)
    with step("clean and check") as facts:
        kept, report = clean_listings(
            raw, params.checks.model_dump(), params.prepare.plausible, str(args.input)
        )
        facts.update(report)
    with step("split by address") as facts:
        train, test = group_split(kept, params.prepare.test_size, params.prepare.seed)
        report |= {"train_rows": len(train), "test_rows": len(test)}
        facts.update(train_rows=len(train), test_rows=len(test))
    write_parquet(train, args.train)
    write_parquet(test, args.test)
    write_json(report, args.report)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python stages/prepare.py`."""
    args = parse_args(argv)
    return run_stage("prepare", lambda: prepare(args))


if __name__ == "__main__":
    sys.exit(main())
