"""Feature engineering as fitted scikit-learn transformers, so training and scoring share one code path."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold
from sklearn.preprocessing import OrdinalEncoder, TargetEncoder
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from rentprice.schema import (
    ENERGY_LABELS,
    NUMERIC_COLUMNS,
    YES_NO_COLUMNS,
    mask_implausible,
    postcode_digits,
    text_key,
)

GARDEN_ABSENT = "Not present"
#: Square metres as people write them (after ``text_key``, so in any case): m², m2 or m^2.
SQUARE_METRES = r"m(?:²|2|\^2)"
#: The source's garden text, matched against its ``text_key`` (trimmed, spaces collapsed, case
#: folded): ``Present (47 m²[, located on the south-west])``, the unit spelled as SQUARE_METRES, a
#: space optional around the brackets, the number and the comma, the side with a hyphen or a space.
GARDEN_PATTERN = re.compile(
    rf"^present ?\( ?([0-9]+(?:\.[0-9]+)?) ?{SQUARE_METRES}"
    r"(?: ?, ?located on the [a-z]+(?:[- ][a-z]+)?)? ?\)$"
)
#: yes/no texts (as ``text_key``), and a storage type's booleans (Parquet, JSON) as the same answer.
YES_NO = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0}
ENERGY_RANK = {label.casefold(): float(rank) for rank, label in enumerate(ENERGY_LABELS)}
#: How sources spell "no energy label" (as ``text_key``): scored as unknown.
ENERGY_UNKNOWN = frozenset({"none", ""})
FACILITIES_NONE = "none"
FACILITY_SEPARATORS = re.compile(r"[,;]")
#: The location key of a listing without a postcode or neighborhood.
LOCATION_UNKNOWN = "unknown"
#: Feature groups that params can switch on or off; the numeric columns are always used.
FEATURE_GROUPS: tuple[str, ...] = ("amenities", "garden", "energy", "facilities", "location")


def garden_area(text: object) -> float:
    """Garden size in m²: ``Present (47 m², located on the north)`` → 47, ``Not present`` → 0.

    ``present (47m2)`` and ``Present (47 M^2)`` are 47 too (GARDEN_PATTERN); any other text is NaN.
    """
    if not isinstance(text, str):
        return np.nan
    text = text_key(text)
    if text == GARDEN_ABSENT.casefold():
        return 0.0
    match = GARDEN_PATTERN.match(text)
    return float(match.group(1)) if match else np.nan


def yes_no(value: object) -> float:
    """``yes``/``true``/True → 1, ``no``/``false``/False → 0 (any case and spacing), anything else NaN."""
    if isinstance(value, bool | np.bool_):
        return float(value)
    return YES_NO.get(text_key(value), np.nan) if isinstance(value, str) else np.nan


def energy_rank(label: object) -> float:
    """Ordinal energy label, G = 0 … A+++++ = 11; unknown or missing labels are NaN.

    Compared as ``text_key`` without any spaces: ``a +`` and ``A+`` are one label.
    """
    return ENERGY_RANK.get(text_key(label).replace(" ", ""), np.nan) if isinstance(label, str) else np.nan


def facility_list(text: object) -> list[str]:
    """Split a facilities text into its items (as ``text_key``); ``None`` means none.

    Items are separated by commas, or by semicolons (a spreadsheet's list): read as one unseen item,
    ``Shower; Lift`` would silently be scored as having no facilities.
    """
    if not isinstance(text, str):
        return []
    items = [text_key(item) for item in FACILITY_SEPARATORS.split(text)]
    return [item for item in items if item and item != FACILITIES_NONE]


def postcode_number(zipcode: object) -> float:
    """The four digits of a Dutch postcode (``schema.postcode_digits``: ``1071 HN`` → 1071), else NaN."""
    digits = postcode_digits(zipcode)
    return np.nan if digits is None else float(digits)


def factorize(values: pd.Series | np.ndarray) -> tuple[np.ndarray, Sequence[Any]]:
    """``pd.factorize(values)``: a code per value (-1 for missing) and the distinct values.

    An object Series is factorized as its numpy array: the same codes and values without building an
    Index of the distinct values, most of the cost on the few rows of a request.
    """
    if isinstance(values, pd.Series) and values.dtype == object:
        values = values.to_numpy()
    return pd.factorize(values, use_na_sentinel=True)


def map_distinct(
    values: pd.Series | np.ndarray, parse: Callable[[object], Any], dtype: type = float
) -> np.ndarray:
    """``parse`` of each value as an array of ``dtype``; each distinct value is parsed once.

    When ``parse`` returns a sequence (one row of several columns), the result has a row per value.

    Listings repeat few distinct texts (yes/no, labels, districts), so a million-row batch costs a
    few hundred calls; a one-row request skips pandas' per-call overhead of ``Series.map``. Missing
    values (None, NaN) are parsed as None.
    """
    codes, distinct = factorize(values)
    parsed = np.array([*(parse(value) for value in distinct), parse(None)], dtype=dtype)
    return parsed[codes]  # code -1 (missing) picks the last entry


def district_key(zipcode: object) -> str:
    """The postcode district (``1071 HN`` → ``1071``), LOCATION_UNKNOWN when there is none."""
    number = postcode_number(zipcode)
    return LOCATION_UNKNOWN if np.isnan(number) else str(int(number))


def district3_key(zipcode: object) -> str:
    """The first three digits of the postcode (``1071 HN`` → ``107``), LOCATION_UNKNOWN when there is none."""
    district = district_key(zipcode)
    return district if district == LOCATION_UNKNOWN else district[:3]


def neighborhood_key(neighborhood: object) -> str:
    """The neighborhood as ``text_key``, LOCATION_UNKNOWN when missing or blank."""
    if not isinstance(neighborhood, str):
        return LOCATION_UNKNOWN if pd.isna(neighborhood) else text_key(str(neighborhood))
    return text_key(neighborhood) or LOCATION_UNKNOWN


#: The location columns and their target-encoded keys, in encoding order.
LOCATION_KEYS: tuple[tuple[str, Callable[[object], str]], ...] = (
    ("zip", district_key),
    ("neighborhood", neighborhood_key),
)


def location_keys(frame: pd.DataFrame) -> np.ndarray:
    """Categorical location keys for target encoding, one row per listing: postcode district, neighborhood."""
    return np.column_stack([map_distinct(frame[name], key, object) for name, key in LOCATION_KEYS])


def target_encoded(encoder: TargetEncoder, frame: pd.DataFrame) -> np.ndarray:
    """``encoder.transform(location_keys(frame))`` for the fitted continuous-target ``encoder``.

    The learned encoding of each key, the training mean for unseen keys, looked up once per distinct
    value: TargetEncoder.transform's input checks cost milliseconds per call, the service's whole budget.
    """
    columns = []
    for (name, key), categories, encodings in zip(
        LOCATION_KEYS, encoder.categories_, encoder.encodings_, strict=True
    ):
        learned = dict(zip(categories, encodings, strict=True))
        columns.append(map_distinct(frame[name], partial(_encoding, key, learned, encoder.target_mean_)))
    return np.column_stack(columns)


def _encoding(
    key: Callable[[object], str], learned: Mapping[str, float], unseen: float, value: object
) -> float:
    return learned.get(key(value), unseen)


class FacilitiesEncoder(TransformerMixin, BaseEstimator):
    """Multi-hot encoding of the facilities text; the vocabulary is learned on the training rows.

    Kept instead of scikit-learn's CountVectorizer, which gives the same matrix: used as it is, it
    analyses every row rather than each distinct text, many times slower on a batch chunk, and it
    raises on an empty vocabulary (figures: bench/facilities.py, docs/benchmarks.md).
    """

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


def _single_column(frame: pd.DataFrame | pd.Series | np.ndarray) -> pd.Series | np.ndarray:
    """The only column of a frame or 2-D array; a Series as it is (no costly one-column frame)."""
    if isinstance(frame, pd.Series):
        return frame
    return frame.iloc[:, 0] if isinstance(frame, pd.DataFrame) else np.asarray(frame)[:, 0]


#: Feature groups parsed value by value: (input column, parser, output column) per feature.
PARSED_GROUPS: dict[str, tuple[tuple[str, Callable[[object], float], str], ...]] = {
    "amenities": tuple((name, yes_no, name) for name in YES_NO_COLUMNS),
    "garden": (("garden", garden_area, "garden_m2"),),
    "energy": (("energy", energy_rank, "energy_rank"),),
}
#: Output columns of the location group: the postcode number, then the target-encoded keys.
LOCATION_FEATURES: tuple[str, ...] = ("zip_number", "district", "neighborhood")
#: Output columns of the location group as categories (for a model with native categorical features):
#: the postcode number, then postcode district, its first three digits and neighborhood as text.
LOCATION_CATEGORIES: tuple[str, ...] = ("district", "district3", "neighborhood")
#: How ListingFeatures gives the location: target-encoded numbers, or the keys as categories.
LOCATION_ENCODINGS: tuple[str, ...] = ("target", "categorical")


def switched_on(groups: Mapping[str, bool]) -> tuple[str, ...]:
    """The feature groups ``groups`` (params ``train.features``) switches on, in FEATURE_GROUPS order."""
    _check_groups(groups)
    return tuple(group for group in FEATURE_GROUPS if groups.get(group, False))


def _check_groups(groups: Iterable[str]) -> None:
    unknown = set(groups) - set(FEATURE_GROUPS)
    if unknown:
        raise ValueError(f"unknown feature group(s): {', '.join(sorted(unknown))}")


class ListingFeatures(TransformerMixin, BaseEstimator):
    """The feature matrix of a listing frame: ``numeric`` columns as they are, then each of ``groups``.

    Groups: amenities (yes/no → 0/1), garden (m²), energy (ordinal label), facilities (multi-hot over
    the facilities seen at least ``facilities_min_count`` times in training) and location. With
    ``location_encoding="target"`` the location is the postcode number, then a seeded target encoding
    of postcode district and neighborhood, cross-fitted on the training rows, and the output is a
    float array; with ``"categorical"`` it is the postcode number, then postcode district, its first
    three digits and neighborhood as text (LOCATION_CATEGORIES), and the output is a DataFrame (with
    or without the location group), for a model with native categorical features. Each input column
    is read once, so a one-row frame costs little more than the encoders' own work.

    Because the target encoding is cross-fitted, ``fit(X).transform(X)`` differs from
    ``fit_transform(X)`` on the training rows, as for scikit-learn's own ``TargetEncoder``.
    ``transform`` does not re-check the input's columns (a request's few milliseconds): a missing
    column is a KeyError; ``rentprice.scoring.validate_listings`` checks them first.
    """

    def __init__(
        self,
        numeric: Sequence[str] = NUMERIC_COLUMNS,
        groups: Sequence[str] = FEATURE_GROUPS,
        seed: int = 0,
        facilities_min_count: int = 5,
        location_encoding: str = "target",
    ):
        self.numeric = numeric
        self.groups = groups
        self.seed = seed
        self.facilities_min_count = facilities_min_count
        self.location_encoding = location_encoding

    def fit(self, frame: pd.DataFrame, y: pd.Series) -> ListingFeatures:
        """Learn the facilities vocabulary and the location encoding from the training rows."""
        self.fit_transform(frame, y)
        return self

    def fit_transform(self, frame: pd.DataFrame, y: pd.Series) -> np.ndarray | pd.DataFrame:
        """Fit, and return the training rows' features with the location encoding cross-fitted.

        ``TargetEncoder.fit_transform`` encodes each row with folds that exclude it, so the model
        does not learn from encodings that have seen the row's own rent. With categorical locations,
        ``location_`` is an OrdinalEncoder that only records the keys seen in training
        (``categories_``, as the target encoder has them).
        """
        _check_groups(self.groups)
        if self.location_encoding not in LOCATION_ENCODINGS:
            raise ValueError(
                f"location_encoding must be one of {', '.join(LOCATION_ENCODINGS)}, "
                f"got {self.location_encoding!r}"
            )
        validate_data(self, frame, skip_check_array=True)
        self.facilities_ = (
            FacilitiesEncoder(self.facilities_min_count).fit(frame[["facilities"]])
            if "facilities" in self.groups
            else None
        )
        self.location_ = None
        encoded = None
        if "location" in self.groups and self.location_encoding == "target":
            self.location_ = TargetEncoder(
                target_type="continuous", cv=KFold(5, shuffle=True, random_state=self.seed)
            )
            encoded = self.location_.fit_transform(location_keys(frame), y)
        elif "location" in self.groups:
            self.location_ = OrdinalEncoder().fit(location_keys(frame))
        return self._features(frame, encoded)

    def transform(self, frame: pd.DataFrame) -> np.ndarray | pd.DataFrame:
        """Features of ``frame``'s rows: unseen facilities are ignored, unseen locations get the mean rent."""
        check_is_fitted(self)
        encoded = target_encoded(self.location_, frame) if isinstance(self.location_, TargetEncoder) else None
        return self._features(frame, encoded)

    def _features(
        self, frame: pd.DataFrame, encoded_location: np.ndarray | None
    ) -> np.ndarray | pd.DataFrame:
        columns = [frame[name].to_numpy(dtype="float64", na_value=np.nan) for name in self.numeric]
        for group in self.groups:
            if group in PARSED_GROUPS:
                columns += [map_distinct(frame[name], parse) for name, parse, _ in PARSED_GROUPS[group]]
            elif group == "facilities":
                columns.append(self.facilities_.transform(frame["facilities"]))
            elif group == "location":
                columns.append(map_distinct(frame["zip"], postcode_number))
                columns.append(
                    encoded_location if encoded_location is not None else location_categories(frame)
                )
        if self.location_encoding == "target":
            return np.column_stack(columns)
        # categorical: a frame, numbers as float64 and the location categories as text
        categories = columns.pop() if "location" in self.groups else np.empty((len(frame), 0), dtype=object)
        numbers = np.column_stack(columns)
        names = self.get_feature_names_out()
        data = {name: numbers[:, i] for i, name in enumerate(names[: numbers.shape[1]])}
        data |= {name: categories[:, i] for i, name in enumerate(names[numbers.shape[1] :])}
        return pd.DataFrame(data, index=frame.index)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The output column names, e.g. ``area``, ``garden_m2``, ``facility_lift``, ``district``."""
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        names = list(self.numeric)
        for group in self.groups:
            if group in PARSED_GROUPS:
                names += [name for _, _, name in PARSED_GROUPS[group]]
            elif group == "facilities":
                names += list(self.facilities_.get_feature_names_out())
            elif group == "location":
                names += (
                    LOCATION_FEATURES
                    if self.location_encoding == "target"
                    else ("zip_number", *LOCATION_CATEGORIES)
                )
        return np.asarray(names, dtype=object)


def categorical_columns(groups: Sequence[str], location_encoding: str) -> list[str]:
    """The ListingFeatures output columns that hold categories (text), for a model's ``cat_features``."""
    return list(LOCATION_CATEGORIES) if location_encoding == "categorical" and "location" in groups else []


def location_categories(frame: pd.DataFrame) -> np.ndarray:
    """Postcode district, its first three digits and neighborhood as text, one row per listing."""
    return np.column_stack(
        [
            map_distinct(frame["zip"], district_key, object),
            map_distinct(frame["zip"], district3_key, object),
            map_distinct(frame["neighborhood"], neighborhood_key, object),
        ]
    )


class ImplausibleToMissing(TransformerMixin, BaseEstimator):
    """Turn out-of-bounds numeric values (placeholders such as year 1005) into missing values.

    Learns nothing from the data; ``fit`` records the input columns (``feature_names_in_``), which it
    passes through unchanged in number and name (``get_feature_names_out``).
    """

    def __init__(self, bounds: Mapping[str, Sequence[float]] | None = None):
        self.bounds = bounds

    def fit(self, frame: pd.DataFrame, y=None) -> ImplausibleToMissing:
        """Record the input columns."""
        validate_data(self, frame, skip_check_array=True)
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Copy of ``frame`` with implausible values set to NaN."""
        check_is_fitted(self, "n_features_in_")
        return mask_implausible(frame, self.bounds or {})

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The input column names: the columns pass through."""
        check_is_fitted(self, "n_features_in_")
        return _check_feature_names_in(self, input_features)


def feature_columns(transformer: ListingFeatures) -> list[str]:
    """Names of a fitted ``ListingFeatures``' output columns, in order."""
    return list(transformer.get_feature_names_out())
