"""One object-store client over boto3: put, get, head, list, copy, delete, and fsspec URLs.

Transfers of files (parallel, multipart, resumable) live in :mod:`workbench.transfer`; this module
owns the connection and turns botocore's errors into the workbench's one-line errors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from workbench.checksums import md5_base64
from workbench.config import Settings
from workbench.errors import (
    CredentialsError,
    EndpointError,
    IntegrityError,
    NotFoundError,
    StorageError,
)
from workbench.layout import check_key, check_prefix

DEFAULT_MAX_CONNECTIONS = 32
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "403"}
_INTEGRITY_CODES = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "404", "NotFound"}


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """What a listing or HEAD says about one object."""

    key: str
    size: int
    etag: str
    last_modified: dt.datetime | None = None
    storage_class: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)


def make_client(settings: Settings, max_connections: int = DEFAULT_MAX_CONNECTIONS, accelerate: bool = False) -> Any:
    """Create a boto3 S3 client for ``settings`` with standard retries (exponential backoff, jitter).

    Checksums are computed only when an API requires them: the workbench sends ``Content-MD5``
    itself, which every S3-compatible server (MinIO, R2, SeaweedFS) understands and verifies.
    """
    # Every upload carries a signed Content-MD5, so the body need not be SHA-256 hashed a second time
    # for the signature (botocore otherwise does so on plain-HTTP endpoints).
    s3_options: dict[str, Any] = {
        "addressing_style": "path" if settings.path_style else "virtual",
        "payload_signing_enabled": False,
    }
    if accelerate:
        s3_options["use_accelerate_endpoint"] = True
    config = Config(
        region_name=settings.region,
        signature_version="s3v4",
        s3=s3_options,
        # 3 attempts, exponential backoff with jitter; a server that accepts the connection and never answers
        # fails in about settings.timeout seconds (30 by default), not minutes
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=max_connections,
        connect_timeout=max(1, settings.timeout / 6),
        read_timeout=max(2, settings.timeout / 3),
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=settings.endpoint,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key.reveal() if settings.secret_key else None,
        aws_session_token=settings.session_token.reveal() if settings.session_token else None,
        config=config,
    )


def translate_error(exc: Exception, settings: Settings, what: str) -> StorageError:
    """Turn a botocore exception into a one-line workbench error that names no secret."""
    where = settings.endpoint or f"AWS S3 ({settings.region})"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return CredentialsError(f"{what}: no credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)")
    if isinstance(exc, (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError)):
        return EndpointError(f"{what}: cannot reach the object store at {where} (no answer within about "
                             f"{settings.timeout} s; WORKBENCH_TIMEOUT or --timeout changes that)")
    if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError)):
        return EndpointError(f"{what}: cannot reach the object store at {where} (connection refused or closed: "
                             "check the address, and that the server runs)")
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")).splitlines()[0] if error.get("Message") else code
        if code in _AUTH_CODES:
            key_id = settings.access_key or "(none)"
            source = f" from {settings.credentials_source}" if settings.credentials_source else ""
            hint = "check the access key and secret key" if code != "AccessDenied" else "the credentials lack permission"
            if code in ("InvalidToken", "ExpiredToken") or (settings.session_token and code != "AccessDenied"):
                hint = "check the session token that came with these keys (or unset it)"
            return CredentialsError(f"{what}: {where} refused the credentials (access key id {key_id}{source}): {code}; {hint}")
        if code in _MISSING_CODES:
            return NotFoundError(f"{what}: not found ({code})")
        if code in _INTEGRITY_CODES:
            return IntegrityError(f"{what}: the store received corrupted bytes ({code}); nothing was stored")
        return StorageError(f"{what}: {code}: {message}")
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return StorageError(f"{what}: invalid request: {str(exc).splitlines()[-1]}")
    return StorageError(f"{what}: {type(exc).__name__}: {exc}")


class Storage:
    """A bucket on an S3-compatible store, with the workbench's key validation and error messages."""

    def __init__(self, settings: Settings, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self.settings = settings
        self.bucket = settings.require_bucket()
        self.client = make_client(settings, max_connections=max_connections)

    def __repr__(self) -> str:
        return f"Storage(bucket={self.bucket!r}, endpoint={self.settings.endpoint!r}, profile={self.settings.profile!r})"

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Context manager that turns botocore exceptions raised inside into workbench errors."""
        try:
            yield
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise translate_error(exc, self.settings, what) from None

    # -- bucket ---------------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet (idempotent)."""
        with self.errors(f"check bucket {self.bucket}"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
                return
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _MISSING_CODES:
                    raise
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.settings.profile == "aws" and self.settings.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
            self.client.create_bucket(**kwargs)

    # -- objects --------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None, **extra: Any) -> ObjectInfo:
        """Store ``data`` under ``key`` (one PUT, integrity-checked with Content-MD5)."""
        check_key(key)
        kwargs = {"Bucket": self.bucket, "Key": key, "Body": data, "ContentMD5": md5_base64(data), **extra}
        if content_type:
            kwargs["ContentType"] = content_type
        with self.errors(f"put {key}"):
            response = self.client.put_object(**kwargs)
        return ObjectInfo(key=key, size=len(data), etag=response["ETag"].strip('"'))

    def get_bytes(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """Read an object (or the inclusive byte range ``(first, last)`` of it) into memory."""
        check_key(key)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if byte_range is not None:
            kwargs["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        with self.errors(f"get {key}"):
            return self.client.get_object(**kwargs)["Body"].read()

    def head(self, key: str) -> ObjectInfo:
        """Size, ETag, date, storage class and user metadata of one object."""
        check_key(key)
        with self.errors(f"head {key}"):
            r = self.client.head_object(Bucket=self.bucket, Key=key)
        return ObjectInfo(
            key=key,
            size=int(r["ContentLength"]),
            etag=r["ETag"].strip('"'),
            last_modified=r.get("LastModified"),
            storage_class=r.get("StorageClass"),
            metadata=dict(r.get("Metadata", {})),
        )

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        try:
            self.head(key)
        except NotFoundError:
            return False
        return True

    def list(self, prefix: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        """All objects under ``prefix``, in key order, following pagination (``page_size`` keys a request)."""
        check_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        with self.errors(f"list {prefix or '/'}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"],
                        size=int(item["Size"]),
                        etag=item["ETag"].strip('"'),
                        last_modified=item.get("LastModified"),
                        storage_class=item.get("StorageClass"),
                    )

    def list_prefixes(self, prefix: str, start_after: str = "") -> Iterator[str]:
        """The immediate sub-prefixes (``prefix + name + '/'``) under ``prefix``, in key order."""
        check_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/"}
        if start_after:
            kwargs["StartAfter"] = start_after
        with self.errors(f"list {prefix or '/'}"):
            for page in paginator.paginate(**kwargs):
                for item in page.get("CommonPrefixes", []):
                    yield item["Prefix"]

    def copy(self, source: str, destination: str) -> None:
        """Server-side copy within the bucket (no bytes pass through this machine)."""
        check_key(source)
        check_key(destination)
        with self.errors(f"copy {source} to {destination}"):
            self.client.copy(
                {"Bucket": self.bucket, "Key": source}, self.bucket, destination,
                Config=TransferConfig(multipart_threshold=5 * 1024**3),
            )

    def delete(self, keys: Sequence[str] | str) -> int:
        """Delete one key or many (batched by 1000); return how many were asked to be deleted."""
        batch = [keys] if isinstance(keys, str) else list(keys)
        for key in batch:
            check_key(key)
        for start in range(0, len(batch), 1000):
            chunk = batch[start : start + 1000]
            with self.errors(f"delete {len(chunk)} objects"):
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(f"delete {first['Key']}: {first.get('Code')}: {first.get('Message')}")
        return len(batch)

    # -- other libraries ------------------------------------------------------------------------

    def url(self, key: str = "") -> str:
        """The ``s3://bucket/key`` URL of a key or prefix, for fsspec/GDAL/pyarrow."""
        check_prefix(key)
        return f"s3://{self.bucket}/{key}"

    def fsspec_options(self) -> dict[str, Any]:
        """``storage_options`` for fsspec/s3fs (pandas, dask, xarray) pointing at this store."""
        options: dict[str, Any] = {"client_kwargs": {"region_name": self.settings.region}}
        if self.settings.endpoint:
            options["endpoint_url"] = self.settings.endpoint
        if self.settings.access_key and self.settings.secret_key:
            options["key"] = self.settings.access_key
            options["secret"] = self.settings.secret_key.reveal()
        if self.settings.session_token:
            options["token"] = self.settings.session_token.reveal()
        if self.settings.path_style:
            options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
        return options

    def filesystem(self) -> Any:
        """An ``s3fs.S3FileSystem`` for this store."""
        import s3fs

        return s3fs.S3FileSystem(**self.fsspec_options())


_SHARED: dict[Settings, Storage] = {}


def shared_storage(settings: Settings) -> Storage:
    """One :class:`Storage` per settings in this process (clients are thread-safe and costly to create).

    Dask tasks use it so a worker process opens one connection pool, not one per task.
    """
    if settings not in _SHARED:
        _SHARED[settings] = Storage(settings)
    return _SHARED[settings]
