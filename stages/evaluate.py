"""Stage evaluate: score the test split, compare with the original approach, log metrics and plot data."""

from __future__ import annotations

# First: its signal set-up (rentprice/__init__.py) must precede the seconds of the other imports.
import rentprice  # noqa: F401

# isort: split

import argparse
import sys
from pathlib import Path

from dvclive import Live

from rentprice.evaluation import baseline_comparison, prediction_points, range_metrics, regression_metrics
from rentprice.io import read_parquet
from rentprice.logs import run_stage, step
from rentprice.model import feature_importance, load_model
from rentprice.params import load_params
from rentprice.schema import TARGET
from rentprice.scoring import HIGH, LOW, PREDICTION, score, validate_listings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: every input and output path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--model", type=Path, required=True, help="model file (joblib)")
    parser.add_argument(
        "--train", type=Path, required=True, help="train split (refits and cross-validates the baseline)"
    )
    parser.add_argument("--test", type=Path, required=True, help="test split Parquet file")
    parser.add_argument(
        "--live-dir", type=Path, required=True, help="dvclive directory for metrics and plots"
    )
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace) -> None:
    """Write test and grouped-CV metrics (with the original approach's) and plot data through dvclive.

    The test split is scored through ``rentprice.scoring.score``, the code batch scoring and the
    service run. The test metrics count every test listing, so a model cannot better them by
    refusing hard listings; ``test_scored`` and ``test_rejected`` count the listings the served path
    (``validate_listings``) prices and refuses, and ``served_mae`` and ``served_gain_over_baseline``
    measure the priced ones only (the original approach on the same rows). The model's grouped-CV
    MAE is the one train measured (stored in the model file).
    """
    params = load_params(args.params)
    model = load_model(args.model)
    train, test = read_parquet(args.train), read_parquet(args.test)
    with step("score test split") as facts:
        scored = score(model, test)
        served = validate_listings(test, model).scorable.index.to_numpy()  # positions in ``test``
        metrics = regression_metrics(test[TARGET], scored[PREDICTION])
        metrics |= {"test_scored": len(served), "test_rejected": len(test) - len(served)}
        priced = regression_metrics(test[TARGET].iloc[served], scored[PREDICTION].iloc[served])
        metrics |= {"served_mae": priced["mae"]}
        metrics |= {"cv_mae": model["cv"]["mae"], "cv_mae_std": model["cv"]["mae_std"]}
        metrics |= {"range_level": model["range"]["level"]}
        metrics |= range_metrics(test[TARGET], scored[LOW], scored[HIGH])
        facts.update(metrics)
    with step("fit and cross-validate baseline") as facts:
        comparison = baseline_comparison(
            params.baseline.model_dump(),
            train,
            test,
            params.cv.model_dump(),
            metrics,
            served,
            str(args.params),
        )
        metrics |= comparison
        facts.update(comparison)
    with (
        step("write metrics and plots") as facts,
        Live(str(args.live_dir), dvcyaml=False, save_dvc_exp=False) as live,
    ):
        # dvc.yaml defines the plots (templates, titles, labels): dvclive only writes their data here
        for name, value in metrics.items():
            live.log_metric(name, value, plot=False)
        points = prediction_points(test[TARGET], scored[PREDICTION])
        live.log_plot("predictions", points, x="actual", y="predicted")
        live.log_plot("residuals", points, x="predicted", y="residual")
        importance = feature_importance(model["pipeline"]).round({"importance": 6})
        live.log_plot("importance", importance, x="importance", y="feature")
        facts["live_dir"] = args.live_dir


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python stages/evaluate.py`."""
    args = parse_args(argv)
    return run_stage("evaluate", lambda: evaluate(args))


if __name__ == "__main__":
    sys.exit(main())
