"""The model factory and the model file: one fitted scikit-learn Pipeline plus the metadata a scorer needs."""

from __future__ import annotations

import platform
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from rentprice.errors import ModelError, ParamsError
from rentprice.features import ImplausibleToMissing, ListingFeatures, feature_columns, switched_on
from rentprice.io import atomic_path
from rentprice.schema import FEATURE_COLUMNS

PROJECT = "rentprice"
#: 2: the features step is one ``ListingFeatures`` (format 1 files used a ColumnTransformer).
MODEL_FORMAT = 2
#: The original project's model: a RandomForest on nine features, no location, no cleaning.
BASELINE_NUMERIC = ["area", "construction_year", "bedrooms"]


def build_model(train: Mapping[str, Any], plausible: Mapping[str, list[float]]) -> Pipeline:
    """The rent model: clean → features → RandomForest (optionally learning log(rent))."""
    forest = RandomForestRegressor(
        n_estimators=train["n_estimators"],
        max_depth=train["max_depth"],
        min_samples_leaf=train["min_samples_leaf"],
        max_features=train["max_features"],
        random_state=train["seed"],
        n_jobs=train["n_jobs"],
    )
    regressor = (
        TransformedTargetRegressor(regressor=forest, func=np.log, inverse_func=np.exp)
        if train["log_target"]
        else forest
    )
    features = ListingFeatures(
        groups=switched_on(train["features"]),
        seed=train["seed"],
        facilities_min_count=train["facilities_min_count"],
    )
    return Pipeline(
        [("clean", ImplausibleToMissing(dict(plausible))), ("features", features), ("regressor", regressor)]
    )


def fit_model(model: Pipeline, frame: pd.DataFrame, target: pd.Series, source: str) -> Pipeline:
    """Fit ``model``; a hyperparameter scikit-learn rejects is a one-line ParamsError naming ``source``."""
    try:
        return model.fit(frame, target)
    except InvalidParameterError as error:
        raise ParamsError(f"{source}: {error}") from None


def build_baseline(baseline: Mapping[str, Any]) -> Pipeline:
    """The original project's approach, refit on the same split so every experiment shows its gain."""
    features = ListingFeatures(numeric=BASELINE_NUMERIC, groups=("garden", "amenities"))
    forest = RandomForestRegressor(
        n_estimators=baseline["n_estimators"], random_state=baseline["seed"], n_jobs=baseline["n_jobs"]
    )
    return Pipeline([("features", features), ("regressor", forest)])


def forest_of(pipeline: Pipeline) -> RandomForestRegressor:
    """The fitted forest inside a model pipeline, whether or not it learns log(rent)."""
    regressor = pipeline.named_steps["regressor"]
    return regressor.regressor_ if isinstance(regressor, TransformedTargetRegressor) else regressor


def feature_importance(pipeline: Pipeline) -> pd.DataFrame:
    """Impurity importance of each model feature, largest first (ties by name)."""
    frame = pd.DataFrame(
        {
            "feature": feature_columns(pipeline.named_steps["features"]),
            "importance": forest_of(pipeline).feature_importances_,
        }
    )
    return frame.sort_values(["importance", "feature"], ascending=[False, True], ignore_index=True)


def environment_versions() -> dict[str, str]:
    """Versions of the libraries whose pickles the model file depends on."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
    }


def save_model(pipeline: Pipeline, path: Path, metadata: Mapping[str, Any]) -> None:
    """Write the fitted pipeline and its metadata as one compressed joblib file, atomically."""
    bundle = {
        "project": PROJECT,
        "format": MODEL_FORMAT,
        "input_columns": list(FEATURE_COLUMNS),
        "versions": environment_versions(),
        **metadata,
        "pipeline": pipeline,
    }
    with atomic_path(path) as temporary:
        joblib.dump(bundle, temporary, compress=3)


def load_model(path: Path) -> dict[str, Any]:
    """Load a model file written by ``save_model``; anything else is a one-line ModelError.

    A model file is a pickle, i.e. code: load only files from this project's own remote.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (run `dvc pull {path}` or `dvc repro train`)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            bundle = joblib.load(path)
    except InconsistentVersionWarning as warning:
        raise ModelError(
            f"{path}: trained with scikit-learn {warning.original_sklearn_version}, "
            f"this environment has {sklearn.__version__}; retrain with `dvc repro train`"
        ) from None
    except (AttributeError, ImportError) as error:
        # the pickle names a class or function this code does not have: older or newer code wrote it
        raise ModelError(
            f"{path}: written by another version of this project's code ({error.__class__.__name__}); "
            "retrain with `dvc repro train`, or score it with the code of the commit that trained it"
        ) from None
    except Exception as error:
        raise ModelError(f"{path}: not a model file of this project ({error.__class__.__name__})") from None
    if not isinstance(bundle, dict) or bundle.get("project") != PROJECT or "pipeline" not in bundle:
        raise ModelError(f"{path}: not a model file of this project")
    if bundle.get("format") != MODEL_FORMAT:
        raise ModelError(
            f"{path}: model format {bundle.get('format')} is not supported (expected {MODEL_FORMAT})"
        )
    return bundle
