"""Integration tests: real dvc commands on a copy of the project with a private copy of the remote."""

import json
import re

import pytest

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
    assert set(metrics) >= {"mae", "rmse", "r2", "mape", "baseline_mae"}
    assert metrics["mae"] <= 0.9 * metrics["baseline_mae"]
    data = json.loads((built_project / "metrics/data.json").read_text())
    assert data["train_rows"] + data["test_rows"] == data["rows_kept"]


# The reproducibility check, the only one CI runs (`make verify` runs these two tests): a fresh copy
# of the tracked files, with an empty DVC cache, rebuilds dvc.lock and every tracked metric and plot
# file byte for byte, and a second `dvc repro` runs nothing and leaves dvc.lock unchanged.
def test_fresh_build_matches_the_committed_lock_and_metrics(built_project):
    changed = run(["git", "status", "--porcelain"], built_project).stdout.strip()
    diff = run(["git", "--no-pager", "diff"], built_project).stdout
    assert changed == "", (
        f"a fresh `dvc pull` + `dvc repro` changed tracked files (run `dvc repro` and commit them, or "
        f"make the stage deterministic):\n{changed}\n{diff}"
    )
    # The copy's commit holds this checkout's tracked files, dvc.lock among them.
    assert (built_project / "dvc.lock").read_bytes() == (REPO_ROOT / "dvc.lock").read_bytes()


def test_second_repro_does_nothing(built_project):
    lock = (built_project / "dvc.lock").read_bytes()
    result = run(["dvc", "repro"], built_project)
    assert stages_run(result.stdout) == []
    assert "Data and pipelines are up to date." in result.stdout
    assert run(["dvc", "status", "--quiet"], built_project, check=False).returncode == 0
    assert (built_project / "dvc.lock").read_bytes() == lock


def test_metrics_and_params_diff_work_against_a_commit(built_project):
    assert "metrics/eval/metrics.json" in run(["dvc", "metrics", "show"], built_project).stdout
    assert run(["dvc", "params", "diff", "HEAD"], built_project).returncode == 0


def test_changing_n_estimators_reruns_only_the_model_and_its_downstream_stages(tmp_path):
    repo = make_project_copy(tmp_path)
    run(["dvc", "pull", "data/source/rent_apartments.sqlite.dvc"], repo)
    run(["dvc", "repro"], repo)
    params_file = repo / "params.yaml"
    params_file.write_text(params_file.read_text().replace("n_estimators: 300", "n_estimators: 40"))
    result = run(["dvc", "repro"], repo)
    assert stages_run(result.stdout) == ["train", "evaluate", "predict"]
    diff = run(["dvc", "params", "diff", "--json"], repo).stdout
    change = json.loads(diff)["params.yaml"]["train.n_estimators"]
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
