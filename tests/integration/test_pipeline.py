"""Integration tests: real dvc commands on a copy of the project with a private copy of the remote."""

import json
import re

import pytest
import yaml

from tests.conftest import REPO_ROOT, make_project_copy, run

pytestmark = pytest.mark.slow


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def test_pull_and_repro_build_every_output(built_project):
    for path in [
        "data/raw/listings.parquet",
        "data/prepared/train.parquet",
        "data/prepared/test.parquet",
        "models/model.joblib",
        "metrics/eval/plots/custom/predictions.json",
        "metrics/eval/plots/custom/importance.json",
    ]:
        assert (built_project / path).is_file(), path
    metrics = json.loads((built_project / "metrics/eval/metrics.json").read_text())
    assert set(metrics) >= {"mae", "rmse", "r2", "mape", "baseline_mae", "cv_mae", "range_coverage"}
    assert metrics["mae"] <= 0.9 * metrics["baseline_mae"]
    assert metrics["cv_mae"] <= 0.9 * metrics["baseline_cv_mae"]
    data = json.loads((built_project / "metrics/data.json").read_text())
    assert data["train_rows"] + data["test_rows"] == data["rows_kept"]


def test_fresh_build_matches_the_committed_lock_and_metrics(built_project):
    committed = yaml.safe_load((REPO_ROOT / "dvc.lock").read_text())
    rebuilt = yaml.safe_load((built_project / "dvc.lock").read_text())
    assert rebuilt == committed, "dvc.lock differs from a fresh rebuild: run `dvc repro` and commit dvc.lock"
    for name in ["metrics/data.json", "metrics/eval/metrics.json"]:
        assert (built_project / name).read_text() == (REPO_ROOT / name).read_text(), name
    assert run(["git", "status", "--porcelain"], built_project).stdout.strip() == ""


def test_second_repro_does_nothing(built_project):
    result = run(["dvc", "repro"], built_project)
    assert stages_run(result.stdout) == []
    assert "Data and pipelines are up to date." in result.stdout
    assert run(["dvc", "status", "--quiet"], built_project, check=False).returncode == 0


def test_metrics_and_params_diff_work_against_a_commit(built_project):
    assert "metrics/eval/metrics.json" in run(["dvc", "metrics", "show"], built_project).stdout
    assert run(["dvc", "params", "diff", "HEAD"], built_project).returncode == 0


def test_forced_repro_is_byte_identical(built_project):
    first = (built_project / "dvc.lock").read_bytes()
    run(["dvc", "repro", "--force"], built_project)
    assert (built_project / "dvc.lock").read_bytes() == first


def test_changing_a_hyperparameter_reruns_only_the_model_and_its_downstream_stages(tmp_path):
    repo = make_project_copy(tmp_path)
    run(["dvc", "pull", "data/source/rent_apartments.sqlite.dvc"], repo)
    run(["dvc", "repro"], repo)
    params_file = repo / "params.yaml"
    params_file.write_text(params_file.read_text().replace("iterations: 300", "iterations: 40"))
    result = run(["dvc", "repro"], repo)
    assert stages_run(result.stdout) == ["train", "evaluate", "predict"]
    diff = run(["dvc", "params", "diff", "--json"], repo).stdout
    change = json.loads(diff)["params.yaml"]["train.catboost.iterations"]
    assert (change["old"], change["new"]) == (300, 40)


def test_bad_database_url_fails_collect_without_output(tmp_path):
    repo = make_project_copy(tmp_path)
    params_file = repo / "params.yaml"
    params_file.write_text(params_file.read_text().replace("table: rent_apartments", "table: flats"))
    run(["dvc", "pull", "data/source/rent_apartments.sqlite.dvc"], repo)
    result = run(["dvc", "repro", "collect"], repo, check=False)
    assert result.returncode != 0
    assert "table 'flats' not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (repo / "data/raw/listings.parquet").exists()
