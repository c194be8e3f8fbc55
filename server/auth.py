"""Token auth (required when listening beyond loopback), same-origin CORS by default, and signed image URLs.

The token travels in `Authorization: Bearer`. An `<img src>` cannot send headers, so image files and
thumbnails, and nothing else, may also be fetched with a URL that carries either a short-lived signature
(`?exp=...&sig=...`, what the API hands out in image records) or the token itself (`?token=`). A URL
leaks through logs and history more easily than a header: a signature names one image for an hour or two,
the token is the key to everything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from flask import Flask, request

from .api import API_PREFIX
from .config import ServerConfig
from .errors import error_response

_IMAGES = API_PREFIX + "/images/"
_URL_TOKEN_ENDS = ("/file", "/thumbnail")  # the only resources a URL may carry credentials for
SIGNED_URL_HOURS = 2


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


def url_credentials_allowed(method: str, path: str) -> bool:
    """GETs of one image's file or thumbnail: /api/v1/images/<id>/file|thumbnail."""
    if method not in ("GET", "HEAD") or not path.startswith(_IMAGES):
        return False
    rest = path[len(_IMAGES) :]
    image_id, slash, tail = rest.partition("/")
    return bool(image_id) and bool(slash) and "/" + tail in _URL_TOKEN_ENDS


class UrlSigner:
    """HMAC signatures for image URLs, keyed by the token (a new token voids every signed URL).

    The expiry is rounded to the hour so one image keeps one URL for a while and the browser's cache works.
    """

    def __init__(self, token: str | None):
        self._key = hmac.new(token.encode(), b"invoke-canvas signed image urls", hashlib.sha256).digest() if token else None

    def _signature(self, path: str, expires: int) -> str:
        digest = hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def sign(self, path: str, now: float | None = None) -> str:
        if self._key is None:
            return path
        hour = int(now if now is not None else time.time()) // 3600
        expires = (hour + SIGNED_URL_HOURS) * 3600
        return f"{path}?exp={expires}&sig={self._signature(path, expires)}"

    def verify(self, path: str, expires: str | None, signature: str | None, now: float | None = None) -> bool:
        if self._key is None or not expires or not signature or not expires.isdigit() or len(expires) > 12:
            return False
        if int(expires) < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(self._signature(path, int(expires)).encode(), signature.encode())


def _request_authorised(token: str, signer: UrlSigner) -> bool:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return token_ok(token, header[len("Bearer ") :].strip())
    if header.startswith("Basic ") and request.path.startswith("/sdapi/"):
        # A1111 clients send --api-auth user:password as HTTP Basic: the token is the password, any user
        return token_ok(token, request.authorization.password if request.authorization else None)
    if not url_credentials_allowed(request.method, request.path):
        return False
    if "sig" in request.args:
        return signer.verify(request.path, request.args.get("exp"), request.args.get("sig"))
    return token_ok(token, request.args.get("token"))


def install_auth(app: Flask, token: str | None, config: ServerConfig) -> UrlSigner:
    allowed_origins = set(config.cors_origins)
    signer = UrlSigner(token)

    @app.before_request
    def _check_token():
        if token is None or not request.path.startswith(("/api/", "/sdapi/")) or request.method == "OPTIONS":
            return None
        if not _request_authorised(token, signer):
            hint = "send Authorization: Bearer <token>"
            if "token" in request.args and not url_credentials_allowed(request.method, request.path):
                hint += " (a token in the URL is accepted only for GETs of image files and thumbnails)"
            return error_response(401, f"missing or wrong token: {hint}")
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

    return signer
