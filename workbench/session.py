"""Which bucket a notebook (or any script) works on: the user's configuration first, the embedded S3 last.

``profile=None`` means "from the environment": a settings file named by ``WORKBENCH_CONFIG``, any
``WORKBENCH_*`` variable, or an AWS endpoint or access key (``AWS_ENDPOINT_URL[_S3]``,
``AWS_ACCESS_KEY_ID``; a region alone names no bucket), when any is present; only when nothing is configured does the
session use the embedded S3: the user's one (:func:`workbench.local.shared_server`: the running server
of ``~/.local/share/workbench/s3``, or a new one), so every notebook and ``workbench s3 serve`` share one
server and its data, and it keeps running as long as a kernel uses it (no teardown cell needed).
``profile="local"`` asks for the embedded S3 explicitly; ``"aws"``, ``"minio"`` and ``"r2"`` name a profile
for :func:`workbench.config.load_settings`. :meth:`Session.describe` is the line notebooks print first.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from workbench.config import ENV_WORKBENCH, Settings, load_settings
from workbench.local import data_folder, leave, shared_server
from workbench.storage import Storage

EMBEDDED = "local"
_AWS_CONFIGURES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")


def configured_by(env: Mapping[str, str]) -> str | None:
    """What in ``env`` configures a bucket (e.g. ``WORKBENCH_CONFIG=/etc/wb.yaml``), or None."""
    if env.get("WORKBENCH_CONFIG"):
        return f"WORKBENCH_CONFIG={env['WORKBENCH_CONFIG']}"
    names = sorted(name for name in (*ENV_WORKBENCH, *_AWS_CONFIGURES) if env.get(name))
    return f"environment ({', '.join(names)})" if names else None


@dataclasses.dataclass
class Session:
    """The settings a notebook uses, where they came from, and the embedded S3 it started (if any)."""

    settings: Settings
    source: str
    data_dir: Path | None = None  # the embedded S3's folder, when the session uses one

    @property
    def embedded(self) -> bool:
        """Whether this session uses the embedded S3."""
        return self.data_dir is not None

    def describe(self) -> str:
        """One line: bucket, endpoint and where the settings came from."""
        endpoint = self.settings.endpoint or f"AWS S3 ({self.settings.region})"
        return f"bucket {self.settings.bucket or '(none)'} at {endpoint}, from {self.source}"

    def close(self) -> None:
        """Let go of the embedded S3 (stopped now if no other process uses it); nothing for a configured bucket."""
        if self.data_dir is not None:
            leave(self.data_dir)
            self.data_dir = None


def open_session(profile: str | None = None, endpoint: str | None = None, bucket: str | None = None,
                 env: Mapping[str, str] | None = None, data_dir: Path | None = None) -> Session:
    """Settings from the user's configuration when there is one, else the user's embedded S3 (see the module
    docstring; ``data_dir`` overrides its folder)."""
    env = os.environ if env is None else env
    found = configured_by(env)
    if profile == EMBEDDED or (profile is None and found is None and endpoint is None and bucket is None):
        folder = data_folder(data_dir)
        settings, started = shared_server(folder)
        if bucket and bucket != settings.bucket:
            settings = settings.with_(bucket=bucket)
            Storage(settings).ensure_bucket()
        why = (f"the embedded S3 of {folder} ({'started now' if started else 'already running'}; "
               f"{'asked for' if profile == EMBEDDED else 'nothing else configured'})")
        return Session(settings, why, folder)
    settings = load_settings(profile=profile, endpoint=endpoint, bucket=bucket, env=env)
    given = [f"{name}={value}" for name, value in (("profile", profile), ("endpoint", endpoint), ("bucket", bucket)) if value]
    source = " and ".join(part for part in (", ".join(given) if given else "", found or "") if part) or "defaults"
    return Session(settings, source)
