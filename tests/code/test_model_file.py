import pickle
import warnings

import joblib
import pytest
from sklearn.exceptions import InconsistentVersionWarning

from rentprice.errors import ModelError, ParamsError
from rentprice.model import build_model, feature_importance, fit_model, load_model, save_model
from tests.support import listings, small_train

TRAIN = small_train(
    n_estimators=10,
    n_jobs=1,
    features={"amenities": False, "facilities": False, "location": False},
    catboost={"depth": 2},
)


@pytest.fixture(params=["random_forest", "catboost"])
def fitted(request):
    frame = listings(*({"area": 40.0 + 10 * i, "rent": 1000.0 + 200 * i} for i in range(8)))
    train = {**TRAIN, "model": request.param}
    model = build_model(train, {"construction_year": [1500, 2030]})
    return fit_model(model, frame, frame["rent"], "test"), frame


def test_model_round_trip_keeps_predictions_and_metadata(tmp_path, fitted):
    model, frame = fitted
    path = tmp_path / "model.joblib"
    save_model(model, path, {"params": TRAIN})
    bundle = load_model(path)
    assert bundle["params"] == TRAIN
    assert bundle["input_columns"][:2] == ["area", "construction_year"], "the model reads no address"
    assert set(bundle["versions"]) >= {"scikit-learn", "numpy", "pandas", "python"}
    assert (bundle["pipeline"].predict(frame) == model.predict(frame)).all()


def test_saving_twice_gives_identical_bytes(tmp_path, fitted):
    model, _ = fitted
    save_model(model, tmp_path / "a.joblib", {})
    save_model(model, tmp_path / "b.joblib", {})
    assert (tmp_path / "a.joblib").read_bytes() == (tmp_path / "b.joblib").read_bytes()


@pytest.mark.parametrize("family", ["random_forest", "catboost"])
def test_refitting_the_same_data_gives_identical_bytes(tmp_path, family):
    # CatBoost records a random GUID and the finish time of each fit: fit_model drops them
    frame = listings(*({"area": 40.0 + 10 * i, "rent": 1000.0 + 200 * i} for i in range(8)))
    train = {**TRAIN, "model": family}
    for name in ("a", "b"):
        model = fit_model(build_model(train, {}), frame, frame["rent"], "test")
        save_model(model, tmp_path / f"{name}.joblib", {})
    assert (tmp_path / "a.joblib").read_bytes() == (tmp_path / "b.joblib").read_bytes()


def test_feature_importance_is_named_and_sorted(fitted):
    importance = feature_importance(fitted[0])
    assert set(importance["feature"]) >= {"area", "garden_m2", "energy_rank"}
    assert importance["importance"].is_monotonic_decreasing
    assert importance["importance"].sum() == pytest.approx(1.0)


def test_an_unknown_model_family_is_a_params_error_naming_the_choices():
    with pytest.raises(ParamsError, match=r"train\.model: must be one of random_forest, catboost, got 'svm'"):
        build_model({**TRAIN, "model": "svm"}, {})


def test_a_hyperparameter_catboost_rejects_is_a_params_error():
    frame = listings(*({"area": 40.0 + 10 * i, "rent": 1000.0 + 200 * i} for i in range(8)))
    train = {**TRAIN, "model": "catboost", "catboost": {**TRAIN["catboost"], "depth": 99}}
    with pytest.raises(ParamsError, match=r"^params\.yaml: train: CatBoost: Maximum tree depth is 16$"):
        fit_model(build_model(train, {}), frame, frame["rent"], "params.yaml: train")


def test_load_model_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(ModelError, match=r"model file not found \(run `dvc pull .*` or `dvc repro train`\)"):
        load_model(tmp_path / "model.joblib")


def test_load_model_rejects_foreign_pickles(tmp_path):
    path = tmp_path / "other.joblib"
    joblib.dump({"weights": [1, 2]}, path)
    with pytest.raises(ModelError, match=r"not a model file of this project$"):
        load_model(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ModelError, match=r"not a model file of this project \("):
        load_model(path)


def test_load_model_names_models_written_by_other_code_of_this_project(tmp_path):
    path = tmp_path / "model.joblib"
    # a pickle of a function this code does not have, as in a model file older code wrote
    path.write_bytes(b"\x80\x04crentprice.features\nno_such_transformer\n.")
    with pytest.raises(
        ModelError, match=r"written by another version of this project's code \(AttributeError\)"
    ):
        load_model(path)
    path.write_bytes(b"\x80\x04crentprice.no_such_module\nthing\n.")
    with pytest.raises(ModelError, match=r"another version .*retrain with `dvc repro train`"):
        load_model(path)


def test_load_model_rejects_other_scikit_learn_versions(tmp_path, monkeypatch):
    path = tmp_path / "model.joblib"
    path.write_bytes(pickle.dumps({}))

    def load_with_warning(_path):
        warnings.warn(
            InconsistentVersionWarning(
                estimator_name="X", current_sklearn_version="9", original_sklearn_version="0.1"
            ),
            stacklevel=1,
        )

    monkeypatch.setattr(joblib, "load", load_with_warning)
    with pytest.raises(
        ModelError, match=r"trained with scikit-learn 0.1, this environment has .*dvc repro train"
    ):
        load_model(path)
