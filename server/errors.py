"""One JSON error shape for every failure: {"error": code, "message": text, "detail": ...}.

Storage and core errors map to their HTTP status here, so routes just raise. No traceback ever
reaches a client; unexpected errors are logged and answered with a generic 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from db import errors as db_errors
from invoke_core import errors as core_errors

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    500: "internal_error",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: Any = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.code = code or _CODES.get(status, "error")


def error_body(status: int, message: str, detail: Any = None, code: str | None = None) -> dict[str, Any]:
    return {"error": code or _CODES.get(status, "error"), "message": message, "detail": detail}


def error_response(status: int, message: str, detail: Any = None, code: str | None = None):
    return jsonify(error_body(status, message, detail, code)), status


def _status_for(exc: Exception) -> int | None:
    table: list[tuple[type[Exception], int]] = [
        (db_errors.NotFound, 404),
        (db_errors.Conflict, 409),
        (db_errors.TooLarge, 413),
        (db_errors.UnsupportedMedia, 415),
        (db_errors.InvalidInput, 422),
        (core_errors.ModelNotFoundError, 404),
        (core_errors.InvalidImageError, 422),
        (core_errors.InvalidCanvasError, 422),
        (core_errors.ModelInstallError, 422),
        (core_errors.UnsupportedError, 422),
    ]
    for cls, status in table:
        if isinstance(exc, cls):
            return status
    return None


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.detail, exc.code)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        detail = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)
        ]
        first = detail[0]
        where = ".".join(first["loc"]) or "body"
        return error_response(422, f"{where}: {first['msg']}", detail)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        message = {413: "the request body is too large"}.get(status, exc.description or exc.name)
        return error_response(status, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        status = _status_for(exc)
        if status is not None:
            return error_response(status, str(exc), code=None)
        log.exception("unhandled error")
        return error_response(500, "internal error: see the server log")
