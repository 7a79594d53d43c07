# ruff: noqa: RUF001 (the en dash of a range in a reason is the product's text)
import warnings

import numpy as np
import pandas as pd
import pytest

from rentprice.errors import DataError, ModelError
from rentprice.io import file_md5
from rentprice.model import build_model, fitted_models, load_model, predict_on_threads
from rentprice.schema import FEATURE_COLUMNS, MAY_BE_UNKNOWN
from rentprice.scoring import (
    FIELD,
    HIGH,
    LOW,
    PREDICTION,
    REASON,
    ROW,
    load_scoring_model,
    score,
    trained_ranges,
    validate_listings,
)
from tests.code.scoring_fixtures import TRAIN, save_tiny_model
from tests.support import listings


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
    assert result.treated_as_unknown == dict.fromkeys(MAY_BE_UNKNOWN, 0)


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
        ({"construction_year": "old"}, "construction_year", "'old' is not a number"),
        ({"balcony": "maybe"}, "balcony", "'maybe' is not yes or no"),
        ({"garage": ""}, "garage", "missing"),
        ({"furnished": 1}, "furnished", "1 is not yes or no"),
        ({"garden": "a big one"}, "garden", "'a big one' is not a garden text like 'Not present'"),
        ({"garden": None}, "garden", "missing"),
        ({"energy": "Q"}, "energy", "'Q' is not an energy label"),
        ({"energy": "x" * 60}, "energy", "'" + "x" * 38 + "…"),
        ({"garden": "Present (47 sq m)"}, "garden", "'Present (47 sq m)' is not a garden text like"),
        ({"garden": "Present (47)"}, "garden", "'Present (47)' is not a garden text like"),
        ({"zip": "10111"}, "zip", "'10111' is not a Dutch postcode (1234 AB or 1234, 1000 to 9999)"),
        ({"zip": 10111}, "zip", "'10111' is not a Dutch postcode"),
        ({"zip": 10111.0}, "zip", "'10111' is not a Dutch postcode"),
        ({"zip": float("inf")}, "zip", "inf is not a Dutch postcode"),
        ({"zip": "0123 AB"}, "zip", "'0123 AB' is not a Dutch postcode"),
        ({"zip": "abc"}, "zip", "'abc' is not a Dutch postcode"),
        ({"zip": "1071 HN extra"}, "zip", "'1071 HN extra' is not a Dutch postcode"),
        ({"zip": "NL-10111"}, "zip", "'NL-10111' is not a Dutch postcode"),
        ({"zip": "unknown"}, "zip", "'unknown' is not a Dutch postcode"),
        ({"zip": True}, "zip", "True is not a Dutch postcode"),
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
        ({"construction_year": 1005}, "construction_year", "construction_year", np.nan),
        ({"construction_year": None}, "construction_year", "construction_year", np.nan),
        ({"construction_year": ""}, "construction_year", "construction_year", np.nan),
        ({"energy": "None"}, "energy", "energy", "None"),
        ({"energy": ""}, "energy", "energy", ""),
        ({"energy": None}, "energy", "energy", np.nan),
        ({"neighborhood": "Atlantis"}, "neighborhood", "neighborhood", "Atlantis"),
        ({"neighborhood": None}, "neighborhood", "neighborhood", np.nan),
        ({"zip": "9999 ZZ"}, "zip", "zip", "9999 ZZ"),
        ({"zip": None}, "zip", "zip", np.nan),
        ({"zip": ""}, "zip", "zip", ""),
        ({"zip": " \u200b "}, "zip", "zip", " \u200b "),
    ],
)
def test_recoverable_values_are_scored_as_unknown_and_counted(bundle, override, field, column, scored_as):
    result = validate_listings(listings(override, {}), bundle)
    assert result.rejects.empty
    assert result.treated_as_unknown == dict.fromkeys(MAY_BE_UNKNOWN, 0) | {field: 1}
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
    assert as_objects.treated_as_unknown == as_strings.treated_as_unknown
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
    assert load_scoring_model(model_path, lock)["params"]["n_estimators"] == TRAIN["n_estimators"]


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


# --- issue 13: listings the model cannot judge, and values that differ only in spelling ---


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"area": 83000}, "area", "83000 m² is outside the range the model was trained on (20–185 m²)"),
        ({"area": "1e300"}, "area", "1e+300 m² is outside the range the model was trained on (20–185 m²)"),
        ({"area": 12345678901234567890}, "area", "1.23457e+19 m² is outside the range"),
        ({"area": 10}, "area", "10 m² is outside the range the model was trained on (20–185 m²)"),
        ({"rooms": 1e39}, "rooms", "1e+39 is outside the range the model was trained on (1–6)"),
        ({"bedrooms": "9"}, "bedrooms", "9 is outside the range the model was trained on (0–4)"),
        ({"construction_year": 2025}, "construction_year", "2025 is outside the range the model was trained"),
        ({"garden": "Present (83000 m²)"}, "garden", "garden 83000 m² is outside the range the model was"),
    ],
)
def test_values_outside_the_trained_range_are_rejected_without_warnings(bundle, override, field, reason):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = validate_listings(listings(override), bundle)
    assert result.scorable.empty
    assert result.rejects[FIELD].tolist() == [field]
    assert result.rejects[REASON].iloc[0].startswith(reason)


@pytest.mark.parametrize("year", [2031, 9999, 1e39, 1e308])
def test_a_year_above_the_plausible_range_is_rejected_not_scored_as_unknown(bundle, year):
    result = validate_listings(listings({"construction_year": year}), bundle)
    assert result.scorable.empty
    assert result.rejects[FIELD].tolist() == ["construction_year"]
    assert f"{year:g} is outside the range the model was trained on" in result.rejects[REASON].iloc[0]


def test_a_year_with_a_fraction_is_rejected_also_below_the_plausible_range(bundle):
    result = validate_listings(
        listings({"construction_year": 17.9999}, {"construction_year": 1005.5}), bundle
    )
    assert result.rejects[REASON].tolist() == [
        "must be a whole number, got 17.9999",
        "must be a whole number, got 1005.5",
    ]


def test_a_placeholder_year_is_unknown_not_out_of_range(bundle):
    result = validate_listings(listings({"construction_year": 1005}, {"construction_year": None}), bundle)
    assert result.rejects.empty
    assert result.treated_as_unknown["construction_year"] == 2


def test_trained_ranges_are_the_observed_values_after_placeholders_are_masked():
    frame = listings(
        {"area": 30.0, "construction_year": 1005.0, "rooms": 2.0, "garden": "Not present"},
        {"area": 90.0, "construction_year": 1950.0, "rooms": 4.0, "garden": "Present (12 m²)"},
    )
    pipeline = build_model(TRAIN, {"construction_year": [1500, 2030]})
    ranges = trained_ranges(pipeline, frame)
    assert ranges["area"] == [30.0, 90.0] and ranges["rooms"] == [2.0, 4.0]
    assert ranges["construction_year"] == [1950.0, 1950.0], "the placeholder 1005 is not a trained value"
    assert ranges["garden_m2"] == [0.0, 12.0]


def test_a_model_file_without_ranges_is_refused(bundle):
    with pytest.raises(ModelError, match="records no trained ranges"):
        validate_listings(listings(), {key: value for key, value in bundle.items() if key != "ranges"})


@pytest.mark.parametrize(
    "spelling",
    [
        {
            "balcony": " YES\u00a0",
            "storage": "No",
            "energy": " a ",
            "garden": "PRESENT (47 m², located on the north)",
        },
        {
            "neighborhood": "  CORNELIS\u00a0schuytbuurt ",
            "zip": "1071\u00a0hn",
            "facilities": "shower,TOILET , lift",
        },
        {"energy": "a", "balcony": True, "storage": False},
        {"zip": "NL-1071 HN"},
        {"zip": " nl1071hn\u200b"},
        {"zip": "1071"},
        {"zip": 1071},
        {"garden": "Present (47 m2, located on the north)"},
        {"garden": "present (47m^2, located on the north)"},
        {"facilities": "Shower; Toilet; Lift"},
    ],
)
def test_values_that_differ_only_in_spacing_or_case_get_the_same_rent(bundle, spelling):
    plain = validate_listings(listings(), bundle)
    spelled = validate_listings(listings(spelling), bundle)
    assert spelled.rejects.empty
    assert spelled.treated_as_unknown == plain.treated_as_unknown
    np.testing.assert_array_equal(score(bundle, spelled.scorable), score(bundle, plain.scorable))


def test_an_energy_label_spelled_with_spaces_gets_the_labels_rent(bundle):
    plain = validate_listings(listings({"energy": "A+"}), bundle)
    spelled = validate_listings(listings({"energy": "a +"}), bundle)
    assert spelled.rejects.empty
    np.testing.assert_array_equal(score(bundle, spelled.scorable), score(bundle, plain.scorable))


def test_headers_are_matched_ignoring_spacing_case_and_the_source_spelling(bundle):
    frame = listings().rename(columns={"area": " Area ", "construction_year": "constraction_year"})
    result = validate_listings(frame, bundle)
    np.testing.assert_array_equal(
        score(bundle, result.scorable), score(bundle, validate_listings(listings(), bundle).scorable)
    )


def test_booleans_and_dates_are_not_numbers(bundle):
    result = validate_listings(listings({"area": True}, {"rooms": "2020-01-01"}), bundle)
    assert result.rejects[REASON].tolist() == ["True is not a number", "'2020-01-01' is not a number"]


def test_counts_and_years_with_a_fraction_are_rejected_whole_numbers_of_any_type_are_not(bundle):
    frame = listings(
        {"rooms": 2.5},
        {"bathrooms": "1.5"},
        {"construction_year": 1930.25},
        {"bedrooms": "2.0", "rooms": 3.0, "construction_year": "1930"},
    )
    result = validate_listings(frame, bundle)
    assert result.rejects[[ROW, FIELD, REASON]].values.tolist() == [
        [0, "rooms", "must be a whole number, got 2.5"],
        [1, "bathrooms", "must be a whole number, got 1.5"],
        [2, "construction_year", "must be a whole number, got 1930.25"],
    ]
    assert result.scorable.index.tolist() == [3]


@pytest.mark.parametrize("family", ["random_forest", "catboost"])
def test_a_model_set_to_predict_on_one_thread_gives_the_same_rents(family, tmp_path):
    bundle = load_model(save_tiny_model(tmp_path / "model.joblib", family))
    frame = listings(*({"area": 30.0 + 7 * i, "rooms": 1 + i % 4} for i in range(20)))
    before = score(bundle, frame)
    predict_on_threads(bundle["pipeline"], 1)
    pd.testing.assert_frame_equal(score(bundle, frame), before)
    models = fitted_models(bundle["pipeline"][-1])
    assert len(models) == (2 if family == "catboost" else 1)  # catboost: one per target, averaged
    for model in models:
        threads = model.predict.keywords["thread_count"] if family == "catboost" else model.n_jobs
        assert threads == 1
