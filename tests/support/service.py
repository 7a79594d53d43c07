"""Service test helpers: the small models' params, the limits and token of a test service, a listing."""

from __future__ import annotations

from pathlib import Path

from rentprice.schema import SOURCE_COLUMNS, TARGET
from rentprice.service.config import ServiceConfig
from tests.support import VALID_LISTING, small_train

TRAIN_ROWS = 400
TRAIN = small_train(
    model="catboost",
    n_estimators=50,
    facilities_min_count=5,
    random_forest={"max_features": 0.5},
    catboost={"learning_rate": 0.2, "depth": 4},
)
TOKEN = "correct horse battery staple"
MAX_LISTINGS = 10
MAX_REQUEST_BYTES = 20_000
#: A listing as a client sends it: the listing fields without the rent.
LISTING = {name: VALID_LISTING[name] for name in SOURCE_COLUMNS if name != TARGET}


def service_config(directory: Path, **overrides) -> ServiceConfig:
    """Settings for a service on ``directory``: its model.joblib, dvc.lock and metrics.json, a token."""
    settings = {
        "model_path": directory / "model.joblib",
        "lock_path": directory / "dvc.lock",
        "metrics_path": directory / "metrics.json",
        "max_listings": MAX_LISTINGS,
        "max_request_bytes": MAX_REQUEST_BYTES,
        "reload_token": TOKEN,
    }
    return ServiceConfig(**{**settings, **overrides})
