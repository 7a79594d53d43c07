"""The listing schema: the columns of the source table, their kinds and plausible values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rentprice.errors import DataError

TARGET = "rent"
GROUP = "address"

NUMERIC_COLUMNS: tuple[str, ...] = (
    "area",
    "constraction_year",
    "rooms",
    "bedrooms",
    "bathrooms",
)
YES_NO_COLUMNS: tuple[str, ...] = ("balcony", "storage", "parking", "furnished", "garage")
TEXT_COLUMNS: tuple[str, ...] = (
    "address",
    *YES_NO_COLUMNS,
    "garden",
    "energy",
    "facilities",
    "zip",
    "neighborhood",
)
#: Columns a listing must have to be scored, in source-table order.
FEATURE_COLUMNS: tuple[str, ...] = (
    "address",
    "area",
    "constraction_year",
    "rooms",
    "bedrooms",
    "bathrooms",
    *YES_NO_COLUMNS,
    "garden",
    "energy",
    "facilities",
    "zip",
    "neighborhood",
)
#: Every column of the source table.
SOURCE_COLUMNS: tuple[str, ...] = (*FEATURE_COLUMNS, TARGET)


def missing_columns(columns: Sequence[str], required: Sequence[str] = SOURCE_COLUMNS) -> list[str]:
    """Return the required columns absent from ``columns``, in schema order."""
    present = set(columns)
    return [name for name in required if name not in present]


def require_columns(frame: pd.DataFrame, source: str, required: Sequence[str] = SOURCE_COLUMNS) -> None:
    """Raise a one-line DataError naming ``source`` when a required column is missing."""
    absent = missing_columns(list(frame.columns), required)
    if absent:
        raise DataError(f"{source}: missing column(s) {', '.join(absent)}")


def coerce_types(frame: pd.DataFrame, source: str, first_row: int = 0) -> pd.DataFrame:
    """Return the schema columns present, numeric kinds as float64 and text as strings.

    Raises DataError naming the first row (``first_row`` plus the position, for a chunk of a
    larger table) and field whose value is not a number.
    """
    out = pd.DataFrame(index=frame.index)
    for name in frame.columns.intersection(SOURCE_COLUMNS, sort=False):
        if name in TEXT_COLUMNS:
            out[name] = frame[name].astype("str")
        else:
            numbers = pd.to_numeric(frame[name], errors="coerce")
            bad = numbers.isna() & frame[name].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                value = frame[name].iloc[row]
                raise DataError(f"{source}: row {first_row + row}, field {name}: {value!r} is not a number")
            out[name] = numbers.astype("float64")
    return out[[c for c in SOURCE_COLUMNS if c in out.columns]]


def mask_implausible(frame: pd.DataFrame, bounds: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Return a copy where numeric values outside their ``[low, high]`` bounds are missing.

    Sources use placeholders such as construction year 1005 for "unknown"; treating them as
    data would teach the model nonsense. Bounded columns come back as float64 with NaN for missing.
    """
    masked = {}
    for name, (low, high) in bounds.items():
        if name in frame.columns:
            values = frame[name].to_numpy(dtype="float64", na_value=np.nan, copy=True)
            values[(values < low) | (values > high)] = np.nan
            masked[name] = values
    return frame.assign(**masked)


def count_implausible(frame: pd.DataFrame, bounds: Mapping[str, Sequence[float]]) -> dict[str, int]:
    """Count, per bounded column, the present values that fall outside their bounds."""
    counts = {}
    for name, (low, high) in bounds.items():
        values = frame[name]
        counts[name] = int((values.notna() & ~values.between(low, high)).sum())
    return counts
