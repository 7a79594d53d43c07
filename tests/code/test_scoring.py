import numpy as np
import pandas as pd
import pytest

from rentprice.errors import DataError, ModelError
from rentprice.io import file_md5
from rentprice.model import load_model
from rentprice.schema import FEATURE_COLUMNS
from rentprice.scoring import (
    HIGH,
    LOW,
    PREDICTION,
    RECOVERABLE,
    load_scoring_model,
    score,
    validate_listings,
)
from tests.code.scoring_fixtures import save_tiny_model
from tests.conftest import listings


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "model.joblib")


@pytest.fixture(scope="module")
def bundle(model_path):
    return load_model(model_path)


@pytest.fixture(scope="module", params=["random_forest", "catboost"])
def family_bundle(request, tmp_path_factory):
    return load_model(save_tiny_model(tmp_path_factory.mktemp("model") / "model.joblib", request.param))


def test_valid_listings_are_scorable_and_typed(bundle):
    result = validate_listings(listings({}, {"area": " 70 ", "rooms": "2", "balcony": " YES "}), bundle)
    assert result.rejects.empty
    assert list(result.scorable.columns) == list(FEATURE_COLUMNS)
    assert result.scorable["area"].tolist() == [80.0, 70.0]
    assert result.scorable["rooms"].dtype == "float64"
    assert result.recovered == dict.fromkeys(RECOVERABLE, 0)


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"area": None}, "area", "missing"),
        ({"area": "  "}, "area", "missing"),
        ({"area": 0}, "area", "must be positive, got 0"),
        ({"area": -12.5}, "area", "must be positive, got -12.5"),
        ({"area": "big"}, "area", "'big' is not a number"),
        ({"area": "80,5"}, "area", "'80,5' is not a number"),
        ({"area": "inf"}, "area", "'inf' is not a number"),
        ({"rooms": "three"}, "rooms", "'three' is not a number"),
        ({"bedrooms": -1}, "bedrooms", "must not be negative, got -1"),
        ({"bathrooms": None}, "bathrooms", "missing"),
        ({"constraction_year": "old"}, "constraction_year", "'old' is not a number"),
        ({"balcony": "maybe"}, "balcony", "'maybe' is not yes or no"),
        ({"garage": ""}, "garage", "missing"),
        ({"furnished": 1}, "furnished", "1 is not yes or no"),
        ({"garden": "a big one"}, "garden", "'a big one' is not a garden text like 'Not present'"),
        ({"garden": None}, "garden", "missing"),
        ({"energy": "Q"}, "energy", "'Q' is not an energy label"),
        ({"energy": "x" * 60}, "energy", "'" + "x" * 38 + "…"),
    ],
)
def test_each_unscorable_value_is_rejected_with_field_and_reason(bundle, override, field, reason):
    result = validate_listings(listings({}, override, {}), bundle)
    assert result.scorable.index.tolist() == [0, 2]
    assert result.rejects.to_dict("records") == [
        {"row": 1, "field": field, "reason": result.rejects["reason"].iloc[0]}
    ]
    assert result.rejects["reason"].iloc[0].startswith(reason)


def test_a_row_is_rejected_once_for_its_first_bad_field_in_schema_order(bundle):
    result = validate_listings(listings({"garden": "??", "area": None, "balcony": "maybe"}), bundle)
    assert result.rejects[["row", "field"]].values.tolist() == [[0, "area"]]


@pytest.mark.parametrize(
    ("override", "field", "column", "scored_as"),
    [
        ({"constraction_year": 1005}, "constraction_year", "constraction_year", np.nan),
        ({"constraction_year": None}, "constraction_year", "constraction_year", np.nan),
        ({"constraction_year": ""}, "constraction_year", "constraction_year", np.nan),
        ({"energy": "None"}, "energy", "energy", "None"),
        ({"energy": ""}, "energy", "energy", ""),
        ({"energy": None}, "energy", "energy", np.nan),
        ({"neighborhood": "Atlantis"}, "neighborhood", "neighborhood", "Atlantis"),
        ({"neighborhood": None}, "neighborhood", "neighborhood", np.nan),
        ({"zip": "9999 ZZ"}, "zip", "zip", "9999 ZZ"),
        ({"zip": "unknown"}, "zip", "zip", "unknown"),
    ],
)
def test_recoverable_values_are_scored_as_unknown_and_counted(bundle, override, field, column, scored_as):
    result = validate_listings(listings(override, {}), bundle)
    assert result.rejects.empty
    assert result.recovered == dict.fromkeys(RECOVERABLE, 0) | {field: 1}
    value = result.scorable[column].iloc[0]
    assert (pd.isna(value) and pd.isna(scored_as)) or value == scored_as
    assert np.isfinite(score(bundle, result.scorable).to_numpy()).all()


def test_rows_are_numbered_from_first_row_and_chunking_does_not_change_the_verdicts(bundle):
    frame = listings(*({"area": area} for area in [50, None, 60, "x", 70, -1, 80]))
    whole = validate_listings(frame, bundle)
    parts = [validate_listings(frame.iloc[start : start + 3], bundle, first_row=start) for start in (0, 3, 6)]
    assert whole.rejects["row"].tolist() == [1, 3, 5]
    assert whole.scorable.index.tolist() == [0, 2, 4, 6]
    pd.testing.assert_frame_equal(
        pd.concat(part.rejects for part in parts).reset_index(drop=True), whole.rejects
    )
    pd.testing.assert_frame_equal(pd.concat(part.scorable for part in parts), whole.scorable)
    pd.testing.assert_frame_equal(
        score(bundle, whole.scorable), pd.concat(score(bundle, p.scorable) for p in parts)
    )


def test_other_columns_and_column_order_do_not_matter(bundle):
    frame = listings({}, {"area": 0})
    shuffled = frame[frame.columns[::-1]].assign(listing_id=["a", "b"]).drop(columns="rent")
    pd.testing.assert_frame_equal(
        validate_listings(shuffled, bundle).rejects, validate_listings(frame, bundle).rejects
    )


def test_text_columns_as_python_objects_or_arrow_strings_get_the_same_verdicts(bundle):
    frame = listings({}, {"balcony": "maybe"}, {"garden": "Present (12 m²)", "energy": "None"}, {"zip": None})
    as_objects = validate_listings(frame.astype(object), bundle)
    as_strings = validate_listings(frame.astype({"balcony": "str", "garden": "str", "energy": "str"}), bundle)
    pd.testing.assert_frame_equal(as_objects.rejects, as_strings.rejects)
    assert as_objects.recovered == as_strings.recovered
    pd.testing.assert_frame_equal(score(bundle, as_objects.scorable), score(bundle, as_strings.scorable))


def test_a_missing_column_is_a_data_error_naming_it(bundle):
    with pytest.raises(DataError, match=r"missing column\(s\) garden, zip$"):
        validate_listings(listings().drop(columns=["zip", "garden"]), bundle)


def test_an_empty_frame_gives_empty_results(bundle):
    result = validate_listings(listings().iloc[:0], bundle)
    assert result.scorable.empty and result.rejects.empty
    assert list(result.rejects.columns) == ["row", "field", "reason"]
    assert score(bundle, result.scorable).shape == (0, 3)


def test_score_is_the_pipelines_predict_rounded_to_cents_with_its_range(family_bundle):
    frame = listings(*({"area": 30.0 + 7 * i} for i in range(20)))
    scorable = validate_listings(frame, family_bundle).scorable
    scored = score(family_bundle, scorable)
    assert list(scored.columns) == [PREDICTION, LOW, HIGH]
    assert scored.index.tolist() == scorable.index.tolist()
    np.testing.assert_array_equal(scored[PREDICTION], np.round(family_bundle["pipeline"].predict(frame), 2))
    assert (scored[LOW] < scored[PREDICTION]).all() and (scored[PREDICTION] < scored[HIGH]).all()
    # relative to the rent: the same factor down and up for every listing
    factor = scored[HIGH] / scored[PREDICTION]
    np.testing.assert_allclose(scored[PREDICTION] / scored[LOW], factor, rtol=1e-4)
    np.testing.assert_allclose(factor, factor.iloc[0], rtol=1e-4)


def test_a_higher_level_gives_a_wider_range(bundle):
    scorable = validate_listings(listings({}, {"area": 120.0}), bundle).scorable
    narrow, wide = score(bundle, scorable, level=0.5), score(bundle, scorable, level=0.9)
    assert (wide[LOW] <= narrow[LOW]).all() and (wide[HIGH] >= narrow[HIGH]).all()
    assert (wide[HIGH] - wide[LOW] > narrow[HIGH] - narrow[LOW]).all()
    pd.testing.assert_series_equal(score(bundle, scorable)[HIGH], score(bundle, scorable, level=0.8)[HIGH])


def write_lock(path, model_path, md5):
    path.write_text(
        f"schema: '2.0'\nstages:\n  train:\n    cmd: x\n    outs:\n    - path: {model_path.name}\n"
        f"      hash: md5\n      md5: {md5}\n      size: 1\n",
        encoding="utf-8",
    )
    return path


def test_load_scoring_model_accepts_the_model_recorded_in_dvc_lock(model_path):
    lock = write_lock(model_path.parent / "dvc.lock", model_path, file_md5(model_path))
    assert load_scoring_model(model_path, lock)["params"]["random_forest"]["n_estimators"] == 10


def test_load_scoring_model_rejects_a_model_that_differs_from_dvc_lock(model_path):
    lock = write_lock(model_path.parent / "dvc.lock", model_path, "0" * 32)
    with pytest.raises(ModelError, match=r"md5 differs from .*dvc\.lock.*`dvc checkout .*model\.joblib`"):
        load_scoring_model(model_path, lock)


def test_load_scoring_model_skips_the_md5_check_for_models_outside_the_pipeline(model_path, tmp_path):
    lock = write_lock(tmp_path / "dvc.lock", tmp_path / "other.joblib", "0" * 32)
    assert load_scoring_model(model_path, lock)["project"] == "rentprice"
    assert load_scoring_model(model_path, tmp_path / "absent.lock")["project"] == "rentprice"


def test_load_scoring_model_reports_an_unreadable_lock_and_a_missing_model(model_path, tmp_path):
    lock = tmp_path / "dvc.lock"
    lock.write_text("stages: [unclosed", encoding="utf-8")
    with pytest.raises(ModelError, match=r"dvc\.lock: not a readable dvc\.lock$"):
        load_scoring_model(model_path, lock)
    with pytest.raises(ModelError, match="model file not found"):
        load_scoring_model(tmp_path / "model.joblib", lock)
