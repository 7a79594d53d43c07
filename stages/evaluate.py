"""Stage evaluate: score the test split, compare with the original approach, log metrics and plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dvclive import Live

from rentprice.evaluation import prediction_points, regression_metrics
from rentprice.io import read_parquet
from rentprice.logs import run_stage, step
from rentprice.model import build_baseline, feature_importance, load_model
from rentprice.params import load_params
from rentprice.schema import TARGET


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments: every input and output path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--model", type=Path, required=True, help="model file (joblib)")
    parser.add_argument("--train", type=Path, required=True, help="train split (refits the baseline)")
    parser.add_argument("--test", type=Path, required=True, help="test split Parquet file")
    parser.add_argument(
        "--live-dir", type=Path, required=True, help="dvclive directory for metrics and plots"
    )
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace) -> None:
    """Write test metrics (with the baseline's MAE) and plot data through dvclive."""
    params = load_params(args.params)
    pipeline = load_model(args.model)["pipeline"]
    train, test = read_parquet(args.train), read_parquet(args.test)
    with step("score test split") as facts:
        predicted = pipeline.predict(test)
        metrics = regression_metrics(test[TARGET], predicted)
        facts.update(rows=len(test), **metrics)
    with step("fit and score baseline") as facts:
        baseline = build_baseline(params.baseline.model_dump()).fit(train, train[TARGET])
        baseline_mae = regression_metrics(test[TARGET], baseline.predict(test))["mae"]
        metrics |= {
            "baseline_mae": baseline_mae,
            "gain_over_baseline": round(1 - metrics["mae"] / baseline_mae, 6),
        }
        facts.update(baseline_mae=baseline_mae)
    with (
        step("write metrics and plots") as facts,
        Live(str(args.live_dir), dvcyaml=False, save_dvc_exp=False) as live,
    ):
        for name, value in metrics.items():
            live.log_metric(name, value, plot=False)
        points = prediction_points(test[TARGET], predicted)
        live.log_plot(
            "predictions",
            points,
            x="actual",
            y="predicted",
            template="scatter",
            title="Predicted vs actual rent",
            x_label="actual rent (€)",
            y_label="predicted rent (€)",
        )
        live.log_plot(
            "residuals",
            points,
            x="predicted",
            y="residual",
            template="scatter",
            title="Residuals",
            x_label="predicted rent (€)",
            y_label="actual - predicted (€)",
        )
        importance = feature_importance(pipeline).round({"importance": 6})
        live.log_plot(
            "importance",
            importance,
            x="importance",
            y="feature",
            template="bar_horizontal_sorted",
            title="Feature importance",
            x_label="impurity importance",
            y_label="feature",
        )
        facts["live_dir"] = args.live_dir


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python stages/evaluate.py`."""
    args = parse_args(argv)
    return run_stage("evaluate", lambda: evaluate(args))


if __name__ == "__main__":
    sys.exit(main())
