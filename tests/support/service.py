"""Service test helpers: the small models' params, the limits and token of a test service, a listing."""

from __future__ import annotations

from pathlib import Path

from rentprice.schema import SOURCE_COLUMNS, TARGET
from rentprice.service.config import ServiceConfig
from tests.support import VALID_LISTING

TRAIN_ROWS = 400
TRAIN = {
    "model": "catboost",
    "seed": 0,
    "n_estimators": 50,
    "log_target": True,
    "n_jobs": 2,
    "facilities_min_count": 5,
    "features": {"amenities": True, "garden": True, "energy": True, "facilities": True, "location": True},
    "range_level": 0.8,
    "random_forest": {"max_depth": None, "min_samples_leaf": 1, "max_features": 0.5},
    "catboost": {
        "learning_rate": 0.2,
        "depth": 4,
        "max_ctr_complexity": 1,
        "targets": ["rent", "rent_per_m2"],
    },
}
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
