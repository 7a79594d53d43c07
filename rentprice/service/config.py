"""The service's settings, read from ``RENTPRICE_*`` environment variables (README, Prediction service)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rentprice.errors import RentpriceError
from rentprice.scoring import DVC_LOCK

PREFIX = "RENTPRICE_"
DEFAULT_MODEL = Path("models/model.joblib")
DEFAULT_METRICS = Path("metrics/eval/metrics.json")
DEFAULT_MAX_LISTINGS = 1000
#: About 2 KiB per listing at the default maximum number of listings.
DEFAULT_MAX_REQUEST_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class ServiceConfig:
    """Where the model and its records are, request limits and the reload token.

    ``reload_token`` None disables ``POST /api/v1/model/reload``. ``reload_signal`` is a file the
    processes of one server share: a reload writes the new model version there and every other
    worker loads that version on its next request (gunicorn_conf.py creates it; None: one process).
    """

    model_path: Path = DEFAULT_MODEL
    lock_path: Path = DVC_LOCK
    metrics_path: Path = DEFAULT_METRICS
    max_listings: int = DEFAULT_MAX_LISTINGS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    reload_token: str | None = None
    reload_signal: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServiceConfig:
        """Settings from the environment; unset or empty variables keep their defaults."""

        def value(name: str) -> str | None:
            return environ.get(PREFIX + name) or None

        def path(name: str, default: Path | None) -> Path | None:
            return Path(value(name)) if value(name) else default

        return cls(
            model_path=path("MODEL", DEFAULT_MODEL),
            lock_path=path("LOCK", DVC_LOCK),
            metrics_path=path("METRICS", DEFAULT_METRICS),
            max_listings=positive(PREFIX + "MAX_LISTINGS", value("MAX_LISTINGS"), DEFAULT_MAX_LISTINGS),
            max_request_bytes=positive(
                PREFIX + "MAX_REQUEST_BYTES", value("MAX_REQUEST_BYTES"), DEFAULT_MAX_REQUEST_BYTES
            ),
            reload_token=value("RELOAD_TOKEN"),
            reload_signal=path("RELOAD_SIGNAL", None),
        )


def positive(name: str, text: str | None, default: int) -> int:
    """``text`` as a whole number above 0 (``default`` when None); anything else is a one-line error."""
    if text is None:
        return default
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise RentpriceError(f"{name}: {text!r} is not a positive whole number")
    return number
