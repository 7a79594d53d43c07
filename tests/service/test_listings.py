"""Turning request listings into the frame validate_listings judges."""

from __future__ import annotations

import pandas as pd
import pytest

from rentprice.schema import FEATURE_COLUMNS
from rentprice.service.listings import listings_frame
from tests.service.conftest import LISTING

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
