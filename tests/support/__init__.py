"""Helpers shared by the test suites: paths, a valid listing factory, real dvc commands, scripts as modules.

Imported as ``tests.support``; ``tests/conftest.py`` holds only fixtures (pytest imports a conftest
as a plugin, so importing it as a module as well would load it twice).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from dvc.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_DB = REPO_ROOT / "data" / "source" / "rent_apartments.sqlite"
SHARED_REMOTE = REPO_ROOT.parent / "shared" / "dvc-storage"

VALID_LISTING = {
    "address": "1071 HN Amsterdam (Cornelis Schuytbuurt)",
    "area": 80.0,
    "construction_year": 1930.0,
    "rooms": 3.0,
    "bedrooms": 2.0,
    "bathrooms": 1.0,
    "balcony": "yes",
    "storage": "no",
    "parking": "no",
    "furnished": "yes",
    "garage": "no",
    "garden": "Present (47 m², located on the north)",
    "energy": "A",
    "facilities": "Shower, Toilet, Lift",
    "zip": "1071 HN",
    "neighborhood": "Cornelis Schuytbuurt",
    "rent": 2000.0,
}

#: The ``train`` params of the small models the tests fit (``small_train`` varies them): every key
#: both model families read, values chosen for speed, not for accuracy.
SMALL_TRAIN = {
    "model": "random_forest",
    "seed": 0,
    "n_estimators": 20,
    "log_target": True,
    "n_jobs": 2,
    "facilities_min_count": 1,
    "features": {"amenities": True, "garden": True, "energy": True, "facilities": True, "location": True},
    "range_level": 0.8,
    "random_forest": {"max_depth": None, "min_samples_leaf": 1, "max_features": 1.0},
    "catboost": {
        "learning_rate": 0.3,
        "depth": 3,
        "max_ctr_complexity": 1,
        "targets": ["rent", "rent_per_m2"],
    },
}


def small_train(**overrides) -> dict:
    """SMALL_TRAIN with ``overrides``; a group (``features``, ``catboost``...) is updated key by key."""
    return {
        **SMALL_TRAIN,
        **{
            key: {**SMALL_TRAIN[key], **value} if isinstance(value, dict) else value
            for key, value in overrides.items()
        },
    }


def listings(*overrides: dict) -> pd.DataFrame:
    """A frame of valid listings, one per override dict applied to VALID_LISTING."""
    return pd.DataFrame([{**VALID_LISTING, **override} for override in overrides or ({},)])


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: this interpreter's bin first, no analytics, a git identity."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env |= {
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "rentprice tests",
        "GIT_AUTHOR_EMAIL": "tests@example.invalid",
        "GIT_COMMITTER_NAME": "rentprice tests",
        "GIT_COMMITTER_EMAIL": "tests@example.invalid",
    }
    env.pop("RENTPRICE_DB_URL", None)
    return env


def start(args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``args`` in ``cwd`` in a session of its own (its process group can be signalled as a
    terminal would), stdout and stderr to ``log``; ``env`` defaults to ``tool_env()``."""
    with open(log, "w") as handle:
        return subprocess.Popen(
            args, cwd=cwd, env=env or tool_env(), stdout=handle, stderr=handle, start_new_session=True
        )


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, capturing output; on an unexpected exit code fail with its output."""
    result = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def use_private_remotes(repo: Path, source: Path, storage: Path | None) -> None:
    """Point ``repo``'s pull-only ``source`` remote at ``source`` and make ``storage`` its default remote.

    In ``.dvc/config.local``, as a user adds a remote of their own; nothing ever writes to ``../shared``.
    Through DVC's config API, which `dvc remote modify/add --local` use: one edit in this process
    instead of two `dvc` processes (a second each).
    """
    with Config(dvc_dir=repo / ".dvc").edit("local") as config:
        config["remote"]["source"] = {"url": str(source)}
        if storage is not None:
            config["remote"]["storage"] = {"url": str(storage)}
            config["core"]["remote"] = "storage"


def make_project_copy(destination: Path) -> Path:
    """Copy the git-tracked files into a new git repo with private remotes beside it.

    ``destination/source`` is a writable copy of the shared source remote (as root sees it) and
    ``destination/storage`` the user's own remote, the default one (created by the first push).
    """
    if not SHARED_REMOTE.is_dir():
        pytest.fail(f"{SHARED_REMOTE} is missing: the read-only DVC remote must sit beside the repo")
    repo = destination / "repo"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        source = REPO_ROOT / name
        if source.is_file():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    source = destination / "source"
    shutil.copytree(SHARED_REMOTE, source)
    for path in [source, *source.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    run(["git", "init", "-q", "-b", "main"], repo)
    use_private_remotes(repo, source, destination / "storage")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "copy of rentprice"], repo)
    return repo


def copy_project(project: Path, destination: Path) -> Path:
    """A copy of ``project`` (a ``make_project_copy`` repo: git history, DVC cache, outputs) at
    ``destination/repo``, with copies of its remotes beside it (``source``, and ``storage`` if pushed
    to) as its own; returns the repo.
    """
    repo = destination / "repo"
    shutil.copytree(project, repo, symlinks=True)
    shutil.copytree(project.parent / "source", destination / "source")
    if (project.parent / "storage").is_dir():
        shutil.copytree(project.parent / "storage", destination / "storage")
    use_private_remotes(repo, destination / "source", destination / "storage")
    return repo


def stage_started(pid: int) -> bool:
    """Whether a stage process is past its imports: ``run_stage`` holds its ``logs/<stage>.log`` open.

    Before that, from ``import rentprice`` on, Ctrl-C and SIGTERM end it through
    ``rentprice.stopped_while_starting`` (so its signal mask cannot tell the two phases apart).
    False once the process is gone.
    """
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for descriptor in descriptors:
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(descriptor)
            if target.endswith(".log") and Path(target).parent.name == "logs":
                return True
    return False


def load_module(path: str) -> ModuleType:
    """The script at ``path`` (relative to the repository, e.g. ``stages/predict.py``) as a module.

    Stages and scripts are files, not package modules; loading them lets tests call ``main`` and
    their helpers in-process. Each call gives a fresh module.
    """
    name = path.removesuffix(".py").replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
