"""A stage stops when its `dvc` dies, whether or not a shell stays between them (rentprice/__init__.py).

A stand-in for `dvc` runs a stand-in stage through ``SHELL -c`` as DVC does, then is killed with
SIGKILL (it can do nothing about it). dash stays the stage's parent; bash replaces itself with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rentprice import command_name, parent_pid
from rentprice.logs import Interrupted, stopping_on_sigterm
from tests.support import REPO_ROOT

#: The stand-in stage: imports the package as a stage does, reports its pid, then waits.
STAGE = "import os, sys, time, rentprice; print(os.getpid(), flush=True); time.sleep(60)"
#: The stand-in `dvc`: runs the stage command through the shell and waits for it.
LAUNCHER = "import subprocess, sys; subprocess.run([sys.argv[1], '-c', sys.argv[2]])"


def running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def launch(shell: str, stage: str) -> subprocess.Popen:
    """The stand-in `dvc` running the stand-in stage code ``stage`` through ``shell``; the stage's
    first line of output is its pid."""
    env = os.environ | {"DVC_STAGE": "train", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, shell, f"{sys.executable} -c '{stage}'"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.parametrize("shell", ["/bin/dash", "/bin/bash"])
def test_a_stage_stops_soon_after_its_dvc_is_killed(shell, tmp_path):
    launcher = launch(shell, STAGE)
    try:
        stage = int(launcher.stdout.readline())
        between = command_name(parent_pid(stage))
        assert between == ("dash" if shell.endswith("dash") else "python"), between  # bash execs
        time.sleep(0.3)  # the watch has begun
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 10
        while running(stage) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(stage), f"the stage ran on after its dvc died (through {shell})"
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)


def test_a_stage_whose_dvc_died_before_it_imported_the_package_stops():
    """The race of a `dvc` killed between starting the stage and the stage's first import."""
    late = "import os, time; print(os.getpid(), flush=True); time.sleep(1); import rentprice; time.sleep(60)"
    launcher = launch("/bin/bash", late)
    try:
        stage = int(launcher.stdout.readline())
        launcher.kill()  # before the stage's import of rentprice
        launcher.wait()
        deadline = time.monotonic() + 10
        while running(stage) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(stage), "the stage ran on after its dvc died before it started"
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)


def test_a_second_sigterm_during_the_cleanup_is_ignored():
    previous = signal.getsignal(signal.SIGTERM)
    cleaned = False
    with pytest.raises(Interrupted), stopping_on_sigterm():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises before this ends
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. the process group's, after the parent's
            time.sleep(0.1)
            cleaned = True
    assert cleaned
    assert signal.getsignal(signal.SIGTERM) == previous
