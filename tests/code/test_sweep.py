"""The sweep helpers: grid parsing, reading `dvc exp show --json`, ranking and the dirty-tree refusal."""

import subprocess

import pytest

from rentprice.errors import RentpriceError
from tests.code.scripts_support import load_script
from tests.conftest import tool_env

sweep = load_script("sweep")


def experiment(name, state, mae=None, n_estimators=100, error=None, executor=True):
    data = {"cv_mae": mae + 5, "mae": mae, "r2": 0.6} if mae is not None else {}
    metrics = {"metrics/eval/metrics.json": {"data": data}} if data else {}
    return {
        "name": name,
        "executor": {"state": state, "name": "dvc-task"} if executor else None,
        "revs": [
            {
                "rev": "0" * 40,
                "name": name,
                "error": error,
                "data": {
                    "params": {"params.yaml": {"data": {"train": {"n_estimators": n_estimators}}}},
                    "metrics": metrics,
                },
            }
        ],
    }


def show(*experiments):
    return [
        {"rev": "workspace", "name": None, "data": {}, "error": None, "experiments": None},
        {"rev": "a" * 40, "name": "main", "data": {}, "error": None, "experiments": list(experiments)},
    ]


def test_grid_keys_are_the_params_of_each_axis():
    grid = ["train.n_estimators=100,300", "params.yaml:train.max_features=0.33,0.5"]
    assert sweep.grid_keys(grid) == ["train.n_estimators", "params.yaml:train.max_features"]


def test_queued_names_are_read_from_dvc_output():
    output = (
        "Queueing with overrides '{'params.yaml': ['train.n_estimators=10']}'.\n"
        "Queued experiment 'caped-daks' for future execution.\n"
        "Queueing with overrides '{'params.yaml': ['train.n_estimators=20']}'.\n"
        "Queued experiment 'boned-doit' for future execution.\n"
    )
    assert sweep.queued_names(output) == ["caped-daks", "boned-doit"]


def test_param_value_follows_dotted_keys_and_files():
    params = {
        "params.yaml": {"data": {"train": {"n_estimators": 300, "features": {"garden": True}}}},
        "other.yaml": {"data": {"alpha": 0.5}},
    }
    assert sweep.param_value(params, "train.n_estimators") == 300
    assert sweep.param_value(params, "train.features.garden") is True
    assert sweep.param_value(params, "other.yaml:alpha") == 0.5
    assert sweep.param_value(params, "train.missing.deeper") is None


def test_experiments_reads_state_and_test_metrics():
    found = sweep.experiments(
        show(
            experiment("good", "success", mae=250.0),
            experiment("bad", "failed", mae=252.9, error={"msg": "Experiment run failed"}),
            experiment("old-bad", None, executor=False, error={"msg": "Experiment run failed"}),
            experiment("old-good", None, mae=260.0, executor=False),
        )
    )
    assert {name: result["state"] for name, result in found.items()} == {
        "good": "success",
        "bad": "failed",
        "old-bad": "failed",
        "old-good": "success",
    }
    assert found["good"]["metrics"]["mae"] == 250.0


def test_ranking_orders_successful_experiments_by_cv_mae_and_drops_failed_ones():
    results = sweep.experiments(
        show(
            experiment("slow", "success", mae=260.0, n_estimators=300),
            experiment("failed", "failed", mae=100.0),
            experiment("fast", "success", mae=250.0, n_estimators=100),
            experiment("no-metrics", "success"),
        )
    )
    ranked = sweep.ranking(results)
    assert [name for name, _ in ranked] == ["fast", "slow", "no-metrics"]
    table = sweep.ranking_markdown(ranked, ["train.n_estimators"]).splitlines()
    assert table[0] == (
        "| rank | experiment | train.n_estimators | cv_mae | cv_mae_std | mae | r2 | mape | baseline_mae |"
    )
    assert table[2] == "| 1 | fast | 100 | 255.0 | - | 250.0 | 0.6 | - | - |"
    assert table[3].startswith("| 2 | slow | 300 | 265.0 | - | 260.0 |")
    assert "dvc exp apply fast" in sweep.apply_hint("fast")


def test_sweep_refuses_a_tree_with_changes_queued_runs_would_miss(tmp_path, monkeypatch):
    env = tool_env()
    for args in (["git", "init", "-q"], ["git", "commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(args, cwd=tmp_path, env=env, check=True)
    (tmp_path / "new_feature.py").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RentpriceError, match=r"would not see \(\?\? new_feature\.py\)"):
        sweep.refuse_to_start()
