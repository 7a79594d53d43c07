"""The sweep helpers: grid parsing, reading `dvc.api.exp_show()` records, ranking and failure handling."""

import subprocess

import pytest

from rentprice.errors import RentpriceError
from tests.support import load_module, tool_env

sweep = load_module("scripts/sweep.py")


def record(name, state, mae=None, n_estimators=100.0, **columns):
    """One experiment as `dvc.api.exp_show()` gives it: flat columns, numbers as floats."""
    return {
        "Experiment": name,
        "rev": "0123abc",
        "typ": "branch_commit",
        "State": state,
        "Executor": "Dvc-task" if state in {"Queued", "Running", "Success"} else None,
        "cv_mae": None if mae is None else mae + 5,
        "mae": mae,
        "r2": None if mae is None else 0.6,
        "train.n_estimators": n_estimators,
        **columns,
    }


BASELINE = {"Experiment": None, "rev": "workspace", "typ": "baseline", "State": None, "mae": 252.9}


def test_grid_keys_are_the_params_of_each_axis():
    grid = ["train.n_estimators=100,300", "params.yaml:train.max_features=0.33,0.5"]
    assert sweep.grid_keys(grid) == ["train.n_estimators", "params.yaml:train.max_features"]


def test_column_finds_plain_and_file_qualified_names():
    clash = {"params.yaml:train.seed": 1.0, "other.yaml:train.seed": 2.0, "train.n_estimators": 300.0}
    assert sweep.column(clash, "train.n_estimators", "params.yaml") == 300.0
    assert sweep.column(clash, "params.yaml:train.n_estimators", "params.yaml") == 300.0
    assert sweep.column(clash, "train.seed", "params.yaml") == 1.0
    assert sweep.column(clash, "other.yaml:train.seed", "params.yaml") == 2.0
    assert sweep.column(clash, "train.missing", "params.yaml") is None
    metrics = {"metrics/eval/metrics.json:mae": 250.0, "metrics/other.json:mae": 1.0}
    assert sweep.metric(metrics, "mae") == 250.0


def test_experiments_reads_the_state_of_named_records_only():
    found = sweep.experiments(
        [
            BASELINE,
            record("good", "Success", mae=250.0),
            record("bad", "Failed", mae=252.9),
            record("waiting", "Queued"),
            record("old", None, mae=260.0),
        ]
    )
    assert {name: result["state"] for name, result in found.items()} == {
        "good": "success",
        "bad": "failed",
        "waiting": "queued",
        "old": "unknown",
    }
    assert sweep.metric(found["good"]["record"], "mae") == 250.0


def test_ranking_orders_successful_experiments_by_cv_mae_and_drops_failed_ones():
    results = sweep.experiments(
        [
            record("slow", "Success", mae=260.0, n_estimators=300.0),
            record("failed", "Failed", mae=100.0),
            record("fast", "Success", mae=250.0, n_estimators=100.0),
            record("perfect", "Success", mae=0.0, n_estimators=50.0),
            record("no-metrics", "Success"),
        ]
    )
    ranked = sweep.ranking(results)
    assert [name for name, _ in ranked] == ["perfect", "fast", "slow", "no-metrics"]
    table = sweep.ranking_markdown(ranked, ["train.n_estimators"]).splitlines()
    # issue 17: the grouped-CV mean and std of the model and of the original approach
    assert table[0] == (
        "| rank | experiment | train.n_estimators | cv_mae | cv_mae_std | baseline_cv_mae | "
        "baseline_cv_mae_std | mae | r2 | mape | baseline_mae |"
    )
    assert table[3] == "| 2 | fast | 100 | 255 | - | - | - | 250 | 0.6 | - | - |"
    assert table[4].startswith("| 3 | slow | 300 | 265 | - | - | - | 260 |")
    assert "dvc exp apply perfect" in sweep.apply_hint("perfect")


def test_cell_prints_whole_floats_as_integers():
    assert [sweep.cell(value) for value in (10.0, 0.33, None, "True", 252.8816)] == [
        "10",
        "0.33",
        "-",
        "True",
        "252.8816",
    ]


def test_sweep_refuses_a_tree_with_changes_queued_runs_would_miss(tmp_path, monkeypatch):
    env = tool_env()
    for args in (["git", "init", "-q"], ["git", "commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(args, cwd=tmp_path, env=env, check=True)
    (tmp_path / "new_feature.py").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RentpriceError, match=r"would not see \(\?\? new_feature\.py\)"):
        sweep.refuse_to_start()


def fake_dvc(monkeypatch, *exp_shows):
    """Replace the dvc calls: exp_show answers ``exp_shows`` in turn; every command exits 0."""
    answers = iter(exp_shows)
    commands = []

    def command(args, **_):
        commands.append(list(args))
        return subprocess.CompletedProcess(args, 0, stdout="", stderr="")

    monkeypatch.setattr(sweep, "uncommitted_changes", list)
    monkeypatch.setattr(sweep, "exp_show", lambda: next(answers))
    monkeypatch.setattr(sweep.subprocess, "run", command)
    return commands


def test_a_failed_run_fails_the_sweep_although_dvc_exits_0(monkeypatch, capsys):
    old = record("old-failure", "Failed", mae=1.0)
    commands = fake_dvc(
        monkeypatch,
        [BASELINE, old],
        [BASELINE, old, record("b-exp", "Queued"), record("a-exp", "Queued")],
        [BASELINE, old, record("b-exp", "Failed", mae=252.9), record("a-exp", "Success", mae=250.0)],
    )
    assert sweep.main(["-S", "train.n_estimators=10,20", "--jobs", "2"]) == 2
    assert ["dvc", "exp", "run", "--run-all", "--jobs", "2"] in commands
    assert ["dvc", "queue", "logs", "b-exp"] in commands
    output = capsys.readouterr()
    assert "1 of 2 experiment(s) failed: b-exp" in output.err
    assert "old-failure" not in output.err
    assert [line for line in output.out.splitlines() if line.startswith("| 1 ")] == [
        "| 1 | a-exp | 100 | 255 | - | - | - | 250 | 0.6 | - | - |"
    ]


def test_a_sweep_whose_runs_all_succeed_exits_0(monkeypatch, capsys):
    commands = fake_dvc(
        monkeypatch,
        [BASELINE],
        [BASELINE, record("a-exp", "Queued")],
        [BASELINE, record("a-exp", "Success", mae=250.0)],
    )
    assert sweep.main(["-S", "train.n_estimators=10", "--jobs", "2"]) == 0
    assert "Best by cv_mae: a-exp." in capsys.readouterr().out
    # one experiment, one worker; and the workers are told to stop once the grid is done, since a
    # detached worker that missed leaving when idle would keep the terminal's output open
    run_all = commands.index(["dvc", "exp", "run", "--run-all", "--jobs", "1"])
    assert commands[run_all + 1] == ["dvc", "queue", "stop"]


def test_a_sweep_refuses_to_run_someone_elses_queue(monkeypatch):
    commands = fake_dvc(monkeypatch, [BASELINE, record("theirs", "Queued")])
    assert sweep.main(["-S", "train.n_estimators=10"]) == 2
    assert commands == []


@pytest.mark.parametrize("axis", ["cv.folds=3,5", "params.yaml:cv.repeats=1,3", "cv.seed=1,2"])
def test_a_sweep_over_the_cv_protocol_is_refused_before_queueing(monkeypatch, capsys, axis):
    """cv_mae ranks the sweep: experiments measured on other folds or repeats cannot be ranked by it."""
    commands = fake_dvc(monkeypatch, [BASELINE])
    assert sweep.main(["-S", "train.n_estimators=10,20", "-S", axis]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "ERROR" in line]
    key = axis.split("=")[0].removeprefix("params.yaml:")
    assert len(errors) == 1 and f"{key} changes the grouped CV that ranks the sweep" in errors[0], errors
    assert commands == []
