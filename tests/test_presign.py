"""Presigned URLs against the real SeaweedFS, plus acceleration, CloudFront and tracing."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from workbench.config import SIGV4_MAX_TTL, Secret, Settings
from workbench.errors import PresignError
from workbench.presign import Presigner
from workbench.storage import Storage

KEY = "projects/o/p/raw/019a0000-0000-7000-8000-000000000000/IMG 1.JPG"


@pytest.fixture
def presigner(storage: Storage) -> Presigner:
    return Presigner(storage)


def test_get_works_with_plain_http_and_ranges(storage: Storage, presigner: Presigner) -> None:
    storage.put_bytes(KEY, b"abcdefghij")
    url = presigner.get(KEY)
    assert "X-Amz-Expires=3600" in url
    assert requests.get(url).content == b"abcdefghij"
    ranged = requests.get(url, headers={"Range": "bytes=3-5"})
    assert ranged.status_code == 206 and ranged.content == b"def"


def test_tampered_and_expired_urls_get_403(storage: Storage, presigner: Presigner) -> None:
    storage.put_bytes(KEY, b"x")
    url = presigner.get(KEY, ttl=1)
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    tampered = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert requests.get(tampered).status_code == 403
    other_key = url.replace("IMG%201.JPG", "IMG%202.JPG")
    assert requests.get(other_key).status_code == 403
    time.sleep(2.1)
    expired = requests.get(url)
    assert expired.status_code == 403 and "expired" in expired.text.lower()


def test_put_enforces_the_signed_content_type(storage: Storage, presigner: Presigner) -> None:
    put = presigner.put(KEY, content_type="image/jpeg")
    assert "X-Amz-Expires=900" in put.url and put.headers == {"Content-Type": "image/jpeg"}
    assert requests.put(put.url, data=b"jpeg", headers={"Content-Type": "text/html"}).status_code == 403
    assert not storage.exists(KEY)
    assert requests.put(put.url, data=b"jpeg", headers=put.headers).status_code == 200
    assert storage.get_bytes(KEY) == b"jpeg"


def test_post_policy_refuses_oversized_and_wrong_type(storage: Storage, presigner: Presigner) -> None:
    post = presigner.post(KEY, max_bytes=1000, content_type_prefix="image/")
    ok = requests.post(post.url, data={**post.fields, "Content-Type": "image/jpeg"}, files={"file": b"a" * 500})
    assert ok.status_code in (200, 201, 204), ok.text
    assert storage.get_bytes(KEY) == b"a" * 500
    big = requests.post(post.url, data={**post.fields, "Content-Type": "image/jpeg"}, files={"file": b"b" * 1001})
    assert big.status_code == 400 and "EntityTooLarge" in big.text
    wrong = requests.post(post.url, data={**post.fields, "Content-Type": "text/html"}, files={"file": b"c" * 10})
    assert wrong.status_code == 403
    assert storage.get_bytes(KEY) == b"a" * 500


def test_browser_style_multipart_upload(storage: Storage, presigner: Presigner) -> None:
    parts = [b"A" * (5 * 1024 * 1024), b"B" * (5 * 1024 * 1024), b"C" * 1000]
    upload_id = presigner.multipart_create(KEY, content_type="image/tiff")
    urls = presigner.multipart_part_urls(KEY, upload_id, range(1, 4))
    etags = {}
    for number in (1, 2):
        response = requests.put(urls[number], data=parts[number - 1])
        assert response.status_code == 200
        etags[number] = response.headers["ETag"]
    assert [p["PartNumber"] for p in presigner.multipart_list_parts(KEY, upload_id)] == [1, 2]
    etags[3] = requests.put(urls[3], data=parts[2]).headers["ETag"]
    etag = presigner.multipart_complete(KEY, upload_id, etags)
    assert etag.endswith("-3")
    assert storage.get_bytes(KEY) == b"".join(parts)
    assert storage.head(KEY).size == sum(map(len, parts))


def test_multipart_abort(storage: Storage, presigner: Presigner) -> None:
    upload_id = presigner.multipart_create(KEY)
    requests.put(presigner.multipart_part_urls(KEY, upload_id, [1])[1], data=b"x" * 100)
    presigner.multipart_abort(KEY, upload_id)
    assert storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    with pytest.raises(PresignError, match="outside"):
        presigner.multipart_part_urls(KEY, upload_id, [0])


@pytest.mark.parametrize("ttl", [0, -5, SIGV4_MAX_TTL + 1])
def test_ttl_out_of_range_is_refused(presigner: Presigner, ttl: int) -> None:
    for issue in (lambda: presigner.get(KEY, ttl=ttl), lambda: presigner.put(KEY, ttl=ttl), lambda: presigner.post(KEY, ttl=ttl)):
        with pytest.raises(PresignError, match="TTL"):
            issue()


def test_seven_days_is_allowed(presigner: Presigner) -> None:
    assert f"X-Amz-Expires={SIGV4_MAX_TTL}" in presigner.get(KEY, ttl=SIGV4_MAX_TTL)


def test_download_name_sets_content_disposition(storage: Storage, presigner: Presigner) -> None:
    storage.put_bytes(KEY, b"x")
    response = requests.get(presigner.get(KEY, download_name="Ortho été.tif"))
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''Ortho%20%C3%A9t%C3%A9.tif" in disposition


def test_transfer_acceleration_endpoint_for_uploads_only() -> None:
    settings = Settings(bucket="drone-raw", region="eu-west-1", access_key="AKIDEXAMPLE", secret_key=Secret("x"), accelerate=True)
    presigner = Presigner(Storage(settings))
    assert urlsplit(presigner.put(KEY).url).netloc == "drone-raw.s3-accelerate.amazonaws.com"
    assert urlsplit(presigner.post(KEY).url).netloc == "drone-raw.s3-accelerate.amazonaws.com"
    assert urlsplit(presigner.get(KEY)).netloc == "drone-raw.s3.eu-west-1.amazonaws.com"


def _cloudfront_settings() -> tuple[Settings, object]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    settings = Settings(bucket="b", access_key="AKIDEXAMPLE", secret_key=Secret("x"), cloudfront_domain="d111.cloudfront.net",
                        cloudfront_key_pair_id="K2JCJMDEHXQW5F", cloudfront_private_key=Secret(pem))
    return settings, private.public_key()


def _cf_b64decode(text: str) -> bytes:
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


def _verify(public_key, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        return False
    return True


def test_cloudfront_canned_signature_verifies_with_the_public_key() -> None:
    settings, public_key = _cloudfront_settings()
    url = Presigner(Storage(settings)).cloudfront("pmtiles/ortho/o/2026-01-01.pmtiles", ttl=600)
    query = parse_qs(urlsplit(url).query)
    assert query["Key-Pair-Id"] == ["K2JCJMDEHXQW5F"] and "Policy" not in query
    expires = int(query["Expires"][0])
    assert abs(expires - (time.time() + 600)) < 5
    resource = url.split("?")[0]
    canned = json.dumps({"Statement": [{"Resource": resource, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}]},
                        separators=(",", ":")).encode()
    signature = _cf_b64decode(query["Signature"][0])
    assert _verify(public_key, canned, signature)
    assert not _verify(public_key, canned.replace(str(expires).encode(), str(expires + 1).encode()), signature)


def test_cloudfront_custom_policy_with_wildcard_and_ip() -> None:
    settings, public_key = _cloudfront_settings()
    start = dt.datetime.now(dt.timezone.utc)
    url = Presigner(Storage(settings)).cloudfront("pmtiles/ortho/o/2026-01-01.pmtiles", not_before=start,
                                                  ip_range="192.0.2.0/24", resource="https://d111.cloudfront.net/pmtiles/*")
    query = parse_qs(urlsplit(url).query)
    policy = _cf_b64decode(query["Policy"][0])
    statement = json.loads(policy)["Statement"][0]
    assert statement["Resource"] == "https://d111.cloudfront.net/pmtiles/*"
    assert statement["Condition"]["IpAddress"]["AWS:SourceIp"] == "192.0.2.0/24"
    assert statement["Condition"]["DateGreaterThan"]["AWS:EpochTime"] == int(start.timestamp())
    assert _verify(public_key, policy, _cf_b64decode(query["Signature"][0]))


def test_cloudfront_needs_its_settings(presigner: Presigner) -> None:
    with pytest.raises(PresignError, match="cloudfront_domain"):
        presigner.cloudfront(KEY)


def test_each_issuance_is_a_span_without_secrets(storage: Storage, presigner: Presigner) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    presigner.get(KEY, ttl=60)
    presigner.put(KEY, content_type="image/jpeg")
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["workbench.presign", "workbench.presign"]
    assert [s.attributes["method"] for s in spans] == ["GET", "PUT"]
    assert spans[0].attributes["key"] == KEY and spans[0].attributes["ttl"] == 60
    dumped = json.dumps([dict(s.attributes) for s in spans])
    assert "Signature" not in dumped and storage.settings.secret_key.reveal() not in dumped
