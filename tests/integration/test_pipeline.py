"""Integration tests: real dvc commands on a copy of the project with a private copy of the remote."""

import json
import re
import shutil

import pytest

from tests.integration.params_support import get_param, other_count, set_params
from tests.support import REPO_ROOT, make_project_copy, run

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


def test_changing_n_estimators_reruns_only_the_model_and_its_downstream_stages(quick_project, tmp_path):
    repo = shutil.copytree(quick_project, tmp_path / "repo", symlinks=True)  # built: nothing to run
    assert run(["dvc", "status", "--quiet"], repo, check=False).returncode == 0
    committed = get_param(repo, "train.n_estimators")
    fewer = other_count(committed)
    set_params(repo, {"train.n_estimators": fewer})
    result = run(["dvc", "repro"], repo)
    assert stages_run(result.stdout) == ["check_params", "train", "evaluate", "predict"]
    diff = run(["dvc", "params", "diff", "--json"], repo).stdout
    change = json.loads(diff)["params.yaml"]["train.n_estimators"]
    assert (change["old"], change["new"]) == (committed, fewer)


def test_bad_database_url_fails_collect_without_output(tmp_path):
    repo = make_project_copy(tmp_path)
    set_params(repo, {"collect.table": "flats"})
    run(["dvc", "pull", "data/source/rent_apartments.sqlite.dvc"], repo)
    result = run(["dvc", "repro", "collect"], repo, check=False)
    assert result.returncode != 0
    assert "table 'flats' not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (repo / "data/raw/listings.parquet").exists()


@pytest.mark.parametrize(
    ("assignment", "line"),
    [
        ('train.log_target="false"', "train.log_target: expected true or false, given 'false' (a string)"),
        (
            "train.facilities_min_count=many",
            "train.facilities_min_count: expected an integer >= 1, given 'many'",
        ),
        ("train.features=all", "train.features: expected a mapping with the keys amenities, garden"),
        ("+train.features.weather=true", "train.features.weather: unknown key (expected one of: amenities"),
        # groups no other stage reads whole: the check_params stage sees every key
        ("+baseline.njobs=4", "baseline.njobs: unknown key (expected one of: n_estimators, seed, n_jobs)"),
        ("+predict.foo=1", "predict.foo: unknown key"),
        ("drift.psi_warn=0.5", "drift: expected psi_warn <= psi_alert, given psi_warn 0.5"),
        ("checks.bounds.rent=[.nan,25000]", "checks.bounds.rent: expected a list of 2 items, each a number"),
    ],
)
def test_dvc_exp_run_with_a_bad_value_shows_one_line_and_trains_nothing(
    built_project, tmp_path, assignment, line
):
    repo = shutil.copytree(built_project, tmp_path / "repo", symlinks=True)
    result = run(["dvc", "exp", "run", "-S", assignment], repo, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    errors = [text for text in output.splitlines() if "ERROR" in text and "failed to reproduce" not in text]
    assert len(errors) == 1 and f"params.yaml: {line}" in errors[0], output
    assert "Traceback" not in output
    assert stages_run(output) == ["check_params"]  # it failed before any other stage ran
