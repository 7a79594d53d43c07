"""Service fixtures: two small models trained on real listings, a service directory and app factory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from rentprice.dataset import clean_listings
from rentprice.io import read_sql_table
from rentprice.model import build_model, calibrate_range, fit_model, save_model
from rentprice.params import load_params
from rentprice.schema import SOURCE_TABLE_COLUMNS, TARGET
from rentprice.scoring import RANGES, trained_ranges
from rentprice.service.app import create_app
from tests.support import REPO_ROOT
from tests.support.service import TRAIN, TRAIN_ROWS, service_config


@pytest.fixture(scope="session")
def training_rows(source_db) -> pd.DataFrame:
    """The first TRAIN_ROWS cleaned listings of the source snapshot (deterministic order)."""
    params = load_params(REPO_ROOT / "params.yaml").model_dump()
    raw = read_sql_table(f"sqlite:///{source_db}", params["collect"]["table"], SOURCE_TABLE_COLUMNS)
    clean, _ = clean_listings(raw, params["checks"], params["prepare"]["plausible"], "source")
    return clean.head(TRAIN_ROWS)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory, training_rows) -> dict[str, Path]:
    """Two different model files of this project ("first", "second") and a broken one."""
    directory = tmp_path_factory.mktemp("service-models")
    files = {}
    for name, seed in (("first", 0), ("second", 1)):
        train = {**TRAIN, "seed": seed}
        pipeline = build_model(train, {"construction_year": [1500, 2030]})
        fit_model(pipeline, training_rows, training_rows[TARGET], "service tests")
        # calibrated on in-sample residuals: too narrow for real use, enough for the service's tests
        calibration = calibrate_range(training_rows[TARGET], pipeline.predict(training_rows), 0.8)
        files[name] = directory / f"{name}.joblib"
        ranges = trained_ranges(pipeline, training_rows)
        metadata = {"params": train, "training_data_md5": "0" * 32, "range": calibration, RANGES: ranges}
        save_model(pipeline, files[name], metadata)
    files["broken"] = directory / "broken.joblib"
    files["broken"].write_bytes(b"not a model file")
    return files


@pytest.fixture
def service_dir(tmp_path, model_files) -> Path:
    """A directory whose model.joblib is a copy of the first model."""
    shutil.copyfile(model_files["first"], tmp_path / "model.joblib")
    return tmp_path


@pytest.fixture
def client(service_dir):
    """A test client of a service on ``service_dir``."""
    return create_app(service_config(service_dir)).test_client()
