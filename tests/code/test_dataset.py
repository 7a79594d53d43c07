import pandas as pd
import pytest

from rentprice.dataset import clean_listings, drop_exact_duplicates, group_split, out_of_bounds
from rentprice.errors import DataError
from rentprice.model import load_model
from rentprice.scoring import ROW, contract_rejects, validate_listings
from tests.code.scoring_fixtures import save_tiny_model
from tests.support import listings

CHECKS = {
    "bounds": {"rent": [100, 25000], "area": [5, 1000]},
    "max_out_of_bounds_share": 0.5,
    "max_dropped_share": 0.5,
    "min_rows": 1,
}
PLAUSIBLE = {"construction_year": [1500, 2030]}


def many(n: int) -> pd.DataFrame:
    return listings(*({"address": f"address {i}", "rent": 1000.0 + i} for i in range(n)))


def test_drop_exact_duplicates_keeps_relistings():
    frame = listings({}, {}, {"rent": 2100.0})
    assert len(drop_exact_duplicates(frame)) == 2


def test_out_of_bounds_flags_missing_and_extreme_values():
    frame = listings({}, {"area": 2.016}, {"rent": None}, {"rent": 0.0})
    assert out_of_bounds(frame, CHECKS["bounds"]).tolist() == [False, True, True, True]


def test_group_split_never_puts_one_address_on_both_sides():
    frame = pd.concat([many(40), many(40).assign(rent=lambda f: f["rent"] + 50)], ignore_index=True)
    train, test = group_split(frame, test_size=0.25, seed=3)
    assert len(train) + len(test) == len(frame)
    assert not set(train["address"]) & set(test["address"])
    in_train = frame["address"].isin(set(train["address"]))
    pd.testing.assert_frame_equal(train, frame[in_train].reset_index(drop=True))


def test_group_split_is_deterministic_and_seed_dependent():
    frame = many(50)
    first, again = group_split(frame, 0.2, 1), group_split(frame, 0.2, 1)
    pd.testing.assert_frame_equal(first[1], again[1])
    assert set(group_split(frame, 0.2, 2)[1]["address"]) != set(first[1]["address"])


def test_group_split_needs_two_addresses():
    with pytest.raises(DataError, match="at least two distinct address"):
        group_split(listings({}, {}), 0.5, 0)


def test_clean_listings_reports_what_it_did():
    raw = pd.concat([many(6), many(1), listings({"address": "tiny", "area": 2.0})], ignore_index=True)
    raw.loc[1, "construction_year"] = 1005
    kept, report = clean_listings(raw, CHECKS, PLAUSIBLE, "raw.parquet")
    assert report == {
        "rows_in": 8,
        "duplicates_dropped": 1,
        "out_of_bounds_dropped": 1,
        "contract_dropped": 0,
        "contract_dropped_by_field": {},
        "rows_kept": 6,
        "addresses": 6,
        "treated_as_missing": {"construction_year": 1},
    }
    assert kept["construction_year"].isna().sum() == 1 and len(kept) == 6


def test_rows_the_listing_contract_rejects_are_not_trained_on_and_are_counted_per_field(tmp_path):
    raw = pd.concat(
        [
            many(4),
            listings(
                {"address": "x", "balcony": "maybe"},  # not yes or no
                {"address": "y", "rooms": -1.0},  # below the contract's minimum
                {"address": "z", "garden": "huge"},  # not a garden text
                {"address": "w", "bedrooms": None},  # a required field missing
                {"address": "v", "energy": "Q"},  # not an energy label
            ),
        ],
        ignore_index=True,
    )
    kept, report = clean_listings(raw, CHECKS | {"max_dropped_share": 0.6}, PLAUSIBLE, "raw.parquet")
    assert report["contract_dropped"] == 5
    assert report["contract_dropped_by_field"] == {
        "balcony": 1,
        "bedrooms": 1,
        "energy": 1,
        "garden": 1,
        "rooms": 1,
    }
    assert sorted(kept["address"]) == [f"address {i}" for i in range(4)]
    # the rows prepare drops are those batch scoring rejects, for the same field and reason
    broken = contract_rejects(raw).set_index(ROW)
    scored = validate_listings(raw, load_model(save_tiny_model(tmp_path / "model.joblib")))
    assert len(broken) == 5
    pd.testing.assert_frame_equal(scored.rejects.set_index(ROW).loc[broken.index], broken)


def test_too_many_rows_breaking_the_contract_fail_prepare_with_examples():
    raw = pd.concat([many(2), listings({"address": "x", "rooms": -1.0}, {"address": "y", "balcony": "?"})])
    with pytest.raises(DataError) as failure:
        clean_listings(raw, CHECKS | {"max_dropped_share": 0.25}, PLAUSIBLE, "raw.parquet")
    message = str(failure.value)
    assert "dropped rows at most 25% of 4 rows: 2 row(s)" in message
    assert "the listing contract: 2 row(s)" in message
    assert "rooms: must not be negative, got -1" in message and "balcony: '?' is not yes or no" in message


def test_clean_listings_fails_with_readable_report_when_too_many_rows_are_invalid():
    raw = pd.concat([many(3), listings({"address": "a", "rent": -5.0}, {"address": "b", "rent": 99999.0})])
    checks = CHECKS | {"max_out_of_bounds_share": 0.1}
    with pytest.raises(DataError) as failure:
        clean_listings(raw, checks, PLAUSIBLE, "raw.parquet")
    message = str(failure.value)
    assert message.startswith("raw.parquet: 2 data check(s) failed")
    assert "rows outside bounds at most 10% of 5 rows: 2 row(s)" in message
    assert "rent within [100, 25000]: 2 row(s), e.g. [-5.0, 99999.0]" in message
    assert "\n" not in message


def test_clean_listings_fails_on_too_many_dropped_rows_and_too_few_rows():
    raw = pd.concat([many(2)] * 3, ignore_index=True)
    checks = CHECKS | {"max_dropped_share": 0.2, "min_rows": 5}
    with pytest.raises(
        DataError, match=r"dropped rows at most 20% of 6 rows: 4 row.*at least 5 usable rows: 2"
    ):
        clean_listings(raw, checks, PLAUSIBLE, "raw.parquet")


def test_clean_listings_rejects_missing_columns():
    with pytest.raises(DataError, match=r"missing column\(s\) rent"):
        clean_listings(many(3).drop(columns="rent"), CHECKS, PLAUSIBLE, "raw.parquet")


def test_clean_listings_reads_the_source_spelling_and_old_params_keys_alike():
    raw = many(4).rename(columns={"construction_year": "constraction_year", "area": " Area"})
    raw.loc[1, "constraction_year"] = 1005
    kept, report = clean_listings(raw, CHECKS, {"constraction_year": [1500, 2030]}, "raw.parquet")
    assert "construction_year" in kept.columns and "area" in kept.columns
    assert report["treated_as_missing"] == {"constraction_year": 1}
    assert kept["construction_year"].isna().tolist() == [False, True, False, False]


def test_clean_listings_refuses_a_repeated_column():
    raw = pd.concat([many(3), many(3)[["area"]]], axis=1)
    with pytest.raises(DataError, match=r"^raw.parquet: column 'area' appears more than once"):
        clean_listings(raw, CHECKS, PLAUSIBLE, "raw.parquet")
