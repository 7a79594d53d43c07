"""``GET /api/v1/model/drift``: the drift of the listings this process scored lately from the training data.

The same statistics as batch scoring (``rentprice.drift``) over a rolling window of the last
``RENTPRICE_DRIFT_WINDOW`` (default 1,000) listings scored through the API or the web page. Each
server process (gunicorn worker) keeps its own window. Thresholds come from the ``drift`` params in
the ``params.yaml`` beside the service's dvc.lock (validated), or ``rentprice.drift.DEFAULT_THRESHOLDS``
without that file.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import pandas as pd
from flask import Blueprint, Response, abort, current_app, jsonify

from rentprice.drift import DEFAULT_THRESHOLDS, PROFILED_COLUMNS, DriftMonitor
from rentprice.errors import ParamsError
from rentprice.params import load_group
from rentprice.schema import ALIASES, header_key
from rentprice.service.config import PREFIX
from rentprice.service.listings import INDEX

drift = Blueprint("drift", __name__, url_prefix="/api/v1")

WINDOW_VARIABLE = f"{PREFIX}DRIFT_WINDOW"
EXTENSION = "rentprice.drift"


class ScoredWindow:
    """The profiled fields of the last ``size`` listings scored, oldest first; safe across threads."""

    def __init__(self, size: int):
        self.size = size
        self._listings: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, listings: Sequence[Mapping[str, Any]]) -> None:
        """Append scored listings (JSON objects, keys in any accepted spelling); keep the last ``size``."""
        rows = []
        for listing in listings:
            named = {ALIASES.get(header_key(key), key): value for key, value in listing.items()}
            rows.append({name: named.get(name) for name in PROFILED_COLUMNS})
        with self._lock:
            self._listings.extend(rows)

    def frame(self) -> pd.DataFrame:
        """The window as a frame with the profiled columns (values as sent)."""
        with self._lock:
            rows = list(self._listings)
        return pd.DataFrame(rows, columns=list(PROFILED_COLUMNS), dtype=object)


@drift.record_once
def _create_window(state) -> None:
    size = state.app.extensions["rentprice"].config.drift_window  # ServiceConfig, RENTPRICE_DRIFT_WINDOW
    state.app.extensions[EXTENSION] = ScoredWindow(size)


def record_scored(listings: Sequence[object], predictions: Sequence[Mapping[str, Any]]) -> None:
    """Add the listings that got a prediction (``Verdict.predictions``) to the app's window."""
    window = current_app.extensions.get(EXTENSION)
    if window is not None:
        window.add([listings[prediction[INDEX]] for prediction in predictions])


def thresholds() -> dict[str, float]:
    """The ``drift`` params of the ``params.yaml`` beside the service's dvc.lock, else the defaults.

    The defaults apply without that file or without a ``drift`` group in it. A group is validated
    as the stages validate it: an invalid one is logged and answers 500 with the reason (the file
    named without its server path) rather than a summary against thresholds nobody set.
    """
    params = current_app.extensions["rentprice"].config.lock_path.parent / "params.yaml"
    if not params.is_file():
        return dict(DEFAULT_THRESHOLDS)
    try:
        group = load_group(params, "drift")
    except ParamsError as error:
        current_app.logger.error("%s", error)
        abort(HTTPStatus.INTERNAL_SERVER_ERROR, str(error).replace(str(params), params.name, 1))
    return dict(DEFAULT_THRESHOLDS) if group is None else group.model_dump()


@drift.get("/model/drift")
def model_drift() -> Response:
    """The drift summary of the scored-listings window against the served model's training profile."""
    model = current_app.extensions["rentprice"].current
    if model is None:
        abort(HTTPStatus.SERVICE_UNAVAILABLE, "no model is loaded")
    window = current_app.extensions[EXTENSION]
    monitor = DriftMonitor(model.bundle.get("drift_profile"))
    monitor.update(window.frame())
    return jsonify(model_version=model.version, window=window.size, **monitor.summary(thresholds()))
