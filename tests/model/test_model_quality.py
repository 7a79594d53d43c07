"""Model tests on the real listings: the reference model beats the original approach and the
RandomForest family, the committed one beats the original approach, the served scoring path is the
pipeline's own predict, the price range is calibrated, and the model behaves sensibly. Every other
figure the tests need is read from params.yaml."""

import numpy as np
import pytest

from rentprice.dataset import clean_listings, group_split
from rentprice.evaluation import (
    cv_mae,
    fit_with_cv,
    grouped_folds,
    out_of_fold_predictions,
    range_metrics,
    regression_metrics,
)
from rentprice.io import read_sql_table
from rentprice.model import build_baseline, build_model, fit_model
from rentprice.params import load_params
from rentprice.schema import GROUP, SOURCE_TABLE_COLUMNS, TARGET
from rentprice.scoring import HIGH, LOW, PREDICTION, RANGES, score, trained_ranges, validate_listings
from tests.support import REPO_ROOT

pytestmark = pytest.mark.slow
#: Coverage of the range on the test split must be within this of the level (issue 17).
COVERAGE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def split(source_db):
    params = load_params(REPO_ROOT / "params.yaml").model_dump()
    raw = read_sql_table(f"sqlite:///{source_db}", params["collect"]["table"], SOURCE_TABLE_COLUMNS)
    kept, _ = clean_listings(raw, params["checks"], params["prepare"]["plausible"], "source")
    train, test = group_split(kept, params["prepare"]["test_size"], params["prepare"]["seed"])
    return params, train, test


@pytest.fixture(scope="module")
def bundle(split):
    """What the train stage writes: the fitted default model, its grouped-CV figure and range."""
    params, train, _ = split
    pipeline, fitted = fit_with_cv(params, train)
    return {"pipeline": pipeline, **fitted, RANGES: trained_ranges(pipeline, train)}


@pytest.fixture(scope="module")
def model(bundle):
    return bundle["pipeline"]


#: The model issue 17 set its targets for: the catboost family on every feature group, as the
#: default params had it. The two targets below are claims about the code with this model, so a
#: committed tuning experiment (fewer trees, log_target: false, a feature group off) cannot fail
#: them; what such a commit does to the metrics shows in `dvc metrics diff` and `make report`.
#: The other model tests hold for whatever params are committed.
REFERENCE_TRAIN = {
    "model": "catboost",
    "n_estimators": 300,
    "log_target": True,
    "catboost": {
        "learning_rate": 0.1,
        "depth": 6,
        "max_ctr_complexity": 1,
        "targets": ["rent", "rent_per_m2"],
    },
}


@pytest.fixture(scope="module")
def reference(split, bundle):
    """The params and fitted bundle of the reference model (the committed ones when they are it)."""
    params, train, _ = split
    groups = dict.fromkeys(params["train"]["features"], True)
    reference = {**params, "train": {**params["train"], **REFERENCE_TRAIN, "features": groups}}
    if reference["train"] == params["train"]:
        return params, bundle
    pipeline, fitted = fit_with_cv(reference, train)
    return reference, {"pipeline": pipeline, **fitted, RANGES: trained_ranges(pipeline, train)}


def test_the_reference_model_beats_original_approach_by_twenty_percent_on_the_test_split(split, reference):
    _, train, test = split
    params, fitted = reference
    baseline = fit_model(build_baseline(params["baseline"]), train, train[TARGET], "baseline")
    model_mae = regression_metrics(test[TARGET], score(fitted, test)[PREDICTION])["mae"]
    baseline_mae = regression_metrics(test[TARGET], baseline.predict(test))["mae"]
    assert model_mae <= 0.8 * baseline_mae, (model_mae, baseline_mae)


def test_the_committed_model_beats_original_approach_on_every_test_metric(split, bundle):
    """The quality gate for whatever params are committed: better MAE, R² and MAPE than the original."""
    params, train, test = split
    baseline = fit_model(build_baseline(params["baseline"]), train, train[TARGET], "baseline")
    model = regression_metrics(test[TARGET], score(bundle, test)[PREDICTION])
    original = regression_metrics(test[TARGET], baseline.predict(test))
    assert model["mae"] < original["mae"] and model["mape"] < original["mape"], (model, original)
    assert model["r2"] > original["r2"], (model, original)


def test_the_reference_model_beats_the_random_forest_family_in_grouped_cv(split, reference):
    _, train, _ = split
    params, bundle = reference
    forest = {**params["train"], "model": "random_forest"}
    folds = grouped_folds(train[GROUP], params["cv"])
    predicted = out_of_fold_predictions(
        lambda: build_model(forest, params["prepare"]["plausible"]), train, train[TARGET], folds
    )
    assert bundle["cv"]["mae"] < cv_mae(train[TARGET], predicted)["mae"]


def test_the_scoring_path_is_the_pipelines_own_predict_on_the_real_model(split, bundle):
    _, _, test = split
    scorable = validate_listings(test, bundle).scorable
    assert len(scorable) >= 0.95 * len(test), "few test listings lie outside the trained ranges"
    np.testing.assert_array_equal(
        score(bundle, scorable)[PREDICTION],
        np.round(bundle["pipeline"].predict(test.iloc[scorable.index]), 2),
    )


def test_the_range_holds_the_level_of_test_rents(split, bundle):
    _, _, test = split
    scored = score(bundle, test)
    coverage = range_metrics(test[TARGET], scored[LOW], scored[HIGH])["range_coverage"]
    assert abs(coverage - bundle["range"]["level"]) <= COVERAGE_TOLERANCE, coverage


def test_the_range_contains_the_rent_and_widens_with_the_level(split, bundle):
    _, _, test = split
    level = bundle["range"]["level"]
    narrow, wide = score(bundle, test, level=level / 2), score(bundle, test)
    assert ((wide[LOW] <= wide[PREDICTION]) & (wide[PREDICTION] <= wide[HIGH])).all()
    assert ((wide[LOW] <= narrow[LOW]) & (narrow[HIGH] <= wide[HIGH])).all()
    assert ((wide[HIGH] - wide[LOW]) > (narrow[HIGH] - narrow[LOW])).all()


def test_larger_apartments_are_predicted_dearer_all_else_equal(split, model):
    _, _, test = split
    rent, bigger = model.predict(test), model.predict(test.assign(area=test["area"] * 1.5))
    assert np.mean(bigger) > 1.1 * np.mean(rent)
    assert np.mean(bigger > rent) > 0.95, "nearly every listing costs more with half again its area"


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
