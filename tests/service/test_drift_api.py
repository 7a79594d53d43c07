"""GET /api/v1/model/drift: drift of the listings the service scored, over a rolling window."""

import pytest
import yaml

from rentprice.drift import NO_PROFILE, training_profile
from rentprice.io import read_yaml
from rentprice.model import build_model, calibrate_range, save_model
from rentprice.schema import FEATURE_COLUMNS, TARGET
from rentprice.scoring import RANGES, trained_ranges
from rentprice.service.app import create_app
from rentprice.service.drift import WINDOW_VARIABLE
from tests.support import REPO_ROOT
from tests.support.service import MAX_LISTINGS, TRAIN, service_config

PARAMS = read_yaml(REPO_ROOT / "params.yaml")
PLAUSIBLE = PARAMS["prepare"]["plausible"]


@pytest.fixture(scope="module")
def profiled_model(tmp_path_factory, training_rows):
    path = tmp_path_factory.mktemp("drift-model") / "model.joblib"
    pipeline = build_model(TRAIN, PLAUSIBLE).fit(training_rows, training_rows[TARGET])
    metadata = {
        "drift_profile": training_profile(training_rows, PLAUSIBLE),
        "range": calibrate_range(training_rows[TARGET], pipeline.predict(training_rows), 0.8),
        RANGES: trained_ranges(pipeline, training_rows),
    }
    save_model(pipeline, path, metadata)
    return path


@pytest.fixture
def app(tmp_path, profiled_model, monkeypatch):
    monkeypatch.setenv(WINDOW_VARIABLE, "300")
    (tmp_path / "model.joblib").write_bytes(profiled_model.read_bytes())
    # PSI over a few hundred listings is noisier than over a batch: wider thresholds
    drift = {"psi_warn": 0.25, "psi_alert": 0.5, "min_rows": 100}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"drift": drift}), encoding="utf-8")
    return create_app(service_config(tmp_path))


def listings_of(frame):
    return [{name: row[name] for name in FEATURE_COLUMNS} for row in frame.to_dict("records")]


def send(client, listings) -> int:
    """Post the listings in requests of MAX_LISTINGS; the number that got a rent."""
    scored = 0
    for start in range(0, len(listings), MAX_LISTINGS):
        response = client.post("/api/v1/predict", json=listings[start : start + MAX_LISTINGS])
        assert response.status_code in (200, 422)
        scored += len(response.get_json()["predictions"])
    return scored


def test_drift_is_empty_before_any_listing_is_scored(app):
    body = app.test_client().get("/api/v1/model/drift").get_json()
    assert (body["rows"], body["verdict"], body["window"]) == (0, "no rows", 300)


def test_training_like_listings_show_no_drift_and_the_window_keeps_the_last(app, training_rows):
    client = app.test_client()
    send(client, listings_of(training_rows.sample(320, replace=True, random_state=0)))
    body = client.get("/api/v1/model/drift").get_json()
    assert body["rows"] == 300 and body["verdict"] == "no drift", body["max_psi"]
    assert body["features"]["district"]["unseen_share"] == 0


def test_shifted_listings_alert_and_rejected_ones_are_not_counted(app, training_rows):
    client = app.test_client()
    shifted = training_rows.head(120).assign(area=training_rows["area"].head(120) * 1.5, zip="9999 ZZ")
    listings = listings_of(shifted)
    listings[0]["area"] = "big"  # rejected: not scored, not counted
    scored = send(client, listings)
    assert 100 <= scored <= 119, "the bad area and the areas beyond the trained range are rejected"
    body = client.get("/api/v1/model/drift").get_json()
    assert (body["rows"], body["verdict"]) == (scored, "drift alert")
    assert body["features"]["district"]["unseen_share"] == 1.0
    assert body["features"]["area"]["psi"] >= 0.5


def test_a_model_without_a_profile_says_so(service_dir, monkeypatch):
    monkeypatch.delenv(WINDOW_VARIABLE, raising=False)
    client = create_app(service_config(service_dir)).test_client()
    body = client.get("/api/v1/model/drift").get_json()
    assert body["verdict"] == NO_PROFILE and body["window"] == 1000


@pytest.mark.parametrize(
    ("line", "phrase"), [("psi_warn: '0.1'", "given '0.1' (a string)"), ("min_rows: yes", "given 'yes'")]
)
def test_invalid_drift_params_are_a_500_naming_the_key(app, tmp_path, line, phrase):
    """Thresholds are validated as the stages validate them, never compared as strings or guessed."""
    drift = {"psi_warn": 0.25, "psi_alert": 0.5, "min_rows": 100}
    text = yaml.safe_dump({"drift": drift})
    key = line.split(":")[0]
    (tmp_path / "params.yaml").write_text(
        "\n".join(f"  {line}" if row.strip().startswith(f"{key}:") else row for row in text.splitlines())
    )
    response = app.test_client().get("/api/v1/model/drift")
    assert response.status_code == 500
    message = response.get_json()["error"]
    assert f"drift.{key}: expected" in message and phrase in message and "\n" not in message
    assert str(tmp_path) not in message  # no server path in an answer


def test_a_params_file_without_a_drift_group_gives_the_default_thresholds(app, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"seed": 1}}))
    assert app.test_client().get("/api/v1/model/drift").status_code == 200
