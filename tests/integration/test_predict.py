"""The predict stage through real dvc commands, on copies of the built project."""

import re
import shutil

import pandas as pd
import pytest

from rentprice.params import load_params
from tests.integration.params_support import get_param, set_params
from tests.support import listings, run

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path, built_project):
    """A copy of the built project, cache included, so every stage but predict stays up to date."""
    return shutil.copytree(built_project, tmp_path / "repo", symlinks=True)


def score_file(repo, name: str, frame: pd.DataFrame) -> None:
    """Write ``frame`` as ``name`` in the repo and point params ``predict.input`` at it."""
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(repo / name, index=False)
    set_params(repo, {"predict.input": name})


def test_repro_scores_the_raw_snapshot_by_default(built_project):
    raw = pd.read_parquet(built_project / "data/raw/listings.parquet")
    scored = pd.read_parquet(built_project / "data/predictions/scored.parquet")
    rejects = pd.read_csv(built_project / "data/predictions/rejects.csv")
    assert list(scored.columns) == [
        "row",
        "address",
        "predicted_rent",
        "predicted_rent_low",
        "predicted_rent_high",
    ], "the unused address passes through"
    assert sorted([*scored["row"], *rejects["row"]]) == list(range(len(raw)))
    low, high = load_params(built_project / "params.yaml").checks.bounds["area"]
    outside = raw.index[~raw["area"].between(low, high)].tolist()
    assert set(outside) <= set(rejects["row"]), "training drops these areas, so scoring cannot judge them"
    assert rejects["reason"].str.contains("outside the range the model was trained on").all()
    assert scored["predicted_rent"].between(300, 20000).all()
    assert get_param(built_project, "predict.input") == "data/raw/listings.parquet"
    assert "predict.input: data/raw/listings.parquet" in (built_project / "dvc.lock").read_text()


def test_repro_predict_scores_the_file_in_params_and_only_reruns_predict(project):
    batch = listings(*({"area": 30.0 + 10 * i} for i in range(6)), {"area": 0}, {"garden": "huge"})
    batch.insert(0, "listing_id", [f"L{i}" for i in range(len(batch))])
    score_file(project, "batch.csv", batch)
    result = run(["dvc", "repro", "predict"], project)
    assert re.findall(r"Running stage '(\w+)'", result.stdout) == ["check_params", "predict"]
    assert "score listings: rows=8, scored=6, rejected=2" in result.stderr
    scored = pd.read_parquet(project / "data/predictions/scored.parquet")
    rejects = pd.read_csv(project / "data/predictions/rejects.csv")
    assert scored["listing_id"].tolist() == [f"L{i}" for i in range(6)]
    assert scored["predicted_rent"].between(300, 20000).all()
    assert rejects[["row", "field", "listing_id"]].values.tolist() == [[6, "area", "L6"], [7, "garden", "L7"]]
    diff = run(["dvc", "params", "diff"], project).stdout
    assert "predict.input" in diff and "batch.csv" in diff
    assert run(["dvc", "status", "--quiet"], project, check=False).returncode == 0


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (listings().drop(columns="zip"), "batch.csv: missing column(s) zip"),
        (listings({"area": None}, {"area": "x"}, {}), "2 of 3 rows rejected (66.7% > --max-reject-rate 0.5)"),
    ],
)
def test_repro_predict_fails_on_the_wrong_file_with_one_line_and_no_output(project, frame, message):
    score_file(project, "batch.csv", frame)
    result = run(["dvc", "repro", "predict"], project, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.stderr
    assert not (project / "data/predictions/scored.parquet").exists()
    assert not (project / "data/predictions/rejects.csv").exists()


@pytest.mark.parametrize(
    "name",
    [
        "data/new batch/listings may.csv",
        "it's $HOME; a 'quoted' \"name\".csv",
        # issue 13: any path: '#', unicode, a leading '-', brackets, a literal ${...}, any case
        "-data #1/überlisting é [1] ${predict.input}.CSV",
    ],
)
def test_repro_predict_scores_a_path_with_spaces_and_shell_characters(project, name):
    batch = listings(*({"area": 30.0 + 10 * i} for i in range(3)))
    score_file(project, name, batch)
    result = run(["dvc", "repro", "predict"], project)
    assert "score listings: rows=3, scored=3, rejected=0" in result.stderr
    assert len(pd.read_parquet(project / "data/predictions/scored.parquet")) == 3
    assert name in (project / "dvc.lock").read_text(), "the file is a dependency of the stage"
    assert run(["dvc", "status", "--quiet"], project, check=False).returncode == 0
