"""Who may talk to the server, checked on every request (Socket.IO's too) before Flask sees it.

- Host: only the names the server is reached by (loopback names, the bound address, configured names).
  Without this check, DNS rebinding hands the API to any web page: the page's own name is made to
  resolve to 127.0.0.1 and its scripts become "same origin" with us (Jupyter, Django and Vite check the
  Host header for the same reason).
- Origin: a state-changing request (POST, PUT, PATCH, DELETE) from a page of another origin is refused,
  whatever its content type. CORS only protects what a browser preflights; a bodiless POST or a
  multipart form is sent without asking. `Sec-Fetch-Site: cross-site` is refused likewise.

Requests without Origin (curl, scripts, the CLI) are not cross-site requests of a browser and pass.
Header values are parsed by splitting, in linear time.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .config import ServerConfig
from .errors import error_body

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WILDCARDS = ("0.0.0.0", "::", "")


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header (`name`, `name:port`, `[v6]:port`) as (lower-case name, port); None when malformed."""
    value = value.strip()
    if not value or len(value) > 255:
        return None
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    elif value.count(":") > 1:  # a bare IPv6 address is not a valid Host
        return None
    else:
        name, colon, port_text = value.partition(":")
        port_text = port_text if colon else None
    if port_text is not None and not (port_text.isdigit() and len(port_text) <= 5):
        return None
    name = name.lower().rstrip(".")
    if not name:
        return None
    return name, int(port_text) if port_text is not None else None


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


@dataclass(frozen=True)
class AccessPolicy:
    names: frozenset[str]  # host names (lower case) the server answers to
    any_host: bool  # configured "*": no Host check
    any_ip: bool  # bound to every interface: any IP literal (a literal cannot be rebound)
    port: int
    origins: frozenset[str]  # configured extra origins (cors_origins)

    @classmethod
    def from_config(cls, cfg: ServerConfig) -> AccessPolicy:
        names = set(LOOPBACK_NAMES) | {h.lower().rstrip(".") for h in cfg.allowed_hosts if h != "*"}
        bound = cfg.host.strip("[]").lower()
        any_ip = bound in _WILDCARDS
        if bound not in _WILDCARDS:
            names.add(bound)
        if not cfg.is_loopback:  # reached from the network: by this machine's name too
            hostname = socket.gethostname().lower()
            names.update({hostname, hostname.split(".")[0]})
        return cls(frozenset(names), "*" in cfg.allowed_hosts, any_ip, cfg.port, frozenset(cfg.cors_origins))

    def host_ok(self, host_header: str | None) -> bool:
        if self.any_host:
            return True
        parsed = split_host(host_header or "")
        if parsed is None:
            return False
        name, _port = parsed
        if name in self.names:
            return True
        ip = _ip(name)
        return ip is not None and (ip.is_loopback or self.any_ip)

    def own_origins(self, host_header: str | None) -> set[str]:
        """The app's own origins: as reached now (the Host header) and under each loopback name."""
        own = {f"http://{name}:{self.port}" for name in ("localhost", "127.0.0.1", "[::1]")}
        if host_header and self.host_ok(host_header):
            own.add(f"http://{host_header.strip().lower()}")
            own.add(f"https://{host_header.strip().lower()}")  # behind a TLS proxy
        return own

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None:
            return True
        origin = origin.strip().lower().rstrip("/")
        return origin in self.origins or origin in self.own_origins(host_header)

    def socketio_origin_check(self) -> Callable[..., bool]:
        """For engine.io's `cors_allowed_origins`: the handshake's Origin must be one of ours."""

        def allowed(origin: str | None, environ: dict[str, Any] | None = None) -> bool:
            host = (environ or {}).get("HTTP_HOST")
            return origin is None or self.origin_ok(origin, host)

        return allowed

    def refusal(self, environ: dict[str, Any]) -> tuple[int, str] | None:
        """(status, message) for a request that must not reach the app, else None."""
        host = environ.get("HTTP_HOST")
        if not self.host_ok(host):
            return 403, f"this server does not answer to the host {(host or '')[:100]!r}: configure allowed_hosts to add a name"
        if environ.get("REQUEST_METHOD", "GET").upper() in STATE_CHANGING:
            origin = environ.get("HTTP_ORIGIN")
            if not self.origin_ok(origin, host):
                return 403, f"state-changing requests from another origin ({origin[:100]!r}) are refused"
            if environ.get("HTTP_SEC_FETCH_SITE", "").strip().lower() == "cross-site":
                return 403, "state-changing requests from another site are refused"
        return None


class AccessGuard:
    """WSGI middleware around the whole app (Socket.IO included): refuses by `AccessPolicy`."""

    def __init__(self, app: Callable, policy: AccessPolicy):
        self.app = app
        self.policy = policy

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        refused = self.policy.refusal(environ)
        if refused is None:
            return self.app(environ, start_response)
        status, message = refused
        log.warning("refused %s %s: %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "")[:200], message)
        body = json.dumps(error_body(status, message)).encode()
        start_response(f"{status} Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
