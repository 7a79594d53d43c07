"""The model a service process serves: loading, reloading, and `served()` for the requests."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from flask import abort, current_app
from loguru import logger

from rentprice.errors import ModelError, RentpriceError
from rentprice.io import file_md5
from rentprice.logs import step
from rentprice.scoring import known_locations, load_scoring_model, lock_stages, locked_md5
from rentprice.service.config import ServiceConfig

GIT_TIMEOUT_SECONDS = 10
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ServedModel:
    """A loaded model bundle, its version (the md5 of its file) and what ``GET /api/v1/model`` shows."""

    bundle: dict[str, Any]
    version: str
    info: dict[str, Any]
    neighborhoods: tuple[str, ...]


def load_served_model(config: ServiceConfig) -> ServedModel:
    """Load the configured model file with its records; any problem is a one-line ModelError.

    The version is the md5 of the file, which ``load_scoring_model`` has checked against dvc.lock
    when the lock lists the file (the pipeline's own model).
    """
    path = config.model_path
    with step("load model") as facts:
        before = _md5(path)
        bundle = load_scoring_model(path, config.lock_path)
        version = _md5(path)
        if version != before:
            raise ModelError(f"{path}: the file changed while it was loading; reload again")
        pipelined = locked_md5(path, config.lock_path) is not None
        info = {
            "version": version,
            "source": "dvc.lock" if pipelined else "file",
            "params": bundle.get("params"),
            "training_data_md5": bundle.get("training_data_md5"),
            "test_metrics": evaluated_metrics(config, version) if pipelined else None,
            "training_commit": last_commit(config.lock_path) if pipelined else None,
        }
        facts.update(version=version, source=info["source"])
    known = known_locations(bundle["pipeline"])
    neighborhoods = tuple(sorted(known[1] - {UNKNOWN})) if known else ()
    return ServedModel(bundle, version, info, neighborhoods)


def _md5(path: Path) -> str | None:
    """The file's md5, None when it does not exist; an unreadable file is a ModelError."""
    try:
        return file_md5(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ModelError(f"{path}: cannot read the model file ({error.strerror})") from None


def evaluated_metrics(config: ServiceConfig, version: str) -> dict[str, Any] | None:
    """The test metrics file, if dvc.lock records it as an output of a stage that read this model version."""
    stages = lock_stages(config.lock_path)
    model, metrics = config.model_path.resolve(), config.metrics_path.resolve()
    root = config.lock_path.parent
    for stage in stages.values():
        read_model = any(
            (root / dep["path"]).resolve() == model and dep.get("md5") == version
            for dep in stage.get("deps", [])
        )
        wrote_metrics = any(
            (root / out["path"]).resolve() in (metrics, *metrics.parents) for out in stage.get("outs", [])
        )
        if read_model and wrote_metrics:
            return _read_json(config.metrics_path)
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None (logged) when it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("{}: no test metrics ({})", path, error.__class__.__name__)
        return None
    return data if isinstance(data, dict) else None


def last_commit(lock: Path) -> str | None:
    """The git commit that last changed ``lock``, when the working tree's ``lock`` is that commit's.

    None outside a git work tree, without git, or when ``lock`` has changes not committed (a
    ``dvc repro`` or ``dvc exp run`` since): the model it lists was then trained by no commit.
    """
    lock = lock.resolve()
    commit = _git(["log", "-1", "--format=%H", "--", lock.name], lock.parent)
    if not commit or _git(["status", "--porcelain", "--", lock.name], lock.parent) != "":
        return None
    return commit


def _git(arguments: list[str], directory: Path) -> str | None:
    """What ``git <arguments>`` prints in ``directory``, stripped; None when it fails or git is missing."""
    try:
        result = subprocess.run(
            ["git", *arguments],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


class ModelHolder:
    """The model one process serves, swapped whole so a request always sees one consistent model.

    Under gunicorn the master process builds the app (``preload_app``) and so loads the model once;
    every worker is a fork of the master and starts with the model the master holds, whatever the
    model file looks like at that moment. ``announce``, set in each worker (gunicorn_conf.py), tells
    the master after a successful reload in that worker, so the master loads the file too and replaces
    its workers gracefully (``SIGHUP``).
    """

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.current: ServedModel | None = None
        self.announce: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model file; when it cannot be loaded, keep the served model (or none) and log why."""
        try:
            self.reload()
        except RentpriceError as error:
            kept = f"still serving version {self.current.version}" if self.current else "no model served"
            logger.error("model not loaded ({}): {}", kept, error)

    def reload(self) -> tuple[ServedModel, ServedModel | None]:
        """Load the model file again; returns the new and the previous model.

        Raises RentpriceError, keeping the current model, when the file is missing or cannot be loaded.
        """
        with self._lock:
            model = load_served_model(self.config)
            previous, self.current = self.current, model
        logger.info(
            "serving model version {} (was {})", model.version, previous.version if previous else None
        )
        if self.announce is not None:
            self.announce()
        return model, previous


def holder() -> ModelHolder:
    """The model holder of the running app."""
    return current_app.extensions["rentprice"]


def served() -> ServedModel:
    """The model this process serves; 503 when none is loaded."""
    model = holder().current
    if model is None:
        abort(HTTPStatus.SERVICE_UNAVAILABLE, "no model is loaded")
    return model
