"""The service's Flask app: blueprints, limits, load shedding, security headers and error pages.

``create_app()`` builds it from ``RENTPRICE_*`` environment variables (or a ``ServiceConfig``);
``make serve`` runs it under gunicorn behind nginx (``rentprice.service.serve``, docs/service.md).
"""

from __future__ import annotations

import time
from http import HTTPStatus

from flask import Flask, Response, jsonify, request
from loguru import logger
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge, ServiceUnavailable

from rentprice.service.api import api
from rentprice.service.config import ServiceConfig
from rentprice.service.drift import drift
from rentprice.service.models import ModelHolder
from rentprice.service.security import SECURITY_HEADERS
from rentprice.service.web import web

API_PREFIX = "/api/"
#: Form parts (fields) a web-page submission may have, url-encoded or multipart; the page sends about 25.
MAX_FORM_PARTS = 1000
URL_ENCODED, MULTIPART = "application/x-www-form-urlencoded", "multipart/form-data"
#: The header the proxy stamps with the time it handed the request on (nginx: ``t=${msec}``).
REQUEST_START = "X-Request-Start"
#: What a shed request's ``Retry-After`` asks for, in seconds.
RETRY_AFTER_SECONDS = 1


def create_app(config: ServiceConfig | None = None) -> Flask:
    """The service app with its model loaded (the config from the environment when None)."""
    config = config or ServiceConfig.from_env()
    app = Flask("rentprice.service")
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_request_bytes,
        # No form field can be larger than the request: only the part count limits a form's shape.
        MAX_FORM_MEMORY_SIZE=config.max_request_bytes,
        MAX_FORM_PARTS=MAX_FORM_PARTS,
    )
    app.json.sort_keys = False
    holder = ModelHolder(config)
    holder.load()
    app.extensions["rentprice"] = holder
    app.register_blueprint(api)
    app.register_blueprint(web)
    app.register_blueprint(drift)

    @app.before_request
    def shed_stale() -> None:
        waited = queue_seconds(request.headers.get(REQUEST_START), time.time())
        if waited is not None and waited > config.max_queue_seconds:
            # read the body first: a worker that answers without reading it hangs up on nginx
            # while nginx still sends it, which nginx reports as a failed worker (502)
            request.get_data()
            raise ServiceUnavailable(
                f"the server is busy (the request waited {waited:.1f} s for a worker); retry later",
                retry_after=RETRY_AFTER_SECONDS,
            )

    @app.before_request
    def limit_url_encoded_parts() -> None:
        # Werkzeug's MAX_FORM_PARTS bounds multipart forms only; the page posts url-encoded ones
        if request.mimetype == URL_ENCODED and form_parts(request.get_data(cache=True)) > MAX_FORM_PARTS:
            raise RequestEntityTooLarge()

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> Response:
        error.description = too_large_reason(config.max_request_bytes)
        return http_error(error)

    app.after_request(secure)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
    return app


def queue_seconds(stamp: str | None, now: float) -> float | None:
    """Seconds since the proxy's ``X-Request-Start: t=<unix seconds>`` stamp; None without a valid one."""
    if not stamp or not stamp.startswith("t="):
        return None
    try:
        return now - float(stamp[2:])
    except ValueError:
        return None


def form_parts(body: bytes) -> int:
    """The fields of a url-encoded form body (``a=1&b=2``: 2; empty: 0)."""
    return body.count(b"&") + 1 if body else 0


def too_large_reason(max_bytes: int) -> str:
    """Which limit the current request exceeded: its size in bytes, or the number of form parts."""
    # A body without Content-Length stops at the byte limit: its stream is then exhausted.
    length = request.content_length
    over_bytes = length > max_bytes if length is not None else getattr(request.stream, "is_exhausted", False)
    if request.mimetype in (MULTIPART, URL_ENCODED) and not over_bytes:
        return f"the form has more than {MAX_FORM_PARTS} parts"
    return f"the request is larger than {max_bytes} bytes"


def secure(response: Response) -> Response:
    """Add the security headers to every response; API responses are never cached."""
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith(API_PREFIX):
        response.headers["Cache-Control"] = "no-store"
    return response


def http_error(error: HTTPException) -> Response:
    """An HTTP error as JSON ``{"error": ...}`` under /api/, as one line of plain text elsewhere."""
    description = error.description or error.name
    if request.path.startswith(API_PREFIX):
        response = jsonify(error=description)
    else:
        response = Response(f"{error.code} {error.name}: {description}\n", mimetype="text/plain")
    response.status_code = error.code or HTTPStatus.INTERNAL_SERVER_ERROR
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def unexpected_error(error: Exception) -> Response:
    """Log an unexpected error with its traceback; the client gets a plain 500 without details."""
    logger.opt(exception=error).error("unexpected error on {} {}", request.method, request.path)
    return http_error(InternalServerError("the server could not handle this request"))
