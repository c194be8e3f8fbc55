"""Server configuration: defaults < <root>/config.json < INVOKE_CANVAS_* environment < explicit values (CLI flags)."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from invoke_core.limits import VAE_TILING_MODES
from invoke_core.offload import OFFLOAD_MODES

from invoke_core.root import ENV_VAR, resolve_root

ENV_PREFIX = "INVOKE_CANVAS_"


class ConfigError(ValueError):
    """A bad configuration value; the message names the source and the field."""


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path
    host: str = "127.0.0.1"
    port: int = Field(9090, ge=1, le=65535)
    token: str | None = None
    device: str | None = None  # auto
    dtype: str | None = None  # auto
    ram_cache_gb: float | None = Field(None, gt=0)
    vram_cache_gb: float | None = Field(None, gt=0)
    compile: str | None = None  # torch.compile backend of the fast path's compile switch (on with it, any device)
    # the GPU fast path (invoke_core/fast_path.py): auto (on for CUDA), on, off, or a comma list of switches
    fast_path: str = "auto"
    # tile the VAE: "auto" above invoke_core.limits.VAE_TILING_AREA generated pixels
    vae_tiling: Literal[VAE_TILING_MODES] = "auto"  # type: ignore[valid-type]
    # a model over the VRAM budget: how it streams to the card (invoke_core/offload.py)
    offload: Literal[OFFLOAD_MODES] = "auto"  # type: ignore[valid-type]
    # models loaded at start and kept loaded while they fit (with those marked "keep loaded" in the UI)
    resident_models: list[str] = Field(default_factory=list)
    # folders of models kept elsewhere (A1111/Forge, ComfyUI, InvokeAI), scanned at each start: new models
    # are registered in place, models whose files went missing are reported
    models_dirs: list[str] = Field(default_factory=list)
    cors_origins: list[str] = Field(default_factory=list)
    # Host names the server answers to beyond loopback and the bound address ("*": any; see server/guard.py)
    allowed_hosts: list[str] = Field(default_factory=list)
    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(8192 * 8192, gt=0)
    max_side: int = Field(8192, gt=0)
    start_worker: bool = True
    progress_per_second: float = Field(10.0, gt=0)
    # Scale-out (server/scale/): a PostgreSQL server instead of the SQLite file, and a Redis broker for
    # workers on other machines (`invoke-canvas worker`). Neither set: the single-process default.
    database_url: str | None = None
    broker_url: str | None = None
    # images and thumbnails in an S3-compatible bucket (s3://bucket/prefix) instead of the data root's
    # folders; endpoint and credentials from boto3's usual environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID...)
    assets_url: str | None = None
    # a remote worker's lease on its item: no heartbeat for this long and another worker takes it over
    lease_seconds: float = Field(15.0, gt=0, le=3600)
    # the web tier under gunicorn (with a broker): request threads in this process
    web_threads: int = Field(64, ge=4, le=1000)

    @field_validator("token")
    @classmethod
    def _token_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("token must be at least 16 characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        from db.session import check_url

        return check_url(value) if value else None

    @field_validator("assets_url")
    @classmethod
    def _assets_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        from db.errors import InvalidInput
        from db.s3_assets import parse_url

        try:
            parse_url(value)
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://")):
            raise ValueError("the broker must be a Redis URL (redis://host:6379/0)")
        return value or None

    @model_validator(mode="after")
    def _scale_out(self) -> "ServerConfig":
        if self.broker_url and not self.database_url:
            raise ValueError("workers on other machines need a shared database: give --database-url postgresql+psycopg://... too")
        if self.broker_url and not self.is_loopback and not self.token:
            raise ValueError("with workers, set a --token (or INVOKE_CANVAS_TOKEN) so every web process and worker uses the same one")
        return self

    @property
    def distributed(self) -> bool:
        """Jobs run on `invoke-canvas worker` processes through the broker, not in this process."""
        return self.broker_url is not None

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @field_validator("fast_path")
    @classmethod
    def _fast_path(cls, value: str) -> str:
        from invoke_core.errors import UnsupportedError
        from invoke_core.fast_path import parse_fast_path

        try:
            parse_fast_path(value, "cuda")
        except UnsupportedError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


_ENV_FIELDS = (
    "host", "port", "token", "device", "dtype", "ram_cache_gb", "vram_cache_gb", "compile", "fast_path", "vae_tiling", "offload",
    "resident_models", "models_dirs", "cors_origins", "allowed_hosts", "database_url", "broker_url", "assets_url", "lease_seconds",
)
_LIST_FIELDS = ("cors_origins", "allowed_hosts", "resident_models", "models_dirs")


def _from_env() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in _ENV_FIELDS:
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is None or raw == "":
            continue
        values[name] = [o.strip() for o in raw.split(",") if o.strip()] if name in _LIST_FIELDS else raw
    return values


def load_config(overrides: dict[str, Any] | None = None) -> ServerConfig:
    """Merge the sources; explicit `overrides` (CLI flags, tests) win. None values in overrides are ignored."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    root = resolve_root(overrides.pop("root", None) or os.environ.get(ENV_VAR))
    merged: dict[str, Any] = {}
    file = root / "config.json"
    if file.exists():
        try:
            from_file = json.loads(file.read_text())
        except ValueError as exc:
            raise ConfigError(f"{file}: not valid JSON ({exc})") from None
        if not isinstance(from_file, dict):
            raise ConfigError(f"{file}: expected a JSON object")
        merged.update(from_file)
    merged.update(_from_env())
    merged.update(overrides)
    merged["root"] = root
    try:
        return ServerConfig(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"configuration {where}: {first['msg']}") from None
