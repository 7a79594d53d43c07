"""The versioned JSON API: inference (``/api/v1/predict``) and maintenance (health, model, reload)."""

from __future__ import annotations

import hmac
import json
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from rentprice.errors import RentpriceError
from rentprice.scoring import ranges_of
from rentprice.service.drift import record_scored
from rentprice.service.listings import json_int, json_object, judge, listing_json_schema
from rentprice.service.models import holder, served

api = Blueprint("api", __name__, url_prefix="/api/v1")


def error(status: HTTPStatus, message: str, **extra: Any) -> tuple[Response, int]:
    """A JSON error response: ``{"error": message, ...extra}``."""
    return jsonify(error=message, **extra), status


@api.get("/health")
def health() -> Response:
    """Liveness, and whether (and which) model is loaded."""
    model = holder().current
    return jsonify(status="ok", model_loaded=model is not None, model_version=model and model.version)


@api.get("/model")
def model_info() -> Response:
    """The served model: version, source, params, test metrics and training commit."""
    return jsonify(served().info)


@api.get("/schema")
def listing_schema() -> Response:
    """The JSON Schema of one listing (the listing contract), with the served model's trained ranges."""
    return jsonify(listing_json_schema(ranges_of(served().bundle)))


@api.post("/predict")
def predict() -> tuple[Response, int]:
    """Score one listing (a JSON object) or a list of them; 422 when any listing is invalid."""
    if not request.is_json:
        return error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send JSON with Content-Type: application/json")
    try:
        # NaN and Infinity are not JSON: read as the texts they are, judged as batch judges a CSV's "NaN"
        body = json.loads(
            request_body(), parse_int=json_int, parse_constant=str, object_pairs_hook=json_object
        )
    except (ValueError, RecursionError):
        return error(HTTPStatus.BAD_REQUEST, "the body is not valid JSON")
    listings = body if isinstance(body, list) else [body] if isinstance(body, dict) else None
    if not listings:
        return error(HTTPStatus.BAD_REQUEST, "send one listing (a JSON object) or a non-empty list of them")
    limit = holder().config.max_listings
    if len(listings) > limit:
        return error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"{len(listings)} listings; at most {limit} per request"
        )
    model = served()
    verdict = judge(listings, model.bundle)
    record_scored(listings, verdict.predictions)
    status = HTTPStatus.UNPROCESSABLE_ENTITY if verdict.errors else HTTPStatus.OK
    return jsonify(
        model_version=model.version,
        predictions=verdict.predictions,
        errors=verdict.errors,
        treated_as_unknown=verdict.treated_as_unknown,
    ), status


def request_body() -> bytes:
    """The request body; 413 when it is over the size limit, also when it comes chunked (no length).

    Werkzeug stops reading a body without Content-Length at the limit: a body that fills it is
    taken as longer than allowed.
    """
    data = request.get_data(cache=False)
    if request.content_length is None and len(data) >= current_app.config["MAX_CONTENT_LENGTH"]:
        raise RequestEntityTooLarge()
    return data


@api.post("/model/reload")
def reload_model() -> tuple[Response, int]:
    """Load the model file again (bearer token); a failure keeps serving the current model.

    Under gunicorn the worker that loads it tells the master, which loads it too and replaces every
    worker gracefully, so the whole server serves the new version within about a second.
    """
    token = holder().config.reload_token
    if token is None:
        return error(HTTPStatus.FORBIDDEN, "model reload is disabled: the server has no reload token")
    given = request.authorization
    if given is None or given.type != "bearer" or not given.token:
        response, status = error(HTTPStatus.UNAUTHORIZED, "send Authorization: Bearer <token>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="rentprice"'
        return response, status
    if not hmac.compare_digest(given.token.encode(), token.encode()):
        return error(HTTPStatus.FORBIDDEN, "wrong token")
    current = holder().current
    try:
        model, previous = holder().reload()
    except RentpriceError as failure:
        return error(
            HTTPStatus.CONFLICT,
            f"reload failed: {without_paths(str(failure))}",
            model_version=current and current.version,
        )
    return jsonify(
        model_version=model.version,
        previous_version=previous and previous.version,
        changed=previous is None or previous.version != model.version,
    ), HTTPStatus.OK


def without_paths(message: str) -> str:
    """``message`` with the configured model and lock paths cut to their file names."""
    config = holder().config
    spellings = {
        str(spelled): path.name
        for path in (config.model_path, config.lock_path)
        for spelled in (path.resolve(), path)
    }
    for spelled in sorted(spellings, key=len, reverse=True):
        message = message.replace(spelled, spellings[spelled])
    return message
