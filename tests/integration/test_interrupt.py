"""Stopping `dvc repro` stops its running stage: nothing is written later and nothing is left behind.

DVC ignores SIGINT while a stage runs (Ctrl-C reaches the stage itself, as the whole foreground
process group gets it) and dies on SIGTERM or SIGKILL without stopping the stage; the stage asks
Linux for SIGTERM when its parent dies, and watches `dvc` itself when DVC ran it through a shell
that stays its parent (dash, DVC's ``/bin/sh`` when ``SHELL`` is unset, as in CI)
(rentprice/__init__.py). It removes its temporary files on SIGTERM.
"""

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from rentprice import command_name, parent_pid
from rentprice.io import TEMP_DIR, file_md5
from tests.integration.params_support import get_param, set_params
from tests.support import run, stage_started, start, tool_env

pytestmark = pytest.mark.slow

MODEL = "models/model.joblib"


def stage_process(repo: Path, script: str) -> int | None:
    """The pid of the process running ``script`` in ``repo``, if any."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if (
                entry.name.isdigit()
                and script.encode() in command
                and os.readlink(entry / "cwd") == str(repo)
            ):
                return int(entry.name)
        except OSError:  # gone meanwhile, or not ours
            continue
    return None


def wait_for(condition, what: str, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize(
    ("stop", "shell"),
    [
        ("ctrl-c", "/bin/bash"),  # SIGINT to the process group, as a terminal sends it
        ("sigterm", "/bin/bash"),  # to dvc alone (e.g. `kill PID`, a CI timeout); bash execs the stage
        ("sigterm", "/bin/dash"),  # dash stays the stage's parent
        ("sigkill", "/bin/dash"),  # to dvc alone
    ],
)
def test_stopping_dvc_repro_stops_the_training_stage(built_project, tmp_path, stop, shell):
    repo = shutil.copytree(built_project, tmp_path / "repo", symlinks=True)
    model = file_md5(repo / MODEL)
    # more trees than committed: a new model that takes long enough to interrupt
    committed = get_param(repo, "train.n_estimators")
    set_params(repo, {"train.n_estimators": 4 * committed + 1})
    # DVC runs stage commands with $SHELL -c
    dvc = start(["dvc", "repro", "train"], repo, tmp_path / "dvc.log", tool_env() | {"SHELL": shell})
    try:
        pid = wait_for(lambda: stage_process(repo, "stages/train.py"), "the train stage to start")
        # dash stays between dvc and the stage (the watcher's case); bash replaces itself with it
        assert command_name(parent_pid(pid)) == ("dash" if shell.endswith("dash") else "dvc")
        wait_for(lambda: stage_started(pid), "the train stage to set up its signals")
        time.sleep(0.5)  # into the work
        if stop == "ctrl-c":
            os.killpg(dvc.pid, signal.SIGINT)
        else:
            os.kill(dvc.pid, signal.SIGTERM if stop == "sigterm" else signal.SIGKILL)
        assert dvc.wait(timeout=60) != 0
        wait_for(lambda: stage_process(repo, "stages/train.py") is None, "the train stage to stop", 30)
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of dvc, its shell and stage
            os.killpg(dvc.pid, signal.SIGKILL)
    # DVC removed the old model before it ran the stage; the stopped stage wrote no new one
    assert not (repo / MODEL).exists(), "the stage went on and wrote a model"
    assert not (repo / TEMP_DIR).exists() or list((repo / TEMP_DIR).iterdir()) == []
    assert list(repo.glob("models/.*.tmp")) == []
    set_params(repo, {"train.n_estimators": committed})  # DVC's locks are free: the old model comes back
    assert "Running stage" not in run(["dvc", "repro"], repo).stdout  # from DVC's run cache
    assert file_md5(repo / MODEL) == model


def test_ctrl_c_while_a_stage_starts_is_one_line_and_dvc_repro_restores_its_metrics(quick_project, tmp_path):
    """Ctrl-C during evaluate's imports: no traceback; the metrics DVC deleted come back with dvc repro."""
    repo = shutil.copytree(quick_project, tmp_path / "repo", symlinks=True)
    committed = get_param(repo, "baseline.n_estimators")
    set_params(repo, {"baseline.n_estimators": committed + 1})  # evaluate reruns
    dvc = start(["dvc", "repro", "evaluate"], repo, tmp_path / "dvc.log")
    try:
        pid = wait_for(lambda: stage_process(repo, "stages/evaluate.py"), "the evaluate stage to start")
        # past the interpreter's own start (~0.1 s, before any line of the script can run) and well
        # inside the seconds of imports that follow `import rentprice`, before run_stage
        time.sleep(0.5)
        assert not stage_started(pid), "the stage got past its imports: the machine is too slow for this test"
        os.killpg(dvc.pid, signal.SIGINT)  # as a terminal sends it, while the stage imports
        assert dvc.wait(timeout=60) != 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dvc.pid, signal.SIGKILL)
    output = (tmp_path / "dvc.log").read_text()
    assert "Traceback" not in output and "interrupted by SIGINT" in output, output
    set_params(repo, {"baseline.n_estimators": committed})
    run(["dvc", "repro"], repo)  # evaluate again, with the committed params: the same metrics
    changed = run(["git", "status", "--porcelain"], repo).stdout.splitlines()
    assert [line for line in changed if not line.endswith("params.yaml")] == []  # its YAML round trip
