"""Shared fixtures: the pulled source snapshot and project copies with their pipeline built once.

Helpers (paths, listings, dvc commands) live in ``tests.support``.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.params_support import get_param, set_params
from tests.support import SOURCE_DB, copy_project, make_project_copy, run

#: Params of ``quick_project``: the fewest folds and repeats the params allow, and fewer trees. A
#: default `dvc repro` of train and evaluate fits 2 x 15 CatBoost models and 15 forests for the
#: grouped CV; these fit 2 x 4 and 4 smaller ones.
QUICK_PARAMS = {"cv.folds": 2, "cv.repeats": 2, "train.n_estimators": 50, "baseline.n_estimators": 20}


@pytest.fixture(scope="session")
def source_db() -> Path:
    """The pulled source snapshot (``make setup`` pulls it)."""
    if not SOURCE_DB.is_file():
        pytest.fail(f"{SOURCE_DB} is missing: run `make setup` (it runs `dvc pull`)")
    return SOURCE_DB


def built_once(tmp_path_factory, worker_id: str, name: str, build: Callable[[Path], Path]) -> Path:
    """The project ``build(folder)`` makes in ``folder/repo``, built once per test run; a copy of it.

    pytest-xdist's workers share the run's temporary folder (its docs: "Making session-scoped fixtures
    execute only once"): the first worker to need the project builds it there under a lock, the
    others wait for it. Each worker gets a copy of its own (``copy_project``), which its tests may
    change. Without xdist (``worker_id`` "master") the parent folder is shared by every run: build
    in this run's.
    """
    if worker_id == "master":
        return build(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent / name
    with open(shared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared.with_suffix(".done")
        if not done.exists():  # first, or an earlier build failed: it fails here again with its output
            shutil.rmtree(shared, ignore_errors=True)
            build(shared)
            done.touch()
    return copy_project(shared / "repo", tmp_path_factory.mktemp(name))


def build_project(destination: Path) -> Path:
    """A project copy at ``destination/repo`` with the source pulled and the whole pipeline reproduced."""
    repo = make_project_copy(destination)
    run(["dvc", "pull", "data/source/rent_apartments.sqlite.dvc"], repo)
    run(["dvc", "repro"], repo)
    return repo


@pytest.fixture(scope="session")
def built_project(tmp_path_factory, worker_id) -> Path:
    """A project copy with the source pulled and the whole pipeline reproduced (``build_project``)."""
    return built_once(tmp_path_factory, worker_id, "built", build_project)


@pytest.fixture(scope="session")
def quick_project(built_project, tmp_path_factory, worker_id) -> Path:
    """A copy of the built project with ``QUICK_PARAMS`` set, reproduced and committed.

    For the tests of DVC's mechanics (what reruns, experiments and reports, push and pull), which need
    a pipeline that retrains, not its figures: each retraining there takes seconds, not half a minute.
    From the built project only train, evaluate and predict rerun (a whole build of its own, beside
    the built project's on the other worker, made the suite no faster: docs/benchmarks.md).
    """

    def build(destination: Path) -> Path:
        repo = copy_project(built_project, destination)
        set_params(repo, {key: value for key, value in QUICK_PARAMS.items() if get_param(repo, key) != value})
        run(["dvc", "repro"], repo)
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-qm", "quick params, reproduced"], repo)
        return repo

    return built_once(tmp_path_factory, worker_id, "quick", build)
