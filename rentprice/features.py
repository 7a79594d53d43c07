"""Feature engineering as fitted scikit-learn transformers, so training and scoring share one code path."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, TargetEncoder

from rentprice.schema import NUMERIC_COLUMNS, YES_NO_COLUMNS, mask_implausible

GARDEN_ABSENT = "Not present"
GARDEN_PATTERN = re.compile(r"^Present \((\d+(?:\.\d+)?) m²(?:, located on the [a-z-]+)?\)$")
YES_NO = {"yes": 1.0, "no": 0.0}
#: Energy labels from worst to best; the position is the ordinal value.
ENERGY_LABELS: tuple[str, ...] = (
    "G", "F", "E", "D", "C", "B", "A", "A+", "A++", "A+++", "A++++", "A+++++",
)  # fmt: skip
#: How sources spell "no energy label": scored as unknown.
ENERGY_UNKNOWN = frozenset({"None", ""})
FACILITIES_NONE = "None"
#: The location key of a listing without a postcode or neighborhood.
LOCATION_UNKNOWN = "unknown"
#: Feature groups that params can switch on or off; the numeric columns are always used.
FEATURE_GROUPS: tuple[str, ...] = ("amenities", "garden", "energy", "facilities", "location")


def garden_area(text: object) -> float:
    """Garden size in m²: ``Present (47 m², located on the north)`` → 47, ``Not present`` → 0, else NaN."""
    if not isinstance(text, str):
        return np.nan
    text = text.strip()
    if text == GARDEN_ABSENT:
        return 0.0
    match = GARDEN_PATTERN.match(text)
    return float(match.group(1)) if match else np.nan


def yes_no(value: object) -> float:
    """``yes`` → 1, ``no`` → 0 (any case, surrounding spaces ignored), anything else NaN."""
    return YES_NO.get(value.strip().lower(), np.nan) if isinstance(value, str) else np.nan


def energy_rank(label: object) -> float:
    """Ordinal energy label, G = 0 … A+++++ = 11; unknown or missing labels are NaN."""
    if not isinstance(label, str):
        return np.nan
    label = label.strip().upper()
    return float(ENERGY_LABELS.index(label)) if label in ENERGY_LABELS else np.nan


def facility_list(text: object) -> list[str]:
    """Split a comma-separated facilities text into its items; ``None`` means no facilities."""
    if not isinstance(text, str) or text.strip() == FACILITIES_NONE:
        return []
    return [item.strip() for item in text.split(",") if item.strip()]


def postcode_number(zipcode: object) -> float:
    """The four-digit part of a Dutch postcode (``1071 HN`` → 1071), NaN when absent."""
    if not isinstance(zipcode, str):
        return np.nan
    match = re.match(r"^\s*(\d{4})", zipcode)
    return float(match.group(1)) if match else np.nan


def map_distinct(
    values: pd.Series | np.ndarray, parse: Callable[[object], Any], dtype: type = float
) -> np.ndarray:
    """``parse`` of each value as an array of ``dtype``; each distinct value is parsed once.

    When ``parse`` returns a sequence (one row of several columns), the result has a row per value.

    Listings repeat few distinct texts (yes/no, labels, districts), so a million-row batch costs a
    few hundred calls; a one-row request skips pandas' per-call overhead of ``Series.map``. Missing
    values (None, NaN) are parsed as None.
    """
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    parsed = np.array([*(parse(value) for value in distinct), parse(None)], dtype=dtype)
    return parsed[codes]  # code -1 (missing) picks the last entry


def _map_columns(frame: pd.DataFrame, parse: Callable[[object], float]) -> np.ndarray:
    return np.column_stack([map_distinct(frame[name], parse) for name in frame.columns])


def garden_features(frame: pd.DataFrame) -> np.ndarray:
    """Garden m² for each garden column."""
    return _map_columns(frame, garden_area)


def yes_no_features(frame: pd.DataFrame) -> np.ndarray:
    """0/1 for each yes/no column."""
    return _map_columns(frame, yes_no)


def energy_features(frame: pd.DataFrame) -> np.ndarray:
    """Ordinal energy label for each energy column."""
    return _map_columns(frame, energy_rank)


def postcode_features(frame: pd.DataFrame) -> np.ndarray:
    """Numeric postcode for each postcode column: neighbouring areas have close numbers."""
    return _map_columns(frame, postcode_number)


def district_key(zipcode: object) -> str:
    """The postcode district (``1071 HN`` → ``1071``), LOCATION_UNKNOWN when there is none."""
    number = postcode_number(zipcode)
    return LOCATION_UNKNOWN if np.isnan(number) else str(int(number))


def neighborhood_key(neighborhood: object) -> str:
    """The neighborhood as text, LOCATION_UNKNOWN when missing."""
    return LOCATION_UNKNOWN if pd.isna(neighborhood) else str(neighborhood)


def location_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical location keys for target encoding: postcode district and neighborhood."""
    return pd.DataFrame(
        {
            "district": map_distinct(frame["zip"], district_key, object),
            "neighborhood": map_distinct(frame["neighborhood"], neighborhood_key, object),
        },
        index=frame.index,
    )


def _suffixed_names(_transformer, input_features, suffix: str) -> np.ndarray:
    return np.asarray([f"{name}{suffix}" for name in input_features], dtype=object)


class FacilitiesEncoder(TransformerMixin, BaseEstimator):
    """Multi-hot encoding of the facilities text; the vocabulary is learned on the training rows."""

    def __init__(self, min_count: int = 5):
        self.min_count = min_count

    def fit(self, frame: pd.DataFrame, y=None) -> FacilitiesEncoder:
        """Learn the facilities seen at least ``min_count`` times, sorted by name."""
        counts = pd.Series(
            [item for text in _single_column(frame) for item in facility_list(text)]
        ).value_counts()
        self.vocabulary_ = sorted(counts[counts >= self.min_count].index)
        self.n_features_in_ = 1
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """One 0/1 column per learned facility; unseen facilities are ignored.

        Each distinct facilities text is encoded once (listings repeat few of them).
        """
        return map_distinct(_single_column(frame), self._encode)

    def _encode(self, text: object) -> list[float]:
        items = set(facility_list(text))
        return [float(name in items) for name in self.vocabulary_]

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``facility_<name>`` for each learned facility."""
        return np.asarray(
            [f"facility_{name.lower().replace(' ', '_')}" for name in self.vocabulary_], dtype=object
        )


def _single_column(frame: pd.DataFrame | np.ndarray) -> pd.Series | np.ndarray:
    return frame.iloc[:, 0] if isinstance(frame, pd.DataFrame) else np.asarray(frame)[:, 0]


def stateless_transformer(func, suffix: str) -> FunctionTransformer:
    """A parameter-free transformer whose output columns are the input names plus ``suffix``."""
    return FunctionTransformer(func, feature_names_out=partial(_suffixed_names, suffix=suffix))


def location_encoder(seed: int) -> Pipeline:
    """Seeded, cross-fitted target encoding of postcode district and neighborhood (fitted on train only)."""
    return Pipeline(
        [
            ("keys", FunctionTransformer(location_keys, feature_names_out=_location_key_names)),
            ("target", TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=seed))),
        ]
    )


def _location_key_names(_transformer, _input_features) -> np.ndarray:
    return np.asarray(["district", "neighborhood"], dtype=object)


def feature_transformers(groups: Mapping[str, bool], seed: int, facilities_min_count: int) -> list[tuple]:
    """ColumnTransformer entries: the numeric columns plus every switched-on feature group."""
    unknown = set(groups) - set(FEATURE_GROUPS)
    if unknown:
        raise ValueError(f"unknown feature group(s): {', '.join(sorted(unknown))}")
    by_group = {
        "amenities": [("amenities", stateless_transformer(yes_no_features, ""), list(YES_NO_COLUMNS))],
        "garden": [("garden", stateless_transformer(garden_features, "_m2"), ["garden"])],
        "energy": [("energy", stateless_transformer(energy_features, "_rank"), ["energy"])],
        "facilities": [("facilities", FacilitiesEncoder(min_count=facilities_min_count), ["facilities"])],
        "location": [
            ("postcode", stateless_transformer(postcode_features, "_number"), ["zip"]),
            ("location", location_encoder(seed), ["zip", "neighborhood"]),
        ],
    }
    entries: list[tuple] = [("numeric", "passthrough", list(NUMERIC_COLUMNS))]
    for group in FEATURE_GROUPS:
        if groups.get(group, False):
            entries += by_group[group]
    return entries


class ImplausibleToMissing(TransformerMixin, BaseEstimator):
    """Turn out-of-bounds numeric values (placeholders such as year 1005) into missing values."""

    def __init__(self, bounds: Mapping[str, Sequence[float]] | None = None):
        self.bounds = bounds

    def fit(self, frame: pd.DataFrame, y=None) -> ImplausibleToMissing:
        """Nothing to learn."""
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Copy of ``frame`` with implausible values set to NaN."""
        return mask_implausible(frame, self.bounds or {})


def feature_columns(transformer: ColumnTransformer) -> list[str]:
    """Readable names of a fitted ColumnTransformer's output columns, without group prefixes."""
    return [name.split("__")[-1] for name in transformer.get_feature_names_out()]
