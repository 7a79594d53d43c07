"""Regression metrics and the data behind the evaluation plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)


def regression_metrics(actual: pd.Series, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² of rent predictions, and MAPE as a fraction."""
    return {
        "mae": round(float(mean_absolute_error(actual, predicted)), 4),
        "rmse": round(float(root_mean_squared_error(actual, predicted)), 4),
        "r2": round(float(r2_score(actual, predicted)), 6),
        "mape": round(float(mean_absolute_percentage_error(actual, predicted)), 6),
    }


def prediction_points(actual: pd.Series, predicted: np.ndarray) -> pd.DataFrame:
    """One row per test listing: actual rent, predicted rent and residual (actual - predicted)."""
    predicted = np.round(np.asarray(predicted, dtype=float), 2)
    actual = np.asarray(actual, dtype=float)
    return pd.DataFrame(
        {"actual": actual, "predicted": predicted, "residual": np.round(actual - predicted, 2)}
    )
