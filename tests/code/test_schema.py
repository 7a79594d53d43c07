import numpy as np
import pandas as pd
import pytest

from rentprice.errors import DataError
from rentprice.schema import (
    SOURCE_COLUMNS,
    coerce_types,
    count_implausible,
    mask_implausible,
    missing_columns,
    require_columns,
)
from tests.conftest import listings


def test_missing_columns_in_schema_order():
    assert missing_columns(["rent", "area"], ["area", "garden", "rent", "zip"]) == ["garden", "zip"]


def test_require_columns_names_source_and_columns():
    with pytest.raises(DataError, match=r"^listings.csv: missing column\(s\) garden, zip$"):
        require_columns(listings().drop(columns=["garden", "zip"]), "listings.csv")


def test_coerce_types_makes_numbers_float_and_keeps_order():
    frame = listings().astype({"area": str, "rooms": int})[list(reversed(SOURCE_COLUMNS))]
    typed = coerce_types(frame, "x")
    assert list(typed.columns) == list(SOURCE_COLUMNS)
    assert typed["area"].dtype == np.float64 and typed["rooms"].dtype == np.float64
    assert typed["garden"].iloc[0] == "Present (47 m², located on the north)"


def test_coerce_types_reports_row_and_field_of_non_number():
    frame = listings({}, {"area": "eighty"})
    with pytest.raises(DataError, match=r"^src: row 1, field area: 'eighty' is not a number$"):
        coerce_types(frame, "src")


def test_coerce_types_keeps_missing_values_missing():
    typed = coerce_types(listings({"area": None, "energy": None}), "x")
    assert np.isnan(typed["area"].iloc[0]) and pd.isna(typed["energy"].iloc[0])


def test_mask_and_count_implausible():
    frame = pd.DataFrame({"construction_year": [1005.0, 1900.0, np.nan, 2100.0]})
    bounds = {"construction_year": [1500, 2030]}
    assert count_implausible(frame, bounds) == {"construction_year": 2}
    assert mask_implausible(frame, bounds)["construction_year"].tolist()[1] == 1900.0
    assert mask_implausible(frame, bounds)["construction_year"].isna().sum() == 3
