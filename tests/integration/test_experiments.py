"""Experiments end to end: `make sweep` and `make report` on temporary copies of the repo."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dvc.api
import pytest
import yaml

from tests.integration.params_support import get_param, other_count, set_params
from tests.support import load_module, make_project_copy, run, start, use_private_remotes

#: The figures of `make sweep`'s ranking, after rank, name and the swept param.
METRIC_COLUMNS = load_module("scripts/sweep.py").METRIC_COLUMNS

pytestmark = pytest.mark.slow

# The `dvc exp show` command of docs/experiments.md (docs/model.md: cv_mae ranks).
EXP_SHOW = [
    "dvc",
    "exp",
    "show",
    "--md",
    "--drop",
    ".*",
    "--keep",
    r"Experiment|^(cv_mae|cv_mae_std|baseline_cv_mae|baseline_cv_mae_std|mae|baseline_mae)$"
    r"|^train\.(model|n_estimators)$",
    "--sort-by",
    "cv_mae",
]


def experiments_by_name(repo: Path) -> dict[str, dict]:
    """Every experiment of HEAD in `dvc exp show --json`: executor state, params and test metrics."""
    show = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    return {
        experiment["name"]: {
            "state": (experiment.get("executor") or {}).get("state"),
            "train": experiment["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"],
            "metrics": experiment["revs"][0]["data"]["metrics"]["metrics/eval/metrics.json"]["data"],
        }
        for commit in show
        for experiment in commit.get("experiments") or []
    }


def ranking_rows(stdout: str) -> list[list[str]]:
    """The cells of the ranking table `make sweep` prints (header and separator skipped)."""
    rows = [line for line in stdout.splitlines() if re.match(r"\| \d+ \|", line)]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def sweep_counts(repo: Path) -> list[int]:
    """Two small tree counts, both different from the committed one (so each run is a real change)."""
    committed = get_param(repo, "train.n_estimators")
    return [count for count in (10, 20, 30) if count != committed][:2]


@pytest.fixture(scope="module")
def swept(quick_project) -> tuple[Path, subprocess.CompletedProcess]:
    """The quick project after a two-point sweep (two small tree counts) run two at a time."""
    grid = f"GRID=-S train.n_estimators={','.join(map(str, sweep_counts(quick_project)))}"
    result = run(["make", "sweep", grid, "JOBS=2"], quick_project)
    return quick_project, result


def test_two_point_sweep_records_both_experiments_with_metrics(swept):
    repo, result = swept
    queued = re.search(r"queue grid: experiments=2, names=([\w-]+),([\w-]+)", result.stderr)
    assert queued, result.stderr
    names = set(queued.groups())
    found = experiments_by_name(repo)
    assert names <= set(found)
    assert {found[name]["train"]["n_estimators"] for name in names} == set(sweep_counts(repo))
    for name in names:
        assert found[name]["state"] == "success"
        assert set(found[name]["metrics"]) >= {"cv_mae", "cv_mae_std", "mae", "r2", "mape", "baseline_mae"}
        log = run(["dvc", "queue", "logs", name], repo).stdout
        assert re.findall(r"Running stage '(\w+)'", log) == [
            "check_params",
            "train",
            "evaluate",
            "predict",
        ], log
    assert "jobs=2, exit_code=0" in result.stderr
    assert run(["git", "status", "--porcelain"], repo).stdout == ""


def test_sweep_prints_a_ranking_by_cv_mae_and_how_to_apply_the_best(swept):
    repo, result = swept
    found = experiments_by_name(repo)
    rows = ranking_rows(result.stdout)
    assert len(rows) == 2
    by_cv_mae = sorted(rows, key=lambda row: float(row[3]))
    assert rows == by_cv_mae
    for position, (rank, name, trees, *figures) in enumerate(rows, 1):
        metrics = found[name]["metrics"]
        assert int(rank) == position
        assert int(trees) == found[name]["train"]["n_estimators"]
        assert [float(value) for value in figures] == [metrics[column] for column in METRIC_COLUMNS]
    assert f"dvc exp apply {rows[0][1]}" in result.stdout


def test_readme_exp_show_lists_the_columns_that_matter(swept):
    repo, _ = swept
    table = run(EXP_SHOW, repo).stdout.splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == [
        "Experiment",
        "mae",
        "cv_mae",
        "cv_mae_std",
        "baseline_mae",
        "baseline_cv_mae",
        "baseline_cv_mae_std",
        "train.model",
        "train.n_estimators",
    ]
    assert len(table) >= 2 + 2 + 2  # header, separator, workspace, HEAD, two experiments


def test_failing_queued_experiment_fails_the_sweep_with_its_log(quick_project):
    grid = "GRID=-S train.catboost.depth=99 -S train.n_estimators=10"
    result = run(["make", "sweep", grid], quick_project, check=False)
    assert result.returncode != 0
    name = re.search(r"1 of 1 experiment\(s\) failed: ([\w-]+)", result.stderr)
    assert name, result.stderr
    assert f"experiment {name.group(1)} failed; its log (dvc queue logs" in result.stderr
    assert "params.yaml: train.catboost.depth: expected an integer >= 1 and <= 16" in result.stderr
    assert experiments_by_name(quick_project)[name.group(1)]["state"] == "failed"


def test_sweep_refuses_to_start_with_uncommitted_changes(tmp_path):
    repo = make_project_copy(tmp_path)
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n# tweak\n")
    (repo / "scratch.py").write_text("print('not committed')\n")
    result = run(["make", "sweep", "GRID=-S train.n_estimators=10"], repo, check=False)
    assert result.returncode != 0
    assert "uncommitted or untracked changes that queued experiments would not see" in result.stderr
    assert "M params.yaml" in result.stderr and "?? scratch.py" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Queued experiment" not in result.stdout


def clone_sharing_cache(project: Path, destination: Path) -> Path:
    """A git clone of ``project`` that uses its DVC cache and remote, with every output checked out."""
    repo = destination / "repo"
    run(["git", "clone", "-q", str(project), str(repo)], destination)
    run(["dvc", "cache", "dir", "--local", str(project / ".dvc" / "cache")], repo)
    use_private_remotes(repo, project.parent / "source", project.parent / "storage")
    run(["dvc", "checkout", "--quiet"], repo)
    return repo


@pytest.fixture(scope="module")
def two_commits(quick_project, tmp_path_factory) -> Path:
    """A clone whose HEAD retrains with fewer trees than HEAD~1, reproduced and committed."""
    repo = clone_sharing_cache(quick_project, tmp_path_factory.mktemp("report"))
    set_params(repo, {"train.n_estimators": other_count(get_param(repo, "train.n_estimators"))})
    run(["dvc", "repro"], repo)
    run(["git", "commit", "-qam", "fewer trees"], repo)
    return repo


def test_report_on_commits_with_different_params(two_commits):
    repo = two_commits
    run(["make", "report", "BASE=HEAD~1"], repo)
    report = (repo / "report.md").read_text()
    old, new = (
        json.loads(run(["git", "show", f"{rev}:metrics/eval/metrics.json"], repo).stdout)
        for rev in ("HEAD~1", "HEAD")
    )
    trees = [
        yaml.safe_load(run(["git", "show", f"{rev}:params.yaml"], repo).stdout) for rev in ("HEAD~1", "HEAD")
    ]
    old_trees, new_trees = (params["train"]["n_estimators"] for params in trees)
    row = rf"\|\s*params\.yaml\s*\|\s*train\.n_estimators\s*\|\s*{old_trees}\s*\|\s*{new_trees}\s*\|"
    assert re.search(row, report), report
    assert "No parameter differs" not in report
    assert re.search(r"\d+ metric\(s\) differ from `HEAD~1`", report)
    mae_row = re.search(
        r"\|\s*metrics/eval/metrics\.json\s*\|\s*mae\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|", report
    )
    assert mae_row, report
    assert tuple(map(float, mae_row.groups())) == pytest.approx((old["mae"], new["mae"]), abs=1e-4)
    assert old["mae"] != new["mae"]
    images = re.findall(r"!\[([^\]]+)\]\(([^)]+)\)", report)
    assert {title for title, _ in images} == {"Predicted vs actual rent", "Residuals", "Feature importance"}
    for _, link in images:
        assert not link.startswith(("/", "http")), link
        assert (repo / link).read_bytes().startswith(b"\x89PNG"), link
    assert "<script" not in report
    assert run(["git", "status", "--porcelain"], repo).stdout == "", "report files must be git-ignored"


def test_report_on_identical_commits_says_so_instead_of_empty_tables(two_commits):
    repo = two_commits
    run(["make", "report", "BASE=HEAD"], repo)
    report = (repo / "report.md").read_text()
    assert "No parameter differs from `HEAD`." in report
    assert "No metric differs from `HEAD`" in report
    assert not re.search(r"\|\s*Param\s*\|", report), "an empty params table"
    assert len(re.findall(r"!\[[^\]]+\]\([^)]+\.png\)", report)) == 3


def processes_in(repo: Path) -> list[str]:
    """Command lines of the running processes whose working directory is in ``repo``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd").startswith(str(repo)):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def test_ctrl_c_stops_the_sweep_and_every_experiment_it_queued(quick_project, tmp_path):
    repo = shutil.copytree(quick_project, tmp_path / "repo", symlinks=True)
    # seeds no other test runs: DVC's run cache (copied with the project) cannot skip their stages
    seed = get_param(repo, "train.seed")
    sweep = start(
        ["make", "sweep", f"GRID=-S train.seed={seed + 1},{seed + 2}", "JOBS=1"], repo, tmp_path / "sweep.log"
    )
    try:
        deadline = time.monotonic() + 120
        while "stages/train.py" not in " ".join(processes_in(repo)):  # an experiment trains
            assert time.monotonic() < deadline and sweep.poll() is None, (tmp_path / "sweep.log").read_text()
            time.sleep(0.1)
        os.killpg(sweep.pid, signal.SIGINT)  # as a terminal sends it
        assert sweep.wait(timeout=120) != 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sweep.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while (
        left := [command for command in processes_in(repo) if "dvc" in command]
    ) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], left
    states = {record.get("State") for record in dvc.api.exp_show(repo=str(repo)) if record.get("Experiment")}
    assert not states & {"Queued", "Running"}, states
    assert "interrupted by SIGINT" in (tmp_path / "sweep.log").read_text()
