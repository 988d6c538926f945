"""The workbench's exceptions: one hierarchy, so callers and the CLI can catch ``WorkbenchError``.

Every message is one line, says what went wrong and what to do, and never contains a secret: messages
are passed through :func:`workbench.redact.redact` when the error is made, so a token or a presigned
signature inside a library's exception text (a request URL, typically) never reaches a terminal, a log,
a run record or a notebook.
"""

from __future__ import annotations

from workbench.redact import redact


class WorkbenchError(Exception):
    """Base class for every error the workbench raises on purpose (its message is redacted)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(arg) if isinstance(arg, str) else arg for arg in args))


class ConfigError(WorkbenchError):
    """Settings are missing, contradictory or unknown."""


class UnsafeKeyError(WorkbenchError, ValueError):
    """An object key or key component is unsafe (``..``, ``/``, control characters, too long, ...)."""


class StorageError(WorkbenchError):
    """The object store refused or failed a request."""


class CredentialsError(StorageError):
    """The object store rejected the credentials (or none were found)."""


class EndpointError(StorageError):
    """The object store could not be reached."""


class NotFoundError(StorageError):
    """A bucket, key or multipart upload does not exist."""


class IntegrityError(StorageError):
    """Stored bytes do not match what was sent (checksum or size mismatch)."""


class PresignError(WorkbenchError):
    """A presigned URL cannot be issued as asked (TTL out of range, missing CloudFront key, ...)."""


class PolicyError(WorkbenchError):
    """A bucket policy (lifecycle, CORS, access) cannot be applied or does not verify."""


class LocalS3Error(WorkbenchError):
    """The embedded S3 server could not be started, reached or stopped."""


class CostError(WorkbenchError):
    """A price is missing, malformed or cannot be applied (unknown region, class or instance type)."""


class AnalysisError(WorkbenchError):
    """A product cannot be opened or analysed as asked (missing product, wrong kind, grids that cannot align)."""
