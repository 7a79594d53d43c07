"""The prediction service: the pipeline's model behind a versioned JSON API and a web page.

``create_app()`` builds the Flask app from ``RENTPRICE_*`` environment variables (or a
``ServiceConfig``); ``make serve`` runs it under gunicorn with ``rentprice/service/gunicorn_conf.py``.
"""

from __future__ import annotations

from http import HTTPStatus

from flask import Flask, Response, jsonify, request
from loguru import logger
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from rentprice.service.api import api
from rentprice.service.config import ServiceConfig
from rentprice.service.drift import drift
from rentprice.service.models import ModelHolder
from rentprice.service.web import web

__all__ = ["ServiceConfig", "create_app"]

API_PREFIX = "/api/"
#: No scripts at all, styles and images from this origin only, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def create_app(config: ServiceConfig | None = None) -> Flask:
    """The service app with its model loaded (the config from the environment when None)."""
    config = config or ServiceConfig.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.json.sort_keys = False
    holder = ModelHolder(config)
    holder.load()
    app.extensions["rentprice"] = holder
    app.register_blueprint(api)
    app.register_blueprint(web)
    app.register_blueprint(drift)

    @app.before_request
    def follow_reloads() -> None:
        if request.endpoint != "static":
            holder.follow()

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> Response:
        error.description = f"the request is larger than {config.max_request_bytes} bytes"
        return http_error(error)

    app.after_request(secure)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
    return app


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
