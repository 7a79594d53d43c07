"""The service's settings, read from ``RENTPRICE_*`` environment variables (docs/service.md).

Light on purpose: pydantic only, so the gunicorn config and the launcher (``rentprice.service.serve``)
read the settings without importing Flask, scikit-learn or pandas.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PositiveFloat, PositiveInt, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rentprice.errors import RentpriceError

PREFIX = "RENTPRICE_"
DEFAULT_MODEL = Path("models/model.joblib")
DEFAULT_LOCK = Path("dvc.lock")
DEFAULT_METRICS = Path("metrics/eval/metrics.json")
DEFAULT_MAX_LISTINGS = 1000
#: About 2 KiB per listing at the default maximum number of listings.
DEFAULT_MAX_REQUEST_BYTES = 2 * 1024 * 1024
#: A request that waited longer than this for a worker is answered 503 instead of scored: its client
#: has likely given up, and scoring it would only delay the requests behind it (docs/service.md).
DEFAULT_MAX_QUEUE_SECONDS = 1.0
DEFAULT_DRIFT_WINDOW = 1000


class ServiceConfig(BaseSettings):
    """Where the model and its records are, request limits, the queue deadline and the reload token.

    Each field is read from ``RENTPRICE_<NAME>`` (the names in the aliases); unset or empty variables
    keep the defaults. ``reload_token`` None disables ``POST /api/v1/model/reload``.
    ``max_queue_seconds``: the longest a request may wait between the proxy and a worker (it applies
    when the proxy stamps ``X-Request-Start``, as ``rentprice.service.serve`` does).
    """

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_ignore_empty=True, frozen=True, validate_by_name=True, extra="ignore"
    )

    model_path: Path = Field(DEFAULT_MODEL, validation_alias=f"{PREFIX}MODEL")
    lock_path: Path = Field(DEFAULT_LOCK, validation_alias=f"{PREFIX}LOCK")
    metrics_path: Path = Field(DEFAULT_METRICS, validation_alias=f"{PREFIX}METRICS")
    max_listings: PositiveInt = Field(DEFAULT_MAX_LISTINGS, validation_alias=f"{PREFIX}MAX_LISTINGS")
    max_request_bytes: PositiveInt = Field(
        DEFAULT_MAX_REQUEST_BYTES, validation_alias=f"{PREFIX}MAX_REQUEST_BYTES"
    )
    max_queue_seconds: PositiveFloat = Field(
        DEFAULT_MAX_QUEUE_SECONDS, validation_alias=f"{PREFIX}MAX_QUEUE_SECONDS"
    )
    reload_token: str | None = Field(None, validation_alias=f"{PREFIX}RELOAD_TOKEN")
    #: Listings the drift window of ``GET /api/v1/model/drift`` holds per worker (docs/drift.md).
    drift_window: PositiveInt = Field(DEFAULT_DRIFT_WINDOW, validation_alias=f"{PREFIX}DRIFT_WINDOW")

    @classmethod
    def from_env(cls) -> ServiceConfig:
        """Settings from the environment; a bad value is a one-line RentpriceError naming the variable."""
        try:
            return cls()
        except ValidationError as error:
            first = error.errors()[0]
            name = ".".join(str(part) for part in first["loc"])
            raise RentpriceError(f"{name}: {first.get('input')!r}: {first['msg']}") from None
