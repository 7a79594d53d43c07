import numpy as np
import pandas as pd
import pytest

from rentprice.errors import DataError
from rentprice.schema import (
    FEATURE_COLUMNS,
    MAY_BE_UNKNOWN,
    POSTCODE_NUMBERS,
    SOURCE_COLUMNS,
    SOURCE_TABLE_COLUMNS,
    canonical_names,
    coerce_types,
    count_implausible,
    mask_implausible,
    missing_columns,
    postcode_digits,
    require_columns,
    text_key,
)
from tests.support import listings


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


def test_canonical_names_ignore_spacing_and_case_and_accept_the_source_spelling():
    names = canonical_names([" Area ", "CONSTRACTION_YEAR", "\u00a0zip", "Listing ID"], "x")
    assert names == ["area", "construction_year", "zip", "Listing ID"]


@pytest.mark.parametrize(
    "spelled",
    [
        "Construction Year", "construction-year", "constructionYear", "construction\u00a0year",
        "construction__year", "\ufeffconstruction_year", "construction_year\u200b", " CONSTRUCTION YEAR ",
    ],
)  # fmt: skip
def test_names_differing_only_in_how_words_are_joined_or_invisible_characters_are_one_column(spelled):
    assert canonical_names([spelled, "\ufeffArea"], "x") == ["construction_year", "area"]
    with pytest.raises(DataError, match=r"column 'construction_year' appears more than once"):
        canonical_names([spelled, "construction_year"], "in.csv")


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["area", "area"], r"^in.csv: column 'area' appears more than once \('area', 'area'\); keep one$"),
        (["Area", " area"], r"column 'area' appears more than once \('Area', ' area'\)"),
        (["construction_year", "constraction_year"], r"column 'construction_year' appears more than once"),
        (["note", "note"], r"column 'note' appears more than once"),
        (
            ["area", "", ""],
            r"^in.csv: 2 columns have no name \(empty header cells, e.g. a spreadsheet's trailing",
        ),
    ],
)
def test_a_column_given_twice_is_refused(columns, message):
    with pytest.raises(DataError, match=message):
        canonical_names(columns, "in.csv")


def test_text_key_trims_collapses_non_breaking_spaces_and_folds_case():
    assert text_key("  Oud\u00a0 West ") == text_key("oud west") == "oud west"


def test_text_key_drops_invisible_characters():
    assert text_key("\ufeffOud West\u200b") == text_key("Oud\u2060 West") == "oud west"
    assert text_key("\ufeffYES") == "yes"


def test_the_contract_derives_the_column_lists():
    assert "address" not in FEATURE_COLUMNS, "the model does not read the address"
    assert SOURCE_TABLE_COLUMNS[2] == "constraction_year" and SOURCE_COLUMNS[2] == "construction_year"
    assert set(MAY_BE_UNKNOWN) == {"construction_year", "energy", "zip", "neighborhood"}


def test_the_postcode_numbers_are_the_patterns_four_digits():
    """POSTCODE_NUMBERS (the JSON Schema's bounds for a number) and POSTCODE_PATTERN say one thing."""
    low, high = POSTCODE_NUMBERS
    for number in range(0, 100_000):
        assert (postcode_digits(str(number)) == number) == (low <= number <= high), number
        assert postcode_digits(number) == postcode_digits(str(number)), number
