"""Turning request listings into the frame validate_listings judges."""

from __future__ import annotations

import pandas as pd
import pytest

from rentprice.schema import FEATURE_COLUMNS
from rentprice.schema import LISTING as CONTRACT
from rentprice.service.listings import (
    FORM_FIELDS,
    SCHEMA_ENDPOINT,
    ListingRequest,
    form_listing,
    listings_frame,
    request_listing,
    suggested_field,
)
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


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("postcode", "zip"),
        ("Postal Code", "zip"),
        ("zipcode", "zip"),
        ("zip_code", "zip"),
        ("energy_label", "energy"),
        ("size", "area"),
        ("sqm", "area"),
        ("area_m2", "area"),
        ("year_built", "construction_year"),
        ("constuction_year", "construction_year"),
        ("neighbourhood", "neighborhood"),
        ("enrgy", "energy"),
        ("adress", "address"),
        ("bedroom", "bedrooms"),
    ],
)
def test_an_unknown_key_is_refused_with_the_field_it_may_stand_for(key, field):
    assert request_listing({key: 1}) == (key, f"not a listing field; did you mean {field!r}?")


@pytest.mark.parametrize("key", ["id", "listing_id", "price", "bath", "", "colour"])
def test_an_unknown_key_like_no_field_is_refused_pointing_to_the_schema(key):
    reason = f"not a listing field; the fields are listed by {SCHEMA_ENDPOINT}"
    assert request_listing({"area": 5, key: 1}) == (key, reason)


def test_a_field_the_listing_has_is_not_suggested():
    assert suggested_field("postcode", ["area"]) is None
    assert request_listing({"zip": "1071 HN", "postcode": "1071 HN"})[1].endswith(SCHEMA_ENDPOINT)
    assert suggested_field("garden_m2", ["garage", "garden"]) == "garden", "not garage, a word less alike"


@pytest.mark.parametrize("key", ["rent", "Rent", " RENT "])
def test_the_rent_is_refused_as_the_target_not_an_input(key):
    assert request_listing({"area": 5, key: 1500}) == (
        "rent",
        "not a listing field: the rent is what the service predicts; remove it",
    )


def test_an_unknown_key_is_named_before_a_bad_value_and_keys_in_the_order_sent():
    assert request_listing({"rooms": True, "size": 5, "id": 1}) == (
        "size",
        "not a listing field; did you mean 'area'?",
    )


@pytest.mark.parametrize(
    "key",
    ["Construction Year", "construction-year", "constructionYear", "CONSTRUCTION_YEAR", "constraction_year"],
)
def test_other_spellings_and_aliases_of_a_field_are_read_not_refused(key):
    assert request_listing({key: 1930, "Energy ": "A"}) == {"construction_year": 1930, "energy": "A"}


def test_the_request_model_forbids_other_keys_in_its_json_schema():
    assert ListingRequest.model_json_schema()["additionalProperties"] is False


def test_form_fields_come_from_the_contract():
    expected = tuple("garden_m2" if spec.name == "garden" else spec.name for spec in CONTRACT)
    assert expected == FORM_FIELDS


@pytest.mark.parametrize("value", ["", "1"])
def test_the_web_form_sends_only_listing_fields(value):
    listing = form_listing(dict.fromkeys(FORM_FIELDS, value))
    assert request_listing(listing) == listing, "no form field is refused as an unknown key"
