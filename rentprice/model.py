"""The model factory and the model file: one fitted scikit-learn Pipeline plus the metadata a scorer needs."""

from __future__ import annotations

import platform
import re
import warnings
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from catboost import CatBoostError, CatBoostRegressor
from catboost.version import VERSION as CATBOOST_VERSION
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import RandomForestRegressor, VotingRegressor
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from rentprice.errors import ModelError, ParamsError
from rentprice.features import (
    ImplausibleToMissing,
    ListingFeatures,
    categorical_columns,
    feature_columns,
    switched_on,
)
from rentprice.io import atomic_path
from rentprice.schema import FEATURE_COLUMNS

PROJECT = "rentprice"
#: 3: a model family per params and a calibrated price range (``range``); 2: the features step is one
#: ``ListingFeatures`` (format 1 files used a ColumnTransformer).
MODEL_FORMAT = 3
#: The original project's model: a RandomForest on nine features, no location, no cleaning.
BASELINE_NUMERIC = ["area", "construction_year", "bedrooms"]


def build_model(train: Mapping[str, Any], plausible: Mapping[str, list[float]]) -> Pipeline:
    """The rent model: clean → features → the regressor of family ``train["model"]``.

    Families (MODEL_FAMILIES), each with its own hyperparameters under ``train.<family>``:
    ``random_forest`` (scikit-learn, location target-encoded) and ``catboost`` (location as
    categorical features, encoded by CatBoost's ordered target statistics; the mean of one model
    per target in ``train.catboost.targets``). With ``log_target`` the regressors learn the log of
    their target.
    """
    family = train["model"]
    if family not in MODEL_FAMILIES:
        raise ParamsError(f"train.model: must be one of {', '.join(MODEL_FAMILIES)}, got {family!r}")
    groups = switched_on(train["features"])
    encoding = "categorical" if family == "catboost" else "target"
    features = ListingFeatures(
        groups=groups,
        seed=train["seed"],
        facilities_min_count=train["facilities_min_count"],
        location_encoding=encoding,
    )
    regressor = MODEL_FAMILIES[family](train[family], train, categorical_columns(groups, encoding))
    return Pipeline(
        [("clean", ImplausibleToMissing(dict(plausible))), ("features", features), ("regressor", regressor)]
    )


def random_forest(hyper: Mapping[str, Any], train: Mapping[str, Any], categorical: list[str]) -> Any:
    """scikit-learn's RandomForestRegressor with ``train.random_forest`` hyperparameters."""
    forest = RandomForestRegressor(
        n_estimators=train["n_estimators"],
        max_depth=hyper["max_depth"],
        min_samples_leaf=hyper["min_samples_leaf"],
        max_features=hyper["max_features"],
        random_state=train["seed"],
        n_jobs=train["n_jobs"],
    )
    return of_rent(forest, train["log_target"])


def of_rent(regressor: Any, log: bool) -> Any:
    """``regressor`` learning the rent, or its log."""
    return (
        TransformedTargetRegressor(regressor=regressor, func=np.log, inverse_func=np.exp)
        if log
        else regressor
    )


class PerAreaRegressor(RegressorMixin, BaseEstimator):
    """A regressor of the rent that learns the rent per m² (or its log) with ``regressor``.

    Prices per m² vary less across apartment sizes than rents; the model predicts rent / area and
    multiplies back. ``features`` must be a DataFrame with an ``area`` column (m², positive).
    """

    def __init__(self, regressor: Any = None, log: bool = True, area: str = "area"):
        self.regressor = regressor
        self.log = log
        self.area = area

    def fit(self, features: pd.DataFrame, y: pd.Series) -> PerAreaRegressor:
        """Fit a clone of ``regressor`` on (log) rent / area."""
        per_m2 = np.asarray(y, dtype=float) / features[self.area].to_numpy(dtype=float)
        self.regressor_ = clone(self.regressor).fit(features, np.log(per_m2) if self.log else per_m2)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Predicted rent in €: the predicted rent per m² times the area."""
        per_m2 = np.asarray(self.regressor_.predict(features), dtype=float)
        return (np.exp(per_m2) if self.log else per_m2) * features[self.area].to_numpy(dtype=float)


#: What a catboost model can learn (params ``train.catboost.targets``); the family predicts their mean.
CATBOOST_TARGETS: tuple[str, ...] = ("rent", "rent_per_m2")


def catboost(hyper: Mapping[str, Any], train: Mapping[str, Any], categorical: list[str]) -> Any:
    """CatBoost's gradient-boosted trees with ``train.catboost`` hyperparameters, silent and file-less.

    One model per target in ``hyper["targets"]`` (CATBOOST_TARGETS), their predictions averaged by
    scikit-learn's VotingRegressor. ``categorical`` names the feature columns CatBoost encodes
    itself (ordered target statistics).
    """
    targets = list(hyper["targets"])
    if not targets or set(targets) - set(CATBOOST_TARGETS) or len(set(targets)) != len(targets):
        raise ParamsError(
            f"train.catboost.targets: a list of distinct targets among {', '.join(CATBOOST_TARGETS)}, "
            f"got {targets}"
        )
    learners = {
        "rent": lambda: of_rent(catboost_trees(hyper, train, categorical), train["log_target"]),
        "rent_per_m2": lambda: PerAreaRegressor(
            catboost_trees(hyper, train, categorical), train["log_target"]
        ),
    }
    if len(targets) == 1:
        return learners[targets[0]]()
    return VotingRegressor([(target, learners[target]()) for target in targets])


def catboost_trees(
    hyper: Mapping[str, Any], train: Mapping[str, Any], categorical: list[str]
) -> CatBoostRegressor:
    """One CatBoostRegressor with the ``train.catboost`` hyperparameters, silent and file-less."""
    return CatBoostRegressor(
        iterations=train["n_estimators"],
        learning_rate=hyper["learning_rate"],
        depth=hyper["depth"],
        max_ctr_complexity=hyper["max_ctr_complexity"],
        loss_function="RMSE",
        random_seed=train["seed"],
        thread_count=train["n_jobs"],
        cat_features=tuple(categorical) or None,  # a tuple: scikit-learn's clone keeps it as is
        verbose=False,
        allow_writing_files=False,
    )


#: Model families params ``train.model`` selects from, each built from its ``train.<family>`` params.
MODEL_FAMILIES: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any], list[str]], Any]] = {
    "random_forest": random_forest,
    "catboost": catboost,
}


def fit_model(model: Pipeline, frame: pd.DataFrame, target: pd.Series, source: str) -> Pipeline:
    """Fit ``model`` on ``frame``'s listing columns (FEATURE_COLUMNS, the columns scoring passes).

    A hyperparameter the library rejects is a one-line ParamsError naming ``source``. CatBoost's
    run metadata is dropped (``without_run_metadata``), so a refit gives the same bytes.
    """
    try:
        model.fit(frame[list(FEATURE_COLUMNS)], target)
    except InvalidParameterError as error:
        raise ParamsError(f"{source}: {error}") from None
    except CatBoostError as error:
        # CatBoost prefixes its C++ source file and line: "catboost/.../options.cpp:128: Maximum ..."
        reason = re.sub(r"^\S+\.cpp:\d+: ", "", str(error).strip().splitlines()[0])
        raise ParamsError(f"{source}: CatBoost: {reason}") from None
    for fitted in catboost_models(model[-1]):
        without_run_metadata(fitted)
    return model


def fitted_models(regressor: Any) -> list[Any]:
    """The fitted estimators inside a fitted regressor.

    The members of a mean (VotingRegressor), the inner model of a target wrapper (``regressor_``),
    else the regressor itself.
    """
    if isinstance(regressor, VotingRegressor):
        return [model for member in regressor.estimators_ for model in fitted_models(member)]
    inner = getattr(regressor, "regressor_", None)
    return fitted_models(inner) if inner is not None else [regressor]


def catboost_models(regressor: Any) -> list[CatBoostRegressor]:
    """The fitted CatBoost models inside a fitted regressor."""
    return [model for model in fitted_models(regressor) if isinstance(model, CatBoostRegressor)]


def predict_on_threads(pipeline: Pipeline, threads: int) -> None:
    """Make a fitted model predict on ``threads`` threads, for a process that runs one task per core.

    A forest gets ``n_jobs``; a fitted CatBoost model refuses ``set_params``, so its ``predict`` is
    bound to ``thread_count=threads`` (by default CatBoost predicts on every core). A Dask worker
    calls this on its copy of the model; the rents do not depend on the thread count.
    """
    for model in fitted_models(pipeline[-1]):
        if isinstance(model, CatBoostRegressor):
            model.predict = partial(CatBoostRegressor.predict, model, thread_count=threads)
        elif "n_jobs" in model.get_params():
            model.set_params(n_jobs=threads)


def without_run_metadata(model: CatBoostRegressor) -> None:
    """Drop what CatBoost records about the run rather than the model: a random GUID, the finish time.

    Without them, fitting the same data with the same seed gives the same bytes, so `dvc repro`
    leaves dvc.lock unchanged. Predictions do not depend on them.
    """
    metadata = model.get_metadata()
    metadata["model_guid"] = PROJECT
    if "train_finish_time" in metadata:
        del metadata["train_finish_time"]


def build_baseline(baseline: Mapping[str, Any]) -> Pipeline:
    """The original project's approach, refit on the same split so every experiment shows its gain."""
    features = ListingFeatures(numeric=BASELINE_NUMERIC, groups=("garden", "amenities"))
    forest = RandomForestRegressor(
        n_estimators=baseline["n_estimators"], random_state=baseline["seed"], n_jobs=baseline["n_jobs"]
    )
    return Pipeline([("features", features), ("regressor", forest)])


def importances(regressor: Any) -> np.ndarray:
    """Share of each feature in a fitted regressor's importance; for a mean of models, the mean share.

    RandomForest: impurity importance; CatBoost: its default PredictionValuesChange.
    """
    if isinstance(regressor, VotingRegressor):
        return np.mean([importances(member) for member in regressor.estimators_], axis=0)
    if isinstance(regressor, TransformedTargetRegressor | PerAreaRegressor):
        return importances(regressor.regressor_)
    importance = np.asarray(regressor.feature_importances_, dtype=float)
    return importance / importance.sum()


def feature_importance(pipeline: Pipeline) -> pd.DataFrame:
    """Importance of each model feature (a share of the total), largest first, ties by name."""
    importance = importances(pipeline[-1])
    frame = pd.DataFrame({"feature": feature_columns(pipeline[:-1]), "importance": importance})
    return frame.sort_values(["importance", "feature"], ascending=[False, True], ignore_index=True)


def conformity_scores(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """|log(actual / predicted)| of out-of-fold predictions, sorted: the relative error of each rent.

    Relative, because errors grow with the rent: a range of ± the same share fits cheap and dear
    listings alike. Shapes: any, flattened; rents in €, positive.
    """
    ratios = np.asarray(actual, dtype=float).ravel() / np.asarray(predicted, dtype=float).ravel()
    return np.sort(np.abs(np.log(ratios)))


def calibrate_range(actual: np.ndarray, predicted: np.ndarray, level: float) -> dict[str, Any]:
    """A model file's ``range``: the level and the sorted conformity scores of out-of-fold predictions.

    ``predicted`` may hold several sets of out-of-fold predictions (repeats, rows) of the rents
    ``actual`` (rows); each set counts as its own scores.
    """
    predicted = np.asarray(predicted, dtype=float)
    actual = np.broadcast_to(np.asarray(actual, dtype=float), predicted.shape)
    return {"level": level, "scores": conformity_scores(actual, predicted)}


def range_factor(scores: np.ndarray, level: float) -> float:
    """The factor f such that [rent / f, rent * f] holds a new listing's rent with probability ≥ ``level``.

    Split-conformal prediction (Vovk et al. 2005; Lei et al. 2018, "Distribution-free predictive
    inference for regression"): the ⌈(n + 1)·level⌉-th smallest of n conformity scores, as a factor.
    ``level`` in (0, 1); a level too high for n scores gives an infinite factor.
    """
    if not 0 < level < 1:
        raise ValueError(f"range level must be between 0 and 1, got {level}")
    rank = int(np.ceil((len(scores) + 1) * level))
    return float(np.exp(scores[rank - 1])) if rank <= len(scores) else float("inf")


def price_range(rent: np.ndarray, calibration: Mapping[str, Any], level: float | None = None) -> tuple:
    """(low, high) of each predicted rent at ``level`` (default: the calibrated level), in €.

    ``calibration`` is a model file's ``range``: ``{"level", "scores"}`` (conformity_scores).
    """
    factor = range_factor(calibration["scores"], calibration["level"] if level is None else level)
    rent = np.asarray(rent, dtype=float)
    return rent / factor, rent * factor


def environment_versions() -> dict[str, str]:
    """Versions of the libraries whose pickles the model file depends on."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
        "catboost": CATBOOST_VERSION,
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
