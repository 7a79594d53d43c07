"""Stage train: cross-validate and fit the rent model on the train split, calibrate its range, save it."""

from __future__ import annotations

# First: its signal set-up (rentprice/__init__.py) must precede the seconds of the other imports.
import rentprice  # noqa: F401

# isort: split

import argparse
import sys
from pathlib import Path

from rentprice.drift import training_profile
from rentprice.evaluation import fit_with_cv
from rentprice.io import file_md5, read_parquet
from rentprice.logs import run_stage, step
from rentprice.model import save_model
from rentprice.params import load_params
from rentprice.scoring import RANGES, trained_ranges


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: every input and output path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--train", type=Path, required=True, help="train split Parquet file")
    parser.add_argument("--model", type=Path, required=True, help="model file to write (joblib)")
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> None:
    """Cross-validate, fit and save the model described by the ``train`` and ``cv`` params.

    The repeated grouped CV gives both the stable MAE figure and the out-of-fold predictions on
    which the price range is calibrated (split-conformal, relative to the rent).
    """
    params = load_params(args.params)
    frame = read_parquet(args.train)
    model, fitted = fit_with_cv(params.model_dump(), frame, str(args.params))
    with step("save model") as facts:
        metadata = {"training_data_md5": file_md5(args.train), "params": params.train.model_dump(), **fitted}
        metadata[RANGES] = trained_ranges(model, frame)  # listings outside them are rejected at scoring
        metadata["drift_profile"] = training_profile(frame, params.prepare.plausible)
        save_model(model, args.model, metadata)
        facts.update(path=args.model, bytes=args.model.stat().st_size)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python stages/train.py`."""
    args = parse_args(argv)
    return run_stage("train", lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
