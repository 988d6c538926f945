"""The settings block: one object-store connection (AWS S3, MinIO, Cloudflare R2 or the embedded S3).

Precedence, highest first:

1. keyword arguments to :func:`load_settings`;
2. ``WORKBENCH_*`` environment variables;
3. the standard ``AWS_*`` environment variables;
4. the YAML file (``config_file=`` or ``WORKBENCH_CONFIG``);
5. the defaults of the named profile (``aws``, ``minio``, ``r2``, ``local``).

Secrets (secret key, session token, CloudFront private key) are held in :class:`Secret`, whose
``repr`` and ``str`` are masked, so they never reach logs or error messages by accident.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from workbench.errors import ConfigError

DEFAULT_PUT_TTL = 900
DEFAULT_GET_TTL = 3600
DEFAULT_TIMEOUT = 30
SIGV4_MAX_TTL = 7 * 24 * 3600

PROFILES: dict[str, dict[str, Any]] = {
    "aws": {"region": "us-east-1", "path_style": False},
    "minio": {"region": "us-east-1", "path_style": True, "endpoint": "http://localhost:9000"},
    "r2": {"region": "auto", "path_style": True},
    "local": {"region": "us-east-1", "path_style": True},
}

ENV_WORKBENCH = {
    "WORKBENCH_PROFILE": "profile",
    "WORKBENCH_ENDPOINT": "endpoint",
    "WORKBENCH_REGION": "region",
    "WORKBENCH_BUCKET": "bucket",
    "WORKBENCH_ACCESS_KEY": "access_key",
    "WORKBENCH_SECRET_KEY": "secret_key",
    "WORKBENCH_PATH_STYLE": "path_style",
    "WORKBENCH_PRESIGN_TTL": "presign_ttl",
    "WORKBENCH_PRESIGN_GET_TTL": "presign_get_ttl",
    "WORKBENCH_TIMEOUT": "timeout",
    "WORKBENCH_ACCELERATE": "accelerate",
    "WORKBENCH_CLOUDFRONT_DOMAIN": "cloudfront_domain",
    "WORKBENCH_CLOUDFRONT_KEY_PAIR_ID": "cloudfront_key_pair_id",
    "WORKBENCH_CLOUDFRONT_PRIVATE_KEY": "cloudfront_private_key",
    "WORKBENCH_CLOUDFRONT_PRIVATE_KEY_FILE": "cloudfront_private_key_file",
}

ENV_AWS = {
    "AWS_ENDPOINT_URL_S3": "endpoint",
    "AWS_ENDPOINT_URL": "endpoint",
    "AWS_REGION": "region",
    "AWS_DEFAULT_REGION": "region",
    "AWS_ACCESS_KEY_ID": "access_key",
    "AWS_SECRET_ACCESS_KEY": "secret_key",
    "AWS_SESSION_TOKEN": "session_token",
}

_BOOL_FIELDS = {"path_style", "accelerate"}
_INT_FIELDS = {"presign_ttl", "presign_get_ttl", "timeout"}
_SECRET_FIELDS = {"secret_key", "session_token", "cloudfront_private_key"}
_CREDENTIALS = ("access_key", "secret_key", "session_token")


class Secret:
    """A string that never shows itself in ``repr``/``str``; call :meth:`reveal` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value (only to hand it to a signer or client)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclasses.dataclass(frozen=True)
class Settings:
    """One connection to an S3-compatible bucket, and how URLs for it are presigned."""

    profile: str = "aws"
    bucket: str | None = None
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: Secret | None = None
    session_token: Secret | None = None
    path_style: bool = False
    presign_ttl: int = DEFAULT_PUT_TTL
    presign_get_ttl: int = DEFAULT_GET_TTL
    timeout: int = DEFAULT_TIMEOUT  # seconds a request may take, retries included, before "cannot reach"
    accelerate: bool = False
    cloudfront_domain: str | None = None
    cloudfront_key_pair_id: str | None = None
    cloudfront_private_key: Secret | None = None
    credentials_source: str | None = dataclasses.field(default=None, compare=False)  # where the keys came from

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r}: choose one of {', '.join(PROFILES)}")
        if self.profile == "r2" and not self.endpoint:
            raise ConfigError(
                "profile 'r2' needs an endpoint, e.g. https://<account-id>.r2.cloudflarestorage.com"
            )
        if self.profile == "local" and not self.endpoint:
            raise ConfigError("profile 'local' needs the embedded server's endpoint (see workbench.local_s3)")
        if self.endpoint:
            check_endpoint(self.endpoint)
        check_region(self.region)
        if self.accelerate and (self.endpoint or self.profile != "aws"):
            raise ConfigError(
                "Transfer Acceleration is an AWS S3 feature: it cannot be used with a custom endpoint "
                f"(profile {self.profile!r}); set accelerate to false"
            )
        for name in ("presign_ttl", "presign_get_ttl"):
            check_ttl(getattr(self, name), what=name)
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int) or not 3 <= self.timeout <= 3600:
            raise ConfigError(f"timeout must be a whole number of seconds from 3 to 3600, got {self.timeout!r}")
        if (self.access_key is None) != (self.secret_key is None):
            raise ConfigError("access key and secret key must be given together")

    def require_bucket(self) -> str:
        """Return the bucket name, or raise a clear error when none is configured."""
        if not self.bucket:
            raise ConfigError("no bucket configured: set WORKBENCH_BUCKET, 'bucket:' in the YAML file, or bucket=")
        return self.bucket

    def with_(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **_coerce(changes))

    def to_yaml_dict(self, include_secrets: bool = False) -> dict[str, Any]:
        """Return the settings as a YAML-ready dict; secrets only when explicitly asked for."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None or field.name == "credentials_source":
                continue
            if isinstance(value, Secret):
                if not include_secrets:
                    continue
                value = value.reveal()
            out[field.name] = value
        return out


_REGION = re.compile(r"^[a-z]{2}(-[a-z0-9]+){1,4}$|^auto$|^[a-z0-9][a-z0-9-]{0,62}$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")


def check_region(region: str) -> str:
    """A region name as S3 stores use them (``eu-west-1``, ``auto``, a MinIO ``us-east-1``); nothing else."""
    if not isinstance(region, str) or not _REGION.match(region):
        raise ConfigError(f"region {region!r} is not a region name (like eu-west-1, or auto for R2)")
    return region


def check_endpoint(endpoint: str) -> str:
    """An endpoint URL: ``http(s)://host[:port]`` with an ASCII host name or IP address and no path or query."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise ConfigError(f"endpoint {endpoint!r} is not a URL like https://host:port") from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"endpoint {endpoint!r} must look like http(s)://host[:port]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.match(host):
            raise ConfigError(f"endpoint {endpoint!r}: {host!r} is not a host name (ASCII letters, digits, '-' and '.'; "
                              "write international names in their xn-- form)") from None
    if parts.query or parts.fragment or parts.path not in ("", "/") or (port is not None and not 0 < port < 65536):
        raise ConfigError(f"endpoint {endpoint!r} must be only http(s)://host[:port], without a path or query")
    return endpoint


def check_ttl(seconds: int, what: str = "TTL", error: type[Exception] = ConfigError) -> int:
    """Validate a presign lifetime: at least 1 second, at most the SigV4 maximum of 7 days."""
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise error(f"{what} must be a whole number of seconds, got {seconds!r}")
    if seconds < 1:
        raise error(f"{what} of {seconds} s is too short: the minimum is 1 second")
    if seconds > SIGV4_MAX_TTL:
        raise error(
            f"{what} of {seconds} s is too long: SigV4 presigned URLs last at most 7 days ({SIGV4_MAX_TTL} s)"
        )
    return seconds


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _parse_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def _coerce(values: Mapping[str, Any]) -> dict[str, Any]:
    """Turn raw strings from env/YAML into typed field values; reject unknown names."""
    known = {f.name for f in dataclasses.fields(Settings) if f.name != "credentials_source"} | {"cloudfront_private_key_file"}
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}: known settings are {', '.join(sorted(known))}")
        if value is None:
            continue
        if name == "cloudfront_private_key_file":
            path = Path(str(value)).expanduser()
            if not path.is_file():
                raise ConfigError(f"CloudFront private key file {str(path)!r} does not exist")
            out["cloudfront_private_key"] = Secret(path.read_text())
        elif name in _BOOL_FIELDS:
            out[name] = _parse_bool(name, value)
        elif name in _INT_FIELDS:
            out[name] = _parse_int(name, value)
        elif name == "credentials_source":
            out[name] = value
        elif name in _SECRET_FIELDS:
            out[name] = value if isinstance(value, Secret) else Secret(str(value))
        else:
            out[name] = str(value)
    return out


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML settings file; nested ``cloudfront:`` keys are flattened to ``cloudfront_*``."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"config file {str(file)!r} does not exist")
    try:
        data = yaml.safe_load(file.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(file)!r} is not UTF-8 text (save it as UTF-8)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(file)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(file)!r} must hold a mapping of settings")
    cloudfront = data.pop("cloudfront", None) or {}
    if not isinstance(cloudfront, dict):
        raise ConfigError("'cloudfront:' in the config file must be a mapping (domain, key_pair_id, private_key_file)")
    data.update({f"cloudfront_{k}": v for k, v in cloudfront.items()})
    return data


def _from_env(env: Mapping[str, str], table: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for var, name in table.items():
        if var in env and name not in out and env[var] != "":
            out[name] = env[var]
    return out


def load_settings(
    profile: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from profile defaults, a YAML file, the environment and keyword arguments.

    See the module docstring for the precedence. ``env`` defaults to ``os.environ``.
    """
    env = os.environ if env is None else env
    aws_env = _from_env(env, ENV_AWS)
    wb_env = _from_env(env, ENV_WORKBENCH)
    config_file = config_file or env.get("WORKBENCH_CONFIG") or None
    file_values = read_yaml(config_file) if config_file else {}
    explicit = {k: v for k, v in overrides.items() if v is not None}

    chosen = profile or explicit.pop("profile", None) or wb_env.get("profile") or file_values.get("profile") or "aws"
    if chosen not in PROFILES:
        raise ConfigError(f"unknown profile {chosen!r}: choose one of {', '.join(PROFILES)}")

    merged: dict[str, Any] = dict(PROFILES[chosen])
    layers = (file_values, aws_env, wb_env, explicit)
    names = (f"the settings file {config_file}", "the AWS_* variables", "the WORKBENCH_* variables", "the arguments")
    for layer in layers:
        merged.update(_coerce({k: v for k, v in layer.items() if k not in _CREDENTIALS}))
    for layer, name in zip(reversed(layers), reversed(names)):  # keys and token together, from one source
        if layer.get("access_key") or layer.get("secret_key"):
            merged.update(_coerce({k: layer.get(k) for k in _CREDENTIALS}))
            merged["credentials_source"] = name
            break
    merged["profile"] = chosen
    return Settings(**merged)
