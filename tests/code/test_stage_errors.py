"""Stage entry points turn user-fixable problems into one log line and exit code 2, leaving no output."""

import sqlite3

import pytest
import yaml

from rentprice.errors import DataError
from rentprice.io import read_yaml
from tests.support import REPO_ROOT, listings, load_module


def stage(name: str):
    return load_module(f"stages/{name}.py")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RENTPRICE_DB_URL", raising=False)
    params = read_yaml(REPO_ROOT / "params.yaml")
    params["collect"] |= {"db_url": "sqlite:///db.sqlite", "table": "rent_apartments"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return tmp_path


def write_db(path, frame, types=None):
    with sqlite3.connect(path) as connection:
        # the source table's own spelling of the construction year
        frame.rename(columns={"construction_year": "constraction_year"}).to_sql(
            "rent_apartments", connection, index=False, dtype=types
        )


def test_collect_writes_typed_snapshot(workdir):
    write_db(workdir / "db.sqlite", listings({}, {"area": 50}))
    assert stage("collect").main(["--output", "raw/listings.parquet"]) == 0
    assert (workdir / "raw" / "listings.parquet").is_file()
    log = (workdir / "logs" / "collect.log").read_text()
    assert log.count("read listings and write snapshot: rows=2") == 1


@pytest.mark.parametrize(
    ("frame", "types", "message"),
    [
        (listings().drop(columns="garden"), None, "is missing column(s) garden"),
        (listings({"area": "big"}), None, "column area is TEXT, expected number"),
        (listings({"zip": 1071}), None, "column zip is INTEGER, expected text"),
        # SQLite keeps a text value in a REAL column: the value itself is checked
        (listings({}, {"area": "big"}), {"area": "REAL"}, "row 1, field area: 'big' is not a number"),
        (listings().iloc[:0], None, "table 'rent_apartments' has no rows"),
    ],
)
def test_collect_bad_source_is_one_line_and_no_output(workdir, capsys, frame, types, message):
    write_db(workdir / "db.sqlite", frame, types)
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


STAGE_ARGS = {
    "collect": ["--output", "raw.parquet"],
    "prepare": [
        "--input",
        "raw.parquet",
        "--train",
        "tr.parquet",
        "--test",
        "te.parquet",
        "--report",
        "r.json",
    ],
    "train": ["--train", "train.parquet", "--model", "model.joblib"],
    "evaluate": [
        "--model",
        "m.joblib",
        "--train",
        "tr.parquet",
        "--test",
        "te.parquet",
        "--live-dir",
        "eval",
    ],
}


@pytest.mark.parametrize("name", list(STAGE_ARGS))
@pytest.mark.parametrize(
    ("key", "value", "phrase"),
    [
        ("train.catboost.depth", 99, "train.catboost.depth: expected an integer >= 1 and <= 16, given 99"),
        ("train.features", "all", "train.features: expected a mapping with the keys"),
        ("checks.min_rows", "many", "checks.min_rows: expected an integer >= 1, given 'many' (a string)"),
    ],
)
def test_every_stage_checks_the_whole_params_file_before_any_work(workdir, capsys, name, key, value, phrase):
    params = read_yaml(workdir / "params.yaml")
    *groups, field = key.split(".")
    inner = params
    for group in groups:
        inner = inner[group]
    inner[field] = value
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    before = {path for path in workdir.rglob("*") if "logs" not in path.parts}
    assert stage(name).main(STAGE_ARGS[name]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"params.yaml: {phrase}" in errors[0], errors
    assert {path for path in workdir.rglob("*") if "logs" not in path.parts} == before


def test_collect_names_the_row_in_the_whole_table_and_writes_no_partial_snapshot(tmp_path):
    chunks = [listings(), listings({"area": "big"})]
    with pytest.raises(DataError, match=r"^table t: row 1, field area: 'big' is not a number$"):
        stage("collect").write_snapshot(iter(chunks), tmp_path / "raw.parquet", "table t")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "url_path"),
    [
        ("my source #1 é $HOME; x.sqlite", "my source #1 é $HOME; x.sqlite"),
        ("-a%20b?.sqlite", "-a%2520b%3F.sqlite"),  # docs/data-source.md: % as %25, ? as %3F
    ],
)
def test_collect_reads_an_sqlite_file_at_any_path_written_as_documented(workdir, name, url_path):
    write_db(workdir / name, listings())
    params = read_yaml(workdir / "params.yaml")
    params["collect"]["db_url"] = f"sqlite:///{url_path}"
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    assert stage("collect").main(["--output", "raw.parquet"]) == 0
    assert (workdir / "raw.parquet").is_file()
