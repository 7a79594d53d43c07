"""The train and evaluate stages on tiny data: CV params the data cannot meet are one line, and
evaluate's test metrics count only the listings the served scoring path gives a rent."""

import json

import joblib
import pandas as pd
import pytest
import yaml

from rentprice.evaluation import regression_metrics
from rentprice.io import read_yaml
from rentprice.model import build_baseline, fit_model, load_model
from rentprice.params import load_params
from rentprice.scoring import PREDICTION, score, validate_listings
from tests.code.scoring_fixtures import save_tiny_model, training_rows
from tests.support import REPO_ROOT, load_module


def stage(name: str):
    return load_module(f"stages/{name}.py")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with the committed params (fast trees, 2 folds x 2) and a 31-row train split, 12 addresses."""
    monkeypatch.chdir(tmp_path)
    params = read_yaml(REPO_ROOT / "params.yaml")
    params["train"] |= {"model": "random_forest", "n_estimators": 10}
    params["baseline"] |= {"n_estimators": 10}
    params["cv"] |= {"folds": 2, "repeats": 2}
    write_params(tmp_path, params)
    frame = training_rows().assign(address=lambda rows: [f"a{i % 12}" for i in range(len(rows))])
    frame.to_parquet(tmp_path / "train.parquet")
    return tmp_path


def write_params(folder, params):
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def set_param(folder, group, key, value):
    params = read_yaml(folder / "params.yaml")
    params[group][key] = value
    write_params(folder, params)


@pytest.mark.parametrize(
    ("group", "key", "value", "phrase"),
    [
        ("cv", "folds", 13, "cv.folds: 13 folds need at least 13 addresses; the train split has 12"),
        ("cv", "folds", 40, "cv.folds: 40 folds need at least 40 addresses; the train split has 12"),
        ("train", "range_level", 0.999, "train.range_level: 0.999 needs at least 999 out-of-fold rents"),
    ],
)
def test_train_refuses_cv_params_the_data_cannot_meet_in_one_line(workdir, capsys, group, key, value, phrase):
    set_param(workdir, group, key, value)
    assert stage("train").main(["--train", "train.parquet", "--model", "model.joblib"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"params.yaml: {phrase}" in errors[0], errors
    assert "Traceback" not in err and not (workdir / "model.joblib").exists()


def test_train_takes_the_largest_cv_seed(workdir):
    set_param(workdir, "cv", "seed", 2**32 - 1)
    assert stage("train").main(["--train", "train.parquet", "--model", "model.joblib"]) == 0
    assert load_model(workdir / "model.joblib")["cv"]["seed"] == 2**32 - 1


def test_evaluate_measures_every_test_listing_and_apart_the_ones_the_served_path_prices(workdir):
    """A test listing outside the trained ranges counts in the test metrics (a model cannot better them
    by refusing listings) and is counted as rejected; served_* measure the priced ones only."""
    model = save_tiny_model(workdir / "m.joblib")
    bundle = load_model(model)
    bundle["cv"] = {"folds": 2, "repeats": 2, "seed": 0, "mae": 1.0, "mae_std": 0.0}
    joblib.dump(bundle, model)  # the metadata the train stage adds
    test = training_rows().iloc[:8].assign(address=lambda rows: [f"t{i}" for i in range(len(rows))])
    test.loc[test.index[3], ["area", "rent"]] = [190.0, 9000.0]  # trained on 20 to 185 m²
    test.to_parquet(workdir / "test.parquet")
    args = ["--model", "m.joblib", "--train", "train.parquet", "--test", "test.parquet", "--live-dir", "eval"]
    assert stage("evaluate").main(args) == 0
    metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
    rents = score(bundle, test)[PREDICTION]
    expected = regression_metrics(test["rent"], rents)
    assert {name: metrics[name] for name in expected} == expected
    served = validate_listings(test, bundle).scorable.index.to_numpy()
    assert list(served) == [0, 1, 2, 4, 5, 6, 7]
    assert (metrics["test_scored"], metrics["test_rejected"]) == (7, 1)
    assert metrics["served_mae"] == regression_metrics(test["rent"].iloc[served], rents.iloc[served])["mae"]
    # the original approach on the same listings: all of them, and the priced ones
    params = load_params(workdir / "params.yaml")
    train = pd.read_parquet(workdir / "train.parquet")
    baseline = fit_model(build_baseline(params.baseline.model_dump()), train, train["rent"], "baseline")
    baseline_rents = baseline.predict(test)
    baseline_mae = regression_metrics(test["rent"], baseline_rents)["mae"]
    assert metrics["baseline_mae"] == baseline_mae
    served_baseline = regression_metrics(test["rent"].iloc[served], baseline_rents[served])["mae"]
    assert metrics["served_gain_over_baseline"] == pytest.approx(
        1 - metrics["served_mae"] / served_baseline, abs=1e-6
    )
    assert metrics["gain_over_baseline"] == pytest.approx(1 - metrics["mae"] / baseline_mae, abs=1e-6)
    predictions = json.loads((workdir / "eval" / "plots" / "custom" / "predictions.json").read_text())
    assert len(predictions) == len(test)
