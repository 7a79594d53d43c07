"""Stage entry points turn user-fixable problems into one log line and exit code 2, leaving no output."""

import importlib.util
import sqlite3

import pytest
import yaml

from tests.conftest import REPO_ROOT, listings


def stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", REPO_ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RENTPRICE_DB_URL", raising=False)
    (tmp_path / "params.yaml").write_text(
        "collect:\n  db_url: sqlite:///db.sqlite\n  table: rent_apartments\n", encoding="utf-8"
    )
    return tmp_path


def write_db(path, frame):
    with sqlite3.connect(path) as connection:
        frame.to_sql("rent_apartments", connection, index=False)


def test_collect_writes_typed_snapshot(workdir):
    write_db(workdir / "db.sqlite", listings({}, {"area": 50}))
    assert stage("collect").main(["--output", "raw/listings.parquet"]) == 0
    assert (workdir / "raw" / "listings.parquet").is_file()
    assert (workdir / "logs" / "collect.log").read_text().count("read listings: rows=2") == 1


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (listings().drop(columns="garden"), "is missing column(s) garden"),
        (listings({"area": "big"}), "row 0, field area: 'big' is not a number"),
    ],
)
def test_collect_bad_source_is_one_line_and_no_output(workdir, capsys, frame, message):
    write_db(workdir / "db.sqlite", frame)
    assert stage("collect").main(["--output", "raw/listings.parquet"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and message in errors[0]
    assert not [path for path in workdir.rglob("*") if "parquet" in path.name]


def test_collect_environment_variable_overrides_params(workdir, monkeypatch):
    write_db(workdir / "other.sqlite", listings())
    monkeypatch.setenv("RENTPRICE_DB_URL", "sqlite:///other.sqlite")
    assert stage("collect").main(["--output", "raw.parquet"]) == 0
    assert (workdir / "raw.parquet").is_file() and not (workdir / "db.sqlite").exists()


def test_collect_missing_table(workdir, capsys):
    sqlite3.connect(workdir / "db.sqlite").close()
    assert stage("collect").main(["--output", "raw.parquet"]) == 2
    assert "table 'rent_apartments' not found" in capsys.readouterr().err
    assert not (workdir / "raw.parquet").exists()


def test_importing_a_stage_does_no_work(workdir):
    for name in ["collect", "prepare", "train", "evaluate"]:
        stage(name)
    assert list(workdir.iterdir()) == [workdir / "params.yaml"]


@pytest.mark.parametrize(
    ("family", "key", "value", "expected"),
    [
        ("random_forest", "max_features", -1, "params.yaml: train: The 'max_features' parameter"),
        ("catboost", "depth", 99, "params.yaml: train: CatBoost: Maximum tree depth is 16"),
    ],
)
def test_train_rejects_an_invalid_hyperparameter_in_one_line(
    tmp_path, monkeypatch, capsys, family, key, value, expected
):
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["train"]["model"] = family
    params["train"][family][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    listings(*({"rent": 1000.0 + i, "address": f"a{i}"} for i in range(10))).to_parquet(
        tmp_path / "train.parquet"
    )
    assert stage("train").main(["--train", "train.parquet", "--model", "model.joblib"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert expected in errors[0]
    assert not (tmp_path / "model.joblib").exists()
