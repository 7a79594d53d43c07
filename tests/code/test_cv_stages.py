"""The train stage on tiny data: CV params the data cannot meet are one line, exit 2, no model."""

import pytest
import yaml

from rentprice.io import read_yaml
from rentprice.model import load_model
from tests.code.scoring_fixtures import training_rows
from tests.support import REPO_ROOT, load_module


def stage(name: str):
    return load_module(f"stages/{name}.py")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with the committed params (fast trees, 2 folds) and a train split of 31 rows, 12 addresses."""
    monkeypatch.chdir(tmp_path)
    params = read_yaml(REPO_ROOT / "params.yaml")
    params["train"] |= {"model": "random_forest", "n_estimators": 10}
    params["baseline"] |= {"n_estimators": 10}
    params["cv"] |= {"folds": 2, "repeats": 1}
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
    set_param(workdir, "cv", "repeats", 2)
    assert stage("train").main(["--train", "train.parquet", "--model", "model.joblib"]) == 0
    assert load_model(workdir / "model.joblib")["cv"]["seed"] == 2**32 - 1
