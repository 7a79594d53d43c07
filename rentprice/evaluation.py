"""Regression metrics, the grouped cross-validation, the comparison with the original approach, plot data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import RegressorMixin
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline

from rentprice.errors import ParamsError
from rentprice.logs import step
from rentprice.model import (
    build_baseline,
    build_model,
    calibrate_range,
    fit_model,
    predict_on_threads,
    range_factor,
)
from rentprice.schema import GROUP, TARGET

Folds = list[list[tuple[np.ndarray, np.ndarray]]]


def regression_metrics(actual: pd.Series, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² of rent predictions, and MAPE as a fraction."""
    return {
        "mae": round(float(mean_absolute_error(actual, predicted)), 4),
        "rmse": round(float(root_mean_squared_error(actual, predicted)), 4),
        "r2": round(float(r2_score(actual, predicted)), 6),
        "mape": round(float(mean_absolute_percentage_error(actual, predicted)), 6),
    }


def range_metrics(actual: pd.Series, low: np.ndarray, high: np.ndarray) -> dict[str, float]:
    """Coverage (share of actual rents inside [low, high]) and the median width of the range in €."""
    actual = np.asarray(actual, dtype=float)
    inside = (np.asarray(low) <= actual) & (actual <= np.asarray(high))
    return {
        "range_coverage": round(float(inside.mean()), 6),
        "range_median_width": round(float(np.median(np.asarray(high) - np.asarray(low))), 2),
    }


def grouped_folds(groups: pd.Series, cv: Mapping[str, int], source: str = "params.yaml") -> Folds:
    """Repeated GroupKFold: per repeat, ``cv["folds"]`` (train, validation) pairs of row positions.

    Rows of one group (address) are always on one side; each repeat shuffles the groups with seed
    ``cv["seed"] + repeat`` (modulo 2**32, numpy's seed range), so the folds are reproducible and
    differ between repeats. More folds than groups is a ParamsError naming ``source`` (the params file).
    """
    count = pd.Series(groups).nunique(dropna=False)
    if cv["folds"] > count:
        raise ParamsError(
            f"{source}: cv.folds: {cv['folds']} folds need at least {cv['folds']} addresses; "
            f"the train split has {count}"
        )
    positions = np.zeros(len(groups))
    return [
        list(
            GroupKFold(cv["folds"], shuffle=True, random_state=(cv["seed"] + repeat) % 2**32).split(
                positions, groups=np.asarray(groups)
            )
        )
        for repeat in range(cv["repeats"])
    ]


def out_of_fold_predictions(
    build: Callable[[], RegressorMixin],
    frame: pd.DataFrame,
    target: pd.Series,
    folds: Folds,
    source: str = "cross-validation",
) -> np.ndarray:
    """Predictions of a fresh ``build()`` model for each row by the fold that held it out.

    Shape (repeats, rows): one full set of out-of-fold predictions per repeat of ``folds``, in €
    rounded to cents.
    A hyperparameter the library rejects is a ParamsError naming ``source``.
    """
    predicted = np.full((len(folds), len(frame)), np.nan)
    for repeat, pairs in enumerate(folds):
        for fit_rows, held_out in pairs:
            model = fit_model(build(), frame.iloc[fit_rows], target.iloc[fit_rows], source)
            # on one thread: a parallel forest sums its trees in thread completion order, so the last
            # bits varied from run to run, and now and then a rent rounded to another cent
            predict_on_threads(model, 1)
            predicted[repeat, held_out] = np.round(model.predict(frame.iloc[held_out]), 2)
    return predicted


def cv_mae(target: pd.Series, predicted: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation (over repeats, ddof 1) of the MAE of out-of-fold predictions.

    ``predicted``: shape (repeats, rows), as ``out_of_fold_predictions`` gives; MAE in €.
    """
    per_repeat = [mean_absolute_error(target, row) for row in predicted]
    spread = float(np.std(per_repeat, ddof=1)) if len(per_repeat) > 1 else 0.0
    return {"mae": round(float(np.mean(per_repeat)), 4), "mae_std": round(spread, 4)}


def fit_with_cv(
    params: Mapping[str, Any], frame: pd.DataFrame, params_file: str = "params.yaml"
) -> tuple[Pipeline, dict[str, Any]]:
    """The train stage's work: cross-validate, calibrate the price range, fit on all of ``frame``.

    ``params``: the whole params file (``train``, ``cv``, ``prepare.plausible``); ``params_file``
    names it in a ParamsError (a hyperparameter the library rejects, more folds than addresses, a
    range level the out-of-fold rents cannot calibrate). Returns the fitted pipeline and the model
    file's ``cv`` (the params plus the MAE mean and std over repeats) and ``range``
    (``calibrate_range`` of the out-of-fold predictions of every repeat).
    """
    target = frame[TARGET]
    source = f"{params_file}: train"

    def build() -> Pipeline:
        return build_model(params["train"], params["prepare"]["plausible"])

    with step("grouped cross-validation") as facts:
        folds = grouped_folds(frame[GROUP], params["cv"], params_file)
        predicted = out_of_fold_predictions(build, frame, target, folds, source)
        cv = {**dict(params["cv"]), **cv_mae(target, predicted)}
        facts.update(model=params["train"]["model"], **cv)
    with step("calibrate price range") as facts:
        calibration = calibrate_range(target, predicted, params["train"]["range_level"])
        factor = range_factor(calibration["scores"], calibration["level"])
        if not np.isfinite(factor):
            raise ParamsError(unattainable_level(calibration["level"], predicted.shape, params_file))
        facts.update(level=calibration["level"], factor=round(factor, 4))
    with step("fit model") as facts:
        model = fit_model(build(), frame, target, source)
        facts.update(rows=len(frame), model=params["train"]["model"])
    return model, {"cv": cv, "range": calibration}


def unattainable_level(level: float, shape: tuple[int, int], params_file: str) -> str:
    """Why ``level`` gets no finite range from (repeats, rows) out-of-fold rents, and what to change.

    Split-conformal prediction needs ⌈(n + 1)·level⌉ <= n scores (``range_factor``), that is
    n >= level / (1 - level): 4 at 80%, 19 at 95%, 999 at 99.9%.
    """
    repeats, rows = shape
    needed = int(np.ceil(round(level / (1 - level), 9)))
    return (
        f"{params_file}: train.range_level: {level} needs at least {needed} out-of-fold rents for a "
        f"finite range; the grouped CV gives {repeats * rows} ({rows} rows x {repeats} repeats): "
        "lower it or raise cv.repeats"
    )


def gain(mae: float, baseline_mae: float) -> float:
    """The model's relative gain over the original approach: 1 - MAE / baseline MAE."""
    return round(1 - mae / baseline_mae, 6)


def baseline_comparison(
    baseline: Mapping[str, Any],
    train: pd.DataFrame,
    test: pd.DataFrame,
    cv: Mapping[str, int],
    model: Mapping[str, float],
    served: np.ndarray,
    params_file: str = "params.yaml",
) -> dict[str, float]:
    """The original approach's test and grouped-CV MAE, and the model's gain over each.

    ``model`` holds the model's ``mae`` (on ``test``), ``cv_mae`` and ``served_mae``, its MAE on the
    listings the served path prices (``served``: their positions in ``test``); the baseline is
    refit on the same train split, measured on the same rows and cross-validated on the same folds
    (``cv`` as for the model; more folds than addresses is a ParamsError naming ``params_file``).
    """
    fitted = fit_model(build_baseline(baseline), train, train[TARGET], "baseline")
    predict_on_threads(fitted, 1)  # in tree order, so the sum's last bits never vary (as in the CV)
    predicted = pd.Series(fitted.predict(test), index=test.index)
    baseline_mae = regression_metrics(test[TARGET], predicted)["mae"]
    folds = grouped_folds(train[GROUP], cv, params_file)
    oof = out_of_fold_predictions(lambda: build_baseline(baseline), train, train[TARGET], folds)
    baseline_cv = cv_mae(train[TARGET], oof)
    served_mae = regression_metrics(test[TARGET].iloc[served], predicted.iloc[served])["mae"]
    return {
        "baseline_mae": baseline_mae,
        "gain_over_baseline": gain(model["mae"], baseline_mae),
        "served_gain_over_baseline": gain(model["served_mae"], served_mae),
        "baseline_cv_mae": baseline_cv["mae"],
        "baseline_cv_mae_std": baseline_cv["mae_std"],
        "cv_gain_over_baseline": gain(model["cv_mae"], baseline_cv["mae"]),
    }


def prediction_points(actual: pd.Series, predicted: np.ndarray) -> pd.DataFrame:
    """One row per test listing: actual rent, predicted rent and residual (actual - predicted)."""
    predicted = np.round(np.asarray(predicted, dtype=float), 2)
    actual = np.asarray(actual, dtype=float)
    return pd.DataFrame(
        {"actual": actual, "predicted": predicted, "residual": np.round(actual - predicted, 2)}
    )
