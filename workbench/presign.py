"""Presigned URLs: nobody proxies bytes.

Browsers and phones upload with presigned PUT (15 minutes by default), POST policies, or presigned
multipart part URLs, and read with presigned GET (1 hour by default, range reads work). Uploads use
the S3 Transfer Acceleration endpoint when it is enabled; downloads can go through CloudFront with
signed URLs. Every issuance is an OpenTelemetry span (no-op without ``opentelemetry``); spans carry
the key and TTL, never a URL or signature.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from botocore.signers import CloudFrontSigner

from workbench.config import SIGV4_MAX_TTL, check_ttl
from workbench.errors import PresignError
from workbench.layout import check_component, check_key
from workbench.options import check_header_text
from workbench.storage import Storage, make_client
from workbench.tracing import span
from workbench.transfer import list_parts


@dataclasses.dataclass(frozen=True)
class PresignedPut:
    """A presigned PUT: the URL and the headers the uploader must send with it."""

    url: str
    headers: dict[str, str]
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class PresignedPost:
    """A presigned POST policy: the form's action URL and the fields to send before the file."""

    url: str
    fields: dict[str, str]
    expires_at: dt.datetime


def _expiry(ttl: int) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=ttl)


def content_disposition(filename: str) -> str:
    """An ``attachment`` Content-Disposition with an ASCII fallback and an RFC 5987 UTF-8 name."""
    check_component(filename, "download file name")
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class Presigner:
    """Issues presigned URLs for one bucket (see the module docstring)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.settings = storage.settings
        self.bucket = storage.bucket

    @functools.cached_property
    def _upload_client(self) -> Any:
        if self.settings.accelerate:
            return make_client(self.settings, accelerate=True)
        return self.storage.client

    def _ttl(self, ttl: int | None, default: int) -> int:
        return check_ttl(default if ttl is None else ttl, what="presign TTL", error=PresignError)

    def get(self, key: str, ttl: int | None = None, download_name: str | None = None) -> str:
        """Presigned GET (default 1 hour); ``download_name`` makes browsers save it under that name."""
        check_key(key)
        ttl = self._ttl(ttl, self.settings.presign_get_ttl)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if download_name:
            params["ResponseContentDisposition"] = content_disposition(check_header_text(download_name, "download name"))
        with span("workbench.presign", method="GET", bucket=self.bucket, key=key, ttl=ttl):
            return self.storage.client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl)

    def put(self, key: str, ttl: int | None = None, content_type: str | None = None) -> PresignedPut:
        """Presigned PUT (default 15 minutes); a given content type is part of the signature."""
        check_key(key)
        ttl = self._ttl(ttl, self.settings.presign_ttl)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        headers: dict[str, str] = {}
        if content_type:
            params["ContentType"] = check_header_text(content_type, "content type")
            headers["Content-Type"] = content_type
        with span("workbench.presign", method="PUT", bucket=self.bucket, key=key, ttl=ttl, accelerate=self.settings.accelerate):
            url = self._upload_client.generate_presigned_url("put_object", Params=params, ExpiresIn=ttl)
        return PresignedPut(url=url, headers=headers, expires_at=_expiry(ttl))

    def post(
        self,
        key: str,
        ttl: int | None = None,
        max_bytes: int = 100 * 1024 * 1024,
        min_bytes: int = 1,
        content_type_prefix: str | None = None,
    ) -> PresignedPost:
        """Presigned POST policy: the server refuses bodies outside ``[min_bytes, max_bytes]`` and other types."""
        check_key(key)
        if not 0 <= min_bytes <= max_bytes:
            raise PresignError(f"size range [{min_bytes}, {max_bytes}] is empty")
        ttl = self._ttl(ttl, self.settings.presign_ttl)
        conditions: list[Any] = [["content-length-range", min_bytes, max_bytes]]
        fields: dict[str, str] = {}
        if content_type_prefix is not None:
            check_header_text(content_type_prefix, "content type prefix")
            conditions.append(["starts-with", "$Content-Type", content_type_prefix])
            fields["Content-Type"] = content_type_prefix
        with span("workbench.presign", method="POST", bucket=self.bucket, key=key, ttl=ttl, max_bytes=max_bytes):
            form = self._upload_client.generate_presigned_post(
                self.bucket, key, Fields=fields or None, Conditions=conditions, ExpiresIn=ttl
            )
        return PresignedPost(url=form["url"], fields=form["fields"], expires_at=_expiry(ttl))

    # -- multipart for browsers and phones ------------------------------------------------------

    def multipart_create(self, key: str, content_type: str | None = None) -> str:
        """Start a multipart upload (with the service's credentials); return its upload id."""
        check_key(key)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            kwargs["ContentType"] = check_header_text(content_type, "content type")
        with self.storage.errors(f"start multipart upload of {key}"):
            return self.storage.client.create_multipart_upload(**kwargs)["UploadId"]

    def multipart_part_urls(
        self, key: str, upload_id: str, part_numbers: Iterable[int], ttl: int | None = None
    ) -> dict[int, str]:
        """Presigned PUT URLs for parts (numbered 1 to 10,000); the uploader reads each part's ETag header."""
        check_key(key)
        ttl = self._ttl(ttl, self.settings.presign_ttl)
        urls: dict[int, str] = {}
        for number in part_numbers:
            if not 1 <= int(number) <= 10_000:
                raise PresignError(f"part number {number} is outside 1..10000")
            with span("workbench.presign", method="UploadPart", bucket=self.bucket, key=key, ttl=ttl, part=int(number)):
                urls[int(number)] = self._upload_client.generate_presigned_url(
                    "upload_part",
                    Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": int(number)},
                    ExpiresIn=ttl,
                )
        return urls

    def multipart_list_parts(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        """Parts already stored (all pages), so a client can resume."""
        return list_parts(self.storage, check_key(key), upload_id)

    def multipart_complete(self, key: str, upload_id: str, parts: dict[int, str] | None = None) -> str:
        """Complete an upload from ``{part_number: etag}`` (or, if omitted, from ListParts); return the ETag."""
        check_key(key)
        if parts is None:
            parts = {int(p["PartNumber"]): p["ETag"] for p in self.multipart_list_parts(key, upload_id)}
        if not parts:
            raise PresignError(f"multipart upload of {key} has no parts to complete")
        with self.storage.errors(f"complete multipart upload of {key}"):
            response = self.storage.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": parts[n]} for n in sorted(parts)]},
            )
        return response["ETag"].strip('"')

    def multipart_abort(self, key: str, upload_id: str) -> None:
        """Abort an upload and free its stored parts."""
        check_key(key)
        with self.storage.errors(f"abort multipart upload of {key}"):
            self.storage.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    # -- CloudFront -------------------------------------------------------------------------------

    def cloudfront(
        self,
        key: str,
        ttl: int | None = None,
        *,
        not_before: dt.datetime | None = None,
        ip_range: str | None = None,
        resource: str | None = None,
    ) -> str:
        """A CloudFront signed URL for ``key``: a canned policy, or a custom one when ``not_before``,
        ``ip_range`` or a wildcard ``resource`` (e.g. ``https://cdn/pmtiles/*``) is given."""
        check_key(key)
        ttl = self._ttl(ttl, self.settings.presign_get_ttl)
        domain, key_id, private_key = (
            self.settings.cloudfront_domain, self.settings.cloudfront_key_pair_id, self.settings.cloudfront_private_key,
        )
        if not (domain and key_id and private_key):
            raise PresignError("CloudFront signing needs cloudfront_domain, cloudfront_key_pair_id and a private key")
        signer = CloudFrontSigner(key_id, _rsa_signer(private_key.reveal()))
        base = domain if domain.startswith("https://") else f"https://{domain}"
        url = f"{base.rstrip('/')}/{quote(key)}"
        expires = _expiry(ttl)
        custom = not_before is not None or ip_range is not None or resource is not None
        with span("workbench.presign", method="CloudFront", key=key, ttl=ttl, policy="custom" if custom else "canned"):
            if not custom:
                return signer.generate_presigned_url(url, date_less_than=expires)
            policy = signer.build_policy(resource or url, expires, date_greater_than=not_before, ip_address=ip_range)
            return signer.generate_presigned_url(url, policy=policy)


def _rsa_signer(private_key_pem: str) -> Any:
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError:
        raise PresignError("CloudFront signing needs the 'cryptography' package: pip install 'workbench[aws]'") from None
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise PresignError("the CloudFront private key is not an unencrypted PEM RSA key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PresignError("the CloudFront private key must be an RSA key (CloudFront signs with RSA-SHA1)")

    def sign(message: bytes) -> bytes:
        return key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # CloudFront requires SHA-1 RSA

    return sign


__all__ = ["Presigner", "PresignedPost", "PresignedPut", "content_disposition", "SIGV4_MAX_TTL"]
