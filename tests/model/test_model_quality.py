"""Model tests: the default params beat the original approach on the honest split, and behave sensibly."""

import numpy as np
import pytest

from rentprice.dataset import clean_listings, group_split
from rentprice.evaluation import regression_metrics
from rentprice.io import read_sql_table
from rentprice.model import build_baseline, build_model
from rentprice.params import load_params
from rentprice.schema import SOURCE_TABLE_COLUMNS, TARGET
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def split(source_db):
    params = load_params(REPO_ROOT / "params.yaml").model_dump()
    raw = read_sql_table(f"sqlite:///{source_db}", params["collect"]["table"], SOURCE_TABLE_COLUMNS)
    kept, _ = clean_listings(raw, params["checks"], params["prepare"]["plausible"], "source")
    train, test = group_split(kept, params["prepare"]["test_size"], params["prepare"]["seed"])
    return params, train, test


@pytest.fixture(scope="module")
def model(split):
    params, train, _ = split
    return build_model(params["train"], params["prepare"]["plausible"]).fit(train, train[TARGET])


def test_default_model_beats_original_approach_by_ten_percent(split, model):
    params, train, test = split
    baseline = build_baseline(params["baseline"]).fit(train, train[TARGET])
    model_mae = regression_metrics(test[TARGET], model.predict(test))["mae"]
    baseline_mae = regression_metrics(test[TARGET], baseline.predict(test))["mae"]
    assert model_mae <= 0.9 * baseline_mae, (model_mae, baseline_mae)


def test_held_out_quality_gate(split, model):
    _, _, test = split
    metrics = regression_metrics(test[TARGET], model.predict(test))
    assert metrics["r2"] > 0.55 and metrics["mape"] < 0.2, metrics


def test_larger_apartments_are_predicted_dearer(split, model):
    _, _, test = split
    bigger = test.assign(area=test["area"] * 1.5)
    assert np.mean(model.predict(bigger)) > 1.1 * np.mean(model.predict(test))


def test_placeholder_year_is_scored_like_an_unknown_year(split, model):
    _, _, test = split
    sample = test.head(20)
    placeholder = model.predict(sample.assign(construction_year=1005.0))
    unknown = model.predict(sample.assign(construction_year=np.nan))
    np.testing.assert_allclose(placeholder, unknown)


def test_unseen_location_still_gets_a_plausible_price(split, model):
    _, train, test = split
    sample = test.head(20).assign(zip="9999 ZZ", neighborhood="Nowhere", address="9999 ZZ Nowhere")
    predicted = model.predict(sample)
    assert (predicted > train[TARGET].min()).all() and (predicted < train[TARGET].max()).all()


def test_predictions_do_not_depend_on_row_order_or_address_text(split, model):
    _, _, test = split
    sample = test.head(30)
    forward = model.predict(sample)
    backward = model.predict(sample.iloc[::-1].assign(address="anything"))[::-1]
    np.testing.assert_allclose(forward, backward)
