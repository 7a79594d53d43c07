"""Data tests: expectations on the pulled source snapshot and on the split the pipeline makes from it."""

import pandas as pd
import pytest

from rentprice.dataset import clean_listings, group_split
from rentprice.features import ENERGY_RANK, ENERGY_UNKNOWN, garden_area, yes_no
from rentprice.io import read_sql_table
from rentprice.params import load_params
from rentprice.schema import SOURCE_COLUMNS, SOURCE_TABLE_COLUMNS, YES_NO_COLUMNS, coerce_types, text_key
from tests.support import REPO_ROOT


@pytest.fixture(scope="module")
def params():
    return load_params(REPO_ROOT / "params.yaml").model_dump()


@pytest.fixture(scope="module")
def raw(source_db, params):
    frame = read_sql_table(f"sqlite:///{source_db}", params["collect"]["table"], SOURCE_TABLE_COLUMNS)
    return coerce_types(frame, str(source_db))


def test_source_has_every_column_and_rows(raw):
    assert list(raw.columns) == list(SOURCE_COLUMNS)
    assert len(raw) > 1000


def test_yes_no_columns_hold_only_yes_or_no(raw):
    for name in YES_NO_COLUMNS:
        assert raw[name].map(yes_no).notna().all(), name


def test_every_garden_text_parses(raw):
    unparsed = raw.loc[raw["garden"].map(garden_area).isna(), "garden"]
    assert unparsed.empty, unparsed.unique()[:5]


def test_energy_labels_are_known_or_explicitly_unknown(raw):
    assert {text_key(label) for label in raw["energy"]} <= set(ENERGY_RANK) | ENERGY_UNKNOWN


def test_zip_codes_are_dutch_postcodes_matching_the_address(raw):
    assert raw["zip"].str.fullmatch(r"\d{4} [A-Z]{2}").all()
    assert all(
        address.startswith(zipcode) for address, zipcode in zip(raw["address"], raw["zip"], strict=True)
    )


def test_the_source_is_messy_in_the_ways_prepare_handles(raw, params):
    assert raw.duplicated().sum() > 0, "exact duplicates exist and must be dropped"
    assert raw["address"].duplicated().sum() > raw.duplicated().sum(), "relistings exist"
    low, _ = params["prepare"]["plausible"]["construction_year"]
    assert (raw["construction_year"] < low).sum() > 0, "placeholder years exist"


def test_prepared_split_is_honest(raw, params):
    kept, report = clean_listings(raw, params["checks"], params["prepare"]["plausible"], "source")
    train, test = group_split(kept, params["prepare"]["test_size"], params["prepare"]["seed"])
    assert not set(train["address"]) & set(test["address"])
    assert (
        len(train) + len(test)
        == report["rows_kept"]
        == len(raw) - report["duplicates_dropped"] - report["out_of_bounds_dropped"]
    )
    assert 0.15 < len(test) / report["rows_kept"] < 0.25
    assert not pd.concat([train, test]).duplicated().any()
    assert kept["construction_year"].dropna().min() >= params["prepare"]["plausible"]["construction_year"][0]
