"""The JSON API through Flask's test client: inference, limits, errors, model info and reload."""

from __future__ import annotations

import html
import io
import json
import shutil
import time

import pandas as pd
import pytest
import yaml

from rentprice.batch import score_file
from rentprice.errors import RentpriceError
from rentprice.io import file_md5
from rentprice.model import load_model
from rentprice.params import load_params
from rentprice.schema import FEATURE_COLUMNS
from rentprice.schema import LISTING as CONTRACT
from rentprice.scoring import score, validate_listings
from rentprice.service.app import MAX_FORM_PARTS, REQUEST_START, create_app, queue_seconds
from rentprice.service.config import DEFAULT_MAX_LISTINGS, DEFAULT_MAX_QUEUE_SECONDS, ServiceConfig
from rentprice.service.listings import FORM_FIELDS
from rentprice.service.models import ModelHolder
from tests.support import REPO_ROOT, run
from tests.support.service import LISTING, MAX_LISTINGS, MAX_REQUEST_BYTES, TOKEN, service_config

PREDICT = "/api/v1/predict"
RELOAD = "/api/v1/model/reload"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: What gunicorn tells the app about a chunked body: the stream ends where the body ends.
CHUNKED = {"wsgi.input_terminated": True}


def post_chunked(client, path: str, body: bytes, content_type: str = "application/json"):
    """POST ``body`` without Content-Length, in chunks, as gunicorn hands such a request to the app."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked"},
        content_type=content_type,
        environ_overrides=CHUNKED,
    )


def expected_rents(model_path, *listings):
    """What rentprice.scoring predicts for these listings: rent, low and high, as the API names them."""
    model = load_model(model_path)
    frame = pd.DataFrame(list(listings), columns=list(FEATURE_COLUMNS), dtype=object)
    prices = score(model, validate_listings(frame, model).scorable)
    return [
        {"predicted_rent": rent, "low": low, "high": high}
        for rent, low, high in prices[
            ["predicted_rent", "predicted_rent_low", "predicted_rent_high"]
        ].values.tolist()
    ]


def test_health_reports_the_loaded_model(client, service_dir):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "model_loaded": True,
        "model_version": file_md5(service_dir / "model.joblib"),
    }


def test_one_listing_is_scored_as_rentprice_scoring_scores_it(client, service_dir):
    response = client.post(PREDICT, json=LISTING)
    assert response.status_code == 200
    body = response.json
    assert body["model_version"] == file_md5(service_dir / "model.joblib")
    assert body["errors"] == []
    assert body["predictions"] == [{"index": 0, **expected_rents(service_dir / "model.joblib", LISTING)[0]}]
    prediction = body["predictions"][0]
    assert 300 < prediction["low"] < prediction["predicted_rent"] < prediction["high"] < 10_000


def test_a_list_is_scored_in_order(client, service_dir):
    listings = [{**LISTING, "area": area} for area in (40, 80, 160)]
    response = client.post(PREDICT, json=listings)
    assert response.status_code == 200
    rents = expected_rents(service_dir / "model.joblib", *listings)
    assert response.json["predictions"] == [{"index": index, **rent} for index, rent in enumerate(rents)]
    assert rents[0]["predicted_rent"] < rents[2]["predicted_rent"]


def test_invalid_listing_gets_422_with_field_and_reason(client):
    response = client.post(PREDICT, json={**LISTING, "area": -5})
    assert response.status_code == 422
    assert response.json["predictions"] == []
    assert response.json["errors"] == [{"index": 0, "field": "area", "reason": "must be positive, got -5"}]


def test_a_count_with_a_fraction_gets_422_as_in_batch(client):
    response = client.post(PREDICT, json=[{**LISTING, "rooms": 2.5}, {**LISTING, "bathrooms": "1.5"}])
    assert response.status_code == 422
    assert response.json["errors"] == [
        {"index": 0, "field": "rooms", "reason": "must be a whole number, got 2.5"},
        {"index": 1, "field": "bathrooms", "reason": "must be a whole number, got 1.5"},
    ]


def test_mixed_request_scores_the_valid_listings_and_explains_the_others(client, service_dir):
    listings = [
        LISTING,
        {**LISTING, "area": "big"},
        {**LISTING, "area": 95},
        7,
        {**LISTING, "balcony": ["yes"]},
        {**LISTING, "garage": 1},
        {**LISTING, "energy": "Q"},
    ]
    response = client.post(PREDICT, json=listings)
    assert response.status_code == 422
    rents = expected_rents(service_dir / "model.joblib", listings[0], listings[2])
    assert response.json["predictions"] == [
        {"index": 0, **rents[0]},
        {"index": 2, **rents[1]},
    ]
    assert response.json["errors"] == [
        {"index": 1, "field": "area", "reason": "'big' is not a number"},
        {"index": 3, "field": None, "reason": "a listing must be a JSON object"},
        {"index": 4, "field": "balcony", "reason": "must be yes, no, true, false or null"},
        {"index": 5, "field": "garage", "reason": "must be yes, no, true, false or null"},
        {"index": 6, "field": "energy", "reason": "'Q' is not an energy label (G to A+++++, or None)"},
    ]


@pytest.mark.parametrize("field", ["area", "rooms", "bedrooms", "bathrooms", "balcony", "garage", "garden"])
def test_a_missing_required_field_is_named(client, field):
    listing = {name: value for name, value in LISTING.items() if name != field}
    response = client.post(PREDICT, json=listing)
    assert response.status_code == 422
    assert response.json["errors"] == [{"index": 0, "field": field, "reason": "missing"}]


def renamed(listing: dict, field: str, key: str) -> dict:
    """``listing`` with ``field`` sent under ``key``, in the same place."""
    return {(key if name == field else name): value for name, value in listing.items()}


@pytest.mark.parametrize(
    ("field", "key", "suggestion"),
    [
        ("zip", "postcode", "zip"),
        ("energy", "energy_label", "energy"),
        ("area", "sqm", "area"),
        ("construction_year", "year_built", "construction_year"),
        ("neighborhood", "neighbourhood", "neighborhood"),
        ("construction_year", "constuction_year", "construction_year"),
        ("energy", "enrgy", "energy"),
        ("address", "adress", "address"),
    ],
)
def test_a_field_under_another_name_is_refused_naming_the_key_not_scored(client, field, key, suggestion):
    # issue 13: the listing was scored with the field unknown (or rejected as "missing"), with a 200
    listings = [LISTING, renamed(LISTING, field, key)]
    response = client.post(PREDICT, json=listings)
    assert response.status_code == 422
    assert response.json["predictions"] == client.post(PREDICT, json=LISTING).json["predictions"]
    assert response.json["errors"] == [
        {"index": 1, "field": key, "reason": f"not a listing field; did you mean {suggestion!r}?"}
    ]


@pytest.mark.parametrize(
    ("field", "key"),
    [("zip", "postcode"), ("energy", "energy_label"), ("area", "sqm"), ("construction_year", "year_built")],
)
def test_batch_and_service_both_refuse_a_field_under_another_name(client, service_dir, tmp_path, field, key):
    listing = renamed(LISTING, field, key)
    [error] = client.post(PREDICT, json=listing).json["errors"]
    assert error["field"] == key
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame([listing]).to_csv(source, index=False)
    with pytest.raises(RentpriceError, match=field):
        score_file(
            service_dir / "model.joblib", str(source), output, tmp_path / "rej.csv",
            max_reject_rate=1, lock=tmp_path / "none.lock",
        )  # fmt: skip
    assert not output.exists(), "no rent from the batch either"


@pytest.mark.parametrize("extra", [{"id": 17}, {"colour": "red"}, {"zip_code": "1071 HN"}, {"": 1}])
def test_a_key_like_no_absent_field_is_refused_pointing_to_the_schema(client, extra):
    response = client.post(PREDICT, json={**LISTING, **extra})
    assert response.status_code == 422 and response.json["predictions"] == []
    [error] = response.json["errors"]
    assert error == {"index": 0, "field": next(iter(extra)), "reason": error["reason"]}
    method, path = error["reason"].removeprefix("not a listing field; the fields are listed by ").split()
    assert method == "GET" and set(client.get(path).json["properties"]) == set(LISTING)


@pytest.mark.parametrize("key", ["rent", "Rent"])
def test_the_rent_is_refused_as_what_is_predicted(client, key):
    response = client.post(PREDICT, json={**LISTING, key: 1500})
    assert response.status_code == 422
    assert response.json["errors"] == [
        {
            "index": 0,
            "field": "rent",
            "reason": "not a listing field: the rent is what the service predicts; remove it",
        }
    ]


def test_other_spellings_and_aliases_of_fields_are_still_scored_with_unknown_keys_refused(client):
    plain = client.post(PREDICT, json=LISTING).json
    spelled = {(" Energy " if name == "energy" else name): value for name, value in LISTING.items()}
    aliased = renamed(LISTING, "construction_year", "constraction_year")
    response = client.post(PREDICT, json=[spelled, {**LISTING, "id": 3}, aliased])
    assert response.status_code == 422
    rent = plain["predictions"][0]["predicted_rent"]
    assert [item["predicted_rent"] for item in response.json["predictions"]] == [rent, rent]
    assert [(item["index"], item["field"]) for item in response.json["errors"]] == [(1, "id")]
    twice = {name: 2 * count for name, count in plain["treated_as_unknown"].items()}
    assert response.json["treated_as_unknown"] == twice, "the spelled fields were read, not left unknown"


def test_values_the_model_treats_as_unknown_are_scored_and_reported(client):
    response = client.post(
        PREDICT,
        json={
            **LISTING,
            "zip": "9999 ZZ",
            "neighborhood": "Atlantis",
            "construction_year": None,
            "energy": "None",
        },
    )
    assert response.status_code == 200
    assert len(response.json["predictions"]) == 1
    assert response.json["treated_as_unknown"] == {
        "construction_year": 1,
        "energy": 1,
        "neighborhood": 1,
        "zip": 1,
    }


def test_numbers_may_come_as_text_and_absurd_numbers_are_rejected(client):
    as_text = json.dumps({**LISTING, "area": "80", "rooms": " 3 "})
    body = f'[{as_text}, {{"area": {"1" * 400}}}]'
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert response.status_code == 422
    assert response.json["predictions"] == client.post(PREDICT, json=LISTING).json["predictions"]
    assert response.json["errors"] == [{"index": 1, "field": "area", "reason": "inf is not a number"}]


def test_too_many_listings_is_refused(client):
    response = client.post(PREDICT, json=[LISTING] * (MAX_LISTINGS + 1))
    assert response.status_code == 413
    assert response.json == {"error": f"{MAX_LISTINGS + 1} listings; at most {MAX_LISTINGS} per request"}
    assert client.post(PREDICT, json=[LISTING] * MAX_LISTINGS).status_code == 200


def test_an_oversize_body_gets_413_json(client):
    body = json.dumps([{**LISTING, "address": "x" * MAX_REQUEST_BYTES}])
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json == {"error": f"the request is larger than {MAX_REQUEST_BYTES} bytes"}


def test_an_oversize_chunked_body_gets_413_not_400(client):
    # no Content-Length: the body arrives in chunks and is cut at the limit while it is read
    body = json.dumps([{**LISTING, "address": "x" * MAX_REQUEST_BYTES}]).encode()
    response = post_chunked(client, PREDICT, body)
    assert response.status_code == 413
    assert response.json == {"error": f"the request is larger than {MAX_REQUEST_BYTES} bytes"}
    small = json.dumps(LISTING).encode()
    response = post_chunked(client, PREDICT, small)
    assert response.status_code == 200


@pytest.mark.parametrize("content_type", ["multipart/form-data", "application/x-www-form-urlencoded"])
def test_a_form_with_too_many_parts_gets_413_naming_the_part_limit(service_dir, content_type):
    # bytes enough for the parts, so the part limit is the one hit
    client = create_app(service_config(service_dir, max_request_bytes=1_000_000)).test_client()
    fields = {f"field{number}": "1" for number in range(MAX_FORM_PARTS + 500)}
    response = client.post("/", data=fields, content_type=content_type)
    assert response.status_code == 413
    assert f"more than {MAX_FORM_PARTS} parts" in response.get_data(as_text=True)
    exactly = {f"field{number}": "1" for number in range(MAX_FORM_PARTS)}
    assert client.post("/", data=exactly, content_type=content_type).status_code == 422  # no listing
    oversize = client.post("/", data={"address": "x" * 1_000_000}, content_type="multipart/form-data")
    assert oversize.status_code == 413
    assert "larger than 1000000 bytes" in oversize.get_data(as_text=True)
    chunked = post_chunked(client, "/", b"x" * 1_000_001, "multipart/form-data; boundary=b")
    assert chunked.status_code == 413
    assert "larger than 1000000 bytes" in chunked.get_data(as_text=True)


def test_a_request_that_waited_too_long_for_a_worker_is_shed_with_503(client):
    stale = {REQUEST_START: f"t={time.time() - DEFAULT_MAX_QUEUE_SECONDS - 1:.3f}"}
    for response in (client.post(PREDICT, json=LISTING, headers=stale), client.get("/", headers=stale)):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "busy" in response.get_data(as_text=True)
        assert response.headers["X-Frame-Options"] == "DENY"
    fresh = {REQUEST_START: f"t={time.time():.3f}"}
    assert client.post(PREDICT, json=LISTING, headers=fresh).status_code == 200
    assert client.post(PREDICT, json=LISTING, headers={REQUEST_START: "garbage"}).status_code == 200


@pytest.mark.parametrize(
    ("stamp", "expected"), [("t=95.5", 4.5), ("t=100", 0.0), ("t=x", None), ("95.5", None), (None, None)]
)
def test_queue_seconds_reads_the_proxy_stamp(stamp, expected):
    assert queue_seconds(stamp, 100.0) == expected


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_gets_415(client, content_type):
    response = client.post(PREDICT, data=json.dumps(LISTING), content_type=content_type)
    assert response.status_code == 415
    assert response.is_json
    assert "application/json" in response.json["error"]


@pytest.mark.parametrize(
    "body",
    ["{not json", "42", '"a listing"', "[]", "null", "[" * 5000 + "]" * 5000],
    ids=["malformed", "number", "string", "empty-list", "null", "too-deep"],
)
def test_a_body_that_is_not_listings_gets_400(client, body):
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.is_json
    assert set(response.json) == {"error"}


def test_unknown_routes_and_methods_answer_json_under_api(client):
    missing = client.get("/api/v1/nope")
    assert missing.status_code == 404
    assert missing.is_json
    wrong_method = client.get(PREDICT)
    assert wrong_method.status_code == 405
    assert wrong_method.is_json
    assert set(wrong_method.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


def test_an_unexpected_error_is_a_plain_500_without_details(client, monkeypatch, service_dir):
    def explode(*_args):
        raise RuntimeError(f"secret detail in {service_dir}")

    monkeypatch.setattr("rentprice.service.listings.score", explode)
    response = client.post(PREDICT, json=LISTING)
    assert response.status_code == 500
    assert response.json == {"error": "the server could not handle this request"}
    text = response.get_data(as_text=True)
    assert "secret" not in text
    assert "Traceback" not in text


def test_security_headers_on_every_response(client):
    for response in (client.get("/"), client.get("/api/v1/health"), client.get("/api/v1/nope")):
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/api/v1/health").headers["Cache-Control"] == "no-store"


def test_without_a_model_the_service_runs_and_says_so(tmp_path, model_files):
    client = create_app(service_config(tmp_path)).test_client()
    assert client.get("/api/v1/health").json == {"status": "ok", "model_loaded": False, "model_version": None}
    for response in (client.post(PREDICT, json=LISTING), client.get("/api/v1/model")):
        assert response.status_code == 503
        assert response.json == {"error": "no model is loaded"}
    failed = client.post(RELOAD, headers=AUTH)
    assert failed.status_code == 409
    assert "model file not found" in failed.json["error"]
    assert str(tmp_path) not in failed.get_data(as_text=True)
    shutil.copyfile(model_files["first"], tmp_path / "model.joblib")
    assert client.post(RELOAD, headers=AUTH).json["previous_version"] is None
    assert client.post(PREDICT, json=LISTING).status_code == 200


# --- model information -------------------------------------------------------------------------


def write_lock(directory, model_md5, evaluated_md5):
    """A dvc.lock whose train stage wrote model.joblib and whose evaluate stage read it into metrics."""
    stages = {
        "train": {"cmd": "train", "outs": [{"path": "model.joblib", "md5": model_md5}]},
        "evaluate": {
            "cmd": "evaluate",
            "deps": [{"path": "model.joblib", "md5": evaluated_md5}],
            "outs": [{"path": ".", "md5": "f" * 32 + ".dir"}],
        },
    }
    (directory / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))


def test_model_info_of_a_plain_file(client, service_dir):
    info = client.get("/api/v1/model").json
    assert info == {
        "version": file_md5(service_dir / "model.joblib"),
        "source": "file",
        "params": load_model(service_dir / "model.joblib")["params"],
        "training_data_md5": "0" * 32,
        "test_metrics": None,
        "training_commit": None,
    }


def test_model_info_of_the_pipelines_model_shows_metrics_and_commit(service_dir):
    version = file_md5(service_dir / "model.joblib")
    write_lock(service_dir, version, version)
    (service_dir / "metrics.json").write_text('{"mae": 250.5, "r2": 0.6}')
    outside_git = create_app(service_config(service_dir)).test_client().get("/api/v1/model").json
    assert outside_git["source"] == "dvc.lock"
    assert outside_git["version"] == version
    assert outside_git["test_metrics"] == {"mae": 250.5, "r2": 0.6}
    assert outside_git["training_commit"] is None

    run(["git", "init", "-q"], service_dir)
    run(["git", "add", "dvc.lock"], service_dir)
    run(["git", "commit", "-qm", "model"], service_dir)
    commit = run(["git", "rev-parse", "HEAD"], service_dir).stdout.strip()
    in_git = create_app(service_config(service_dir)).test_client().get("/api/v1/model").json
    assert in_git["training_commit"] == commit


def test_training_commit_is_null_while_dvc_lock_has_uncommitted_changes(service_dir):
    """After `dvc repro` or `dvc exp run` without a commit, no commit trained the model dvc.lock lists."""
    version = file_md5(service_dir / "model.joblib")
    write_lock(service_dir, "1" * 32, "1" * 32)
    run(["git", "init", "-q"], service_dir)
    run(["git", "add", "dvc.lock"], service_dir)
    run(["git", "commit", "-qm", "an older model"], service_dir)
    write_lock(service_dir, version, version)
    info = create_app(service_config(service_dir)).test_client().get("/api/v1/model").json
    assert info["source"] == "dvc.lock"
    assert info["training_commit"] is None


def test_metrics_of_another_model_version_are_not_shown(service_dir):
    version = file_md5(service_dir / "model.joblib")
    write_lock(service_dir, version, "1" * 32)
    (service_dir / "metrics.json").write_text('{"mae": 250.5}')
    info = create_app(service_config(service_dir)).test_client().get("/api/v1/model").json
    assert info["source"] == "dvc.lock"
    assert info["test_metrics"] is None


def test_training_commit_without_git_is_null(service_dir, monkeypatch):
    version = file_md5(service_dir / "model.joblib")
    write_lock(service_dir, version, version)
    monkeypatch.setenv("PATH", "/nonexistent")
    info = create_app(service_config(service_dir)).test_client().get("/api/v1/model").json
    assert info["source"] == "dvc.lock"
    assert info["training_commit"] is None


# --- reload --------------------------------------------------------------------------------------


def test_reload_needs_a_bearer_token(client):
    missing = client.post(RELOAD)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post(RELOAD, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.post(RELOAD, headers={"Authorization": "Bearer "}).status_code == 401
    wrong = client.post(RELOAD, headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 403
    assert wrong.json == {"error": "wrong token"}
    assert client.post(RELOAD, headers=AUTH).status_code == 200


def test_reload_is_disabled_without_a_configured_token(service_dir):
    client = create_app(service_config(service_dir, reload_token=None)).test_client()
    for headers in ({}, AUTH, {"Authorization": "Bearer None"}):
        response = client.post(RELOAD, headers=headers)
        assert response.status_code == 403
        assert "disabled" in response.json["error"]


def test_reload_serves_the_new_model_file(client, service_dir, model_files):
    first, second = file_md5(model_files["first"]), file_md5(model_files["second"])
    before = client.post(PREDICT, json=LISTING).json
    shutil.copyfile(model_files["second"], service_dir / "model.joblib")
    assert client.post(PREDICT, json=LISTING).json == before  # nothing changes until the reload
    response = client.post(RELOAD, headers=AUTH)
    assert response.status_code == 200
    assert response.json == {"model_version": second, "previous_version": first, "changed": True}
    after = client.post(PREDICT, json=LISTING).json
    assert after["model_version"] == second
    assert after["predictions"] == [{"index": 0, **expected_rents(model_files["second"], LISTING)[0]}]
    assert after["predictions"] != before["predictions"]


@pytest.mark.parametrize("problem", ["broken", "missing", "stale"])
def test_a_failed_reload_keeps_serving_the_old_model(client, service_dir, model_files, problem):
    model = service_dir / "model.joblib"
    version = file_md5(model)
    before = client.post(PREDICT, json=LISTING).json
    if problem == "broken":
        shutil.copyfile(model_files["broken"], model)
    elif problem == "missing":
        model.unlink()
    else:  # the second model where dvc.lock records the first
        write_lock(service_dir, version, version)
        shutil.copyfile(model_files["second"], model)
    response = client.post(RELOAD, headers=AUTH)
    assert response.status_code == 409
    assert response.json["model_version"] == version
    reason = {"broken": "not a model file", "missing": "not found", "stale": "md5 differs"}[problem]
    assert response.json["error"].startswith("reload failed: model.joblib: ")
    assert reason in response.json["error"]
    assert str(service_dir) not in response.get_data(as_text=True)
    assert client.get("/api/v1/health").json["model_version"] == version
    assert client.post(PREDICT, json=LISTING).json == before


def test_a_load_that_fails_keeps_the_served_model(service_dir, model_files):
    # what the gunicorn master does on SIGHUP: keep its model when the file is missing or broken
    holder = ModelHolder(service_config(service_dir))
    holder.load()
    first = holder.current
    model = service_dir / "model.joblib"
    model.unlink()
    holder.load()
    assert holder.current is first
    shutil.copyfile(model_files["broken"], model)
    holder.load()
    assert holder.current is first
    shutil.copyfile(model_files["second"], model)
    holder.load()
    assert holder.current.version == file_md5(model_files["second"])


def test_a_successful_reload_is_announced_and_a_failed_one_is_not(client, service_dir, model_files):
    announced = []
    client.application.extensions["rentprice"].announce = lambda: announced.append(True)
    shutil.copyfile(model_files["broken"], service_dir / "model.joblib")
    assert client.post(RELOAD, headers=AUTH).status_code == 409
    assert announced == []
    shutil.copyfile(model_files["second"], service_dir / "model.joblib")
    assert client.post(RELOAD, headers=AUTH).status_code == 200
    assert announced == [True]


# --- configuration -------------------------------------------------------------------------------


def test_configuration_from_the_environment(tmp_path, monkeypatch):
    variables = {
        "RENTPRICE_MODEL": str(tmp_path / "m.joblib"),
        "RENTPRICE_LOCK": str(tmp_path / "dvc.lock"),
        "RENTPRICE_METRICS": str(tmp_path / "metrics.json"),
        "RENTPRICE_MAX_LISTINGS": "10",
        "RENTPRICE_MAX_REQUEST_BYTES": "4096",
        "RENTPRICE_MAX_QUEUE_SECONDS": "0.5",
        "RENTPRICE_RELOAD_TOKEN": "t",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert ServiceConfig.from_env() == ServiceConfig(
        model_path=tmp_path / "m.joblib",
        lock_path=tmp_path / "dvc.lock",
        metrics_path=tmp_path / "metrics.json",
        max_listings=10,
        max_request_bytes=4096,
        max_queue_seconds=0.5,
        reload_token="t",
    )
    for name in variables:
        monkeypatch.setenv(name, "")
    defaults = ServiceConfig.from_env()
    assert defaults.reload_token is None
    assert defaults.max_listings == DEFAULT_MAX_LISTINGS
    assert defaults.max_queue_seconds == DEFAULT_MAX_QUEUE_SECONDS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_LISTINGS", "0"),
        ("MAX_LISTINGS", "-3"),
        ("MAX_LISTINGS", "ten"),
        ("MAX_LISTINGS", "1.5"),
        ("MAX_REQUEST_BYTES", "0"),
        ("MAX_QUEUE_SECONDS", "-1"),
    ],
)
def test_a_bad_setting_is_a_one_line_error_naming_the_variable(name, value, monkeypatch):
    monkeypatch.setenv(f"RENTPRICE_{name}", value)
    with pytest.raises(RentpriceError, match=f"^RENTPRICE_{name}: '{value}': ") as raised:
        ServiceConfig.from_env()
    assert "\n" not in str(raised.value)


# --- issue 13: the API judges every listing as batch does, from the same contract ---


def post_rents(client, *listings) -> list:
    body = client.post(PREDICT, json=list(listings)).json
    verdict = {item["index"]: item["predicted_rent"] for item in body["predictions"]}
    verdict |= {item["index"]: (item["field"], item["reason"]) for item in body["errors"]}
    return [verdict[index] for index in range(len(listings))]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"area": 83000}, "area"),
        ({"area": 1e300}, "area"),
        ({"area": 12345678901234567890}, "area"),
        ({"area": "83000"}, "area"),
        ({"rooms": 1e39}, "rooms"),
        ({"construction_year": 1e308}, "construction_year"),
        ({"construction_year": "9999"}, "construction_year"),
        ({"bathrooms": 60}, "bathrooms"),
        ({"garden": "Present (83000 m²)"}, "garden"),
    ],
)
def test_a_value_outside_the_trained_range_gets_422_naming_the_field(client, service_dir, override, field):
    ranges = load_model(service_dir / "model.joblib")["ranges"]
    response = client.post(PREDICT, json={**LISTING, **override})
    assert response.status_code == 422 and response.json["predictions"] == []
    [error] = response.json["errors"]
    assert error["field"] == field
    assert "is outside the range the model was trained on" in error["reason"]
    low, high = ranges["garden_m2" if field == "garden" else field]
    assert f"({low:g}–{high:g}" in error["reason"]  # noqa: RUF001


def test_keys_are_matched_ignoring_spacing_case_and_the_source_spelling(client):
    plain = post_rents(client, LISTING)
    spelled = {(" Area " if name == "area" else name.upper()): value for name, value in LISTING.items()}
    source = {
        ("constraction_year" if name == "construction_year" else name): v for name, v in LISTING.items()
    }
    assert post_rents(client, spelled, source) == plain * 2


@pytest.mark.parametrize(
    "key", ["Construction Year", "construction-year", "constructionYear", "\ufeffconstruction_year"]
)
def test_a_key_spelled_with_other_word_joins_is_read_not_ignored(client, key):
    plain = post_rents(client, LISTING)
    spelled = {(key if name == "construction_year" else name): value for name, value in LISTING.items()}
    response = client.post(PREDICT, json=spelled)
    assert "construction_year" not in response.json["treated_as_unknown"]
    assert post_rents(client, spelled) == plain


def test_construction_year_is_read_not_ignored(client, service_dir):
    response = client.post(PREDICT, json={**LISTING, "construction_year": 1005})
    assert response.json["treated_as_unknown"]["construction_year"] == 1, "a placeholder is unknown"
    assert "construction_year" not in client.post(PREDICT, json=LISTING).json["treated_as_unknown"]
    newest = load_model(service_dir / "model.joblib")["ranges"]["construction_year"][1]
    plausible = load_params(REPO_ROOT / "params.yaml").prepare.plausible["construction_year"]
    assert newest < plausible[1], "a year the model has not seen but is no placeholder"
    [error] = client.post(PREDICT, json={**LISTING, "construction_year": newest + 1}).json["errors"]
    assert error["field"] == "construction_year" and "outside the range" in error["reason"]


def test_both_spellings_of_one_field_are_refused(client):
    response = client.post(PREDICT, json={**LISTING, "constraction_year": 1930})
    assert response.status_code == 422
    assert response.json["errors"] == [
        {
            "index": 0,
            "field": "construction_year",
            "reason": "given more than once ('construction_year', 'constraction_year'); keep one",
        }
    ]


def test_a_key_sent_twice_in_one_object_is_refused_not_overwritten(client):
    body = json.dumps({**LISTING, "area": 80})[:-1] + ', "area": 90}'
    response = client.post(PREDICT, data=f"[{json.dumps(LISTING)}, {body}]", content_type="application/json")
    assert response.status_code == 422
    assert response.json["predictions"] == client.post(PREDICT, json=LISTING).json["predictions"]
    assert response.json["errors"] == [
        {"index": 1, "field": "area", "reason": "given more than once ('area', 'area'); keep one"}
    ]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["area", "construction_year"])
def test_nan_and_infinity_get_the_verdict_the_batch_gives_their_text(
    client, tmp_path, service_dir, constant, field
):
    rest = {name: value for name, value in LISTING.items() if name != field}
    body = json.dumps(rest)[:-1] + f', "{field}": {constant}}}'  # not JSON, yet Python's json reads it
    listing = {**LISTING, field: constant}
    pd.DataFrame([listing]).to_csv(tmp_path / "in.csv", index=False)
    score_file(
        service_dir / "model.joblib", str(tmp_path / "in.csv"), tmp_path / "out.csv", tmp_path / "rej.csv",
        max_reject_rate=1, lock=tmp_path / "none.lock",
    )  # fmt: skip
    [batch] = pd.read_csv(tmp_path / "rej.csv")[["field", "reason"]].to_dict("records")
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert response.status_code == 422
    assert response.json["errors"] == [{"index": 0, **batch}]
    assert batch == {"field": field, "reason": f"{constant!r} is not a number"}


def test_values_differing_only_in_spacing_or_case_get_the_same_rent(client):
    spelled = {
        **LISTING,
        "balcony": " YES ",
        "storage": False,
        "energy": " a",
        "neighborhood": LISTING["neighborhood"].upper().replace(" ", "\u00a0") + "\u200b",
        "furnished": "\ufeffno",
        "garden": LISTING["garden"].upper(),
    }
    plain = {**LISTING, "balcony": "yes", "storage": "no", "furnished": "no"}
    assert post_rents(client, spelled) == post_rents(client, plain)


def test_the_listing_json_schema_comes_from_the_contract_and_the_served_model(client, service_dir):
    ranges = load_model(service_dir / "model.joblib")["ranges"]
    schema = client.get("/api/v1/schema").json
    properties = schema["properties"]
    assert set(properties) == {spec.name for spec in CONTRACT}
    assert properties["area"]["maximum"] == ranges["area"][1] and properties["area"]["exclusiveMinimum"] == 0
    assert properties["construction_year"]["aliases"] == ["constraction_year"]
    assert properties["energy"]["enum"][:1] == ["G"]
    assert properties["address"]["x-required"] is False
    assert schema["additionalProperties"] is False, "the API refuses keys that are not listing fields"


def test_batch_service_and_page_give_every_listing_the_same_verdict_and_rent(client, service_dir, tmp_path):
    listings = [
        LISTING,
        {**LISTING, "area": 55.5, "energy": "C", "balcony": "no"},
        {**LISTING, "area": 83000},
        {**LISTING, "rooms": "many"},
        {**LISTING, "neighborhood": "Atlantis", "zip": None},
        {**LISTING, "garden": "Not present", "construction_year": None},
    ]
    service = post_rents(client, *listings)
    frame = pd.DataFrame(listings)
    frame.to_csv(tmp_path / "in.csv", index=False)
    batch = score_file(
        service_dir / "model.joblib", str(tmp_path / "in.csv"), tmp_path / "out.csv", tmp_path / "rej.csv",
        max_reject_rate=1, lock=tmp_path / "none.lock",
    )  # fmt: skip
    assert batch.rows == len(listings)
    scored, rejects = pd.read_csv(tmp_path / "out.csv"), pd.read_csv(tmp_path / "rej.csv")
    from_batch = dict(zip(scored["row"], scored["predicted_rent"], strict=True))
    from_batch |= {row: (field, reason) for row, field, reason in rejects[["row", "field", "reason"]].values}
    assert [from_batch[row] for row in range(len(listings))] == service
    for listing, expected in zip(listings, service, strict=True):
        form = {name: "" if listing.get(name) is None else str(listing[name]) for name in FORM_FIELDS}
        form["garden_m2"] = "0" if listing["garden"] == "Not present" else "47"
        page = client.post("/", data=form).get_data(as_text=True)
        if isinstance(expected, float):
            assert f"€ {expected:,.2f}" in page
        else:
            assert "cannot be scored" in page and expected[1] in html.unescape(page)
