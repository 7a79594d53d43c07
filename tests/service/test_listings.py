"""Turning request listings into the frame validate_listings judges."""

from __future__ import annotations

import pandas as pd
import pytest

from rentprice.schema import FEATURE_COLUMNS
from rentprice.schema import LISTING as CONTRACT
from rentprice.service.listings import FORM_FIELDS, listings_frame, request_listing
from tests.support.service import LISTING

BLANK = dict.fromkeys(FEATURE_COLUMNS)


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [BLANK],
        [LISTING, {**BLANK, "area": 5, "rooms": 2.5, "zip": "1071 HN", "energy": ""}],
        [{**BLANK, "area": "60", "bedrooms": float("inf"), "balcony": 1}],
    ],
)
def test_listings_frame_keeps_values_as_sent(rows):
    expected = pd.DataFrame(rows, columns=list(FEATURE_COLUMNS), dtype=object)
    frame = listings_frame(rows)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True, check_column_type=False)
    assert frame.columns.dtype == "object" and list(frame.columns) == list(FEATURE_COLUMNS)
    assert all(dtype == "object" for dtype in frame.dtypes), "no inference: validation sees the JSON values"
    assert frame.map(type).equals(expected.map(type))


def test_request_listing_matches_keys_like_batch_headers():
    assert request_listing({" AREA ": 5, "constraction_year": 1930}) == {"area": 5, "construction_year": 1930}
    twice = ("area", "given more than once ('area', 'Area'); keep one")
    assert request_listing({"area": 5, "Area": 6}) == twice
    assert request_listing([1]) == (None, "a listing must be a JSON object")
    assert request_listing({"rooms": True}) == ("rooms", "must be a number, a text or null")
    assert request_listing({"garage": 1}) == ("garage", "must be yes, no, true, false or null")
    assert request_listing({"balcony": False, "zip": 1071}) == {"balcony": False, "zip": 1071}


def test_form_fields_come_from_the_contract():
    expected = tuple("garden_m2" if spec.name == "garden" else spec.name for spec in CONTRACT)
    assert expected == FORM_FIELDS
