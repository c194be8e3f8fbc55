"""Token auth (required when listening beyond loopback) and same-origin CORS by default."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, request

from .config import ServerConfig
from .errors import error_response


def effective_token(config: ServerConfig) -> tuple[str | None, bool]:
    """(token, generated): a non-loopback server without a token gets a fresh one."""
    if config.token:
        return config.token, False
    if config.is_loopback:
        return None, False
    return secrets.token_urlsafe(24), True


def token_ok(expected: str | None, given: str | None) -> bool:
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def request_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :].strip()
    # <img src> cannot send headers: files may carry the token in the query string.
    return request.args.get("token")


def install_auth(app: Flask, token: str | None, config: ServerConfig) -> None:
    allowed_origins = set(config.cors_origins)

    @app.before_request
    def _check_token():
        if request.path.startswith("/api/") and request.method != "OPTIONS" and not token_ok(token, request_token()):
            return error_response(401, "missing or wrong token: send Authorization: Bearer <token>")
        return None

    @app.after_request
    def _cors(response):
        origin = request.headers.get("Origin")
        if origin and origin in allowed_origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, PUT, DELETE, OPTIONS"
            response.headers["Vary"] = "Origin"
        return response
