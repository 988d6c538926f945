"""CORS as code, and a diagnosis of why a browser would be refused.

Managed rules:

* ``workbench-upload``: PUT and POST from the upload origins, with ``ETag`` exposed (browser
  multipart uploads read each part's ETag);
* ``workbench-web``: GET and HEAD from the web origins with the ``Range`` header (PMTiles and COGs
  are read by range requests), exposing ``ETag``, ``Content-Range`` and ``Accept-Ranges``;
* ``workbench-upload-web``: both, for origins named in both lists.

Misconfigured CORS is the first cause of "403 even with a fresh presigned URL":
:func:`diagnose_cors` sends a real preflight (and, for reads, the real request) and says in one
sentence what a browser would hit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from workbench.errors import PolicyError
from workbench.options import check_header_text
from workbench.policy.diff import RuleDiff, diff_rules, is_managed, read_live_rules
from workbench.storage import Storage

DEFAULT_MAX_AGE = 3000
UPLOAD_HEADERS = ("content-type", "content-md5", "x-amz-*")
WEB_HEADERS = ("range", "if-match", "if-none-match")
WEB_EXPOSED = ("ETag", "Content-Range", "Accept-Ranges", "Content-Length")


def _check_origins(origins: Sequence[str], what: str) -> list[str]:
    for origin in origins:
        check_header_text(origin, f"{what} origin")
        if origin != "*" and (not origin.startswith(("http://", "https://")) or origin.rstrip("/") != origin or
                              urlsplit(origin).path not in ("",)):
            raise PolicyError(f"{what} origin {origin!r} must look like https://host[:port] with no path or trailing '/'")
    return list(origins)


def cors_rules(
    upload_origins: Sequence[str], web_origins: Sequence[str], max_age: int = DEFAULT_MAX_AGE
) -> list[dict[str, Any]]:
    """The desired CORS rules for these origins (either list may be empty).

    Each origin appears in exactly one rule (origins in both lists get a combined
    ``workbench-upload-web`` rule): some servers, SeaweedFS among them, consult only the first rule
    whose origin matches, where AWS looks for the first rule matching origin, method and headers.
    """
    uploads = _check_origins(upload_origins, "upload")
    webs = _check_origins(web_origins, "web")
    both = [o for o in uploads if o in webs]
    upload = {"AllowedMethods": ["PUT", "POST"], "AllowedHeaders": list(UPLOAD_HEADERS), "ExposeHeaders": ["ETag"]}
    web = {"AllowedMethods": ["GET", "HEAD"], "AllowedHeaders": list(WEB_HEADERS), "ExposeHeaders": list(WEB_EXPOSED)}
    combined = {key: sorted(set(upload[key]) | set(web[key])) for key in upload}
    groups = [
        ("workbench-upload", [o for o in uploads if o not in both], upload),
        ("workbench-web", [o for o in webs if o not in both], web),
        ("workbench-upload-web", both, combined),
    ]
    rules = [normalise_rule({"ID": rid, "AllowedOrigins": origins, **grants, "MaxAgeSeconds": max_age})
             for rid, origins, grants in groups if origins]
    if not rules:
        raise PolicyError("give at least one upload origin or web origin")
    return rules


def normalise_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A comparable form: methods upper-case, headers lower-case, lists sorted."""
    out: dict[str, Any] = {}
    if rule.get("ID"):
        out["ID"] = rule["ID"]
    out["AllowedOrigins"] = sorted(rule.get("AllowedOrigins", []))
    out["AllowedMethods"] = sorted(m.upper() for m in rule.get("AllowedMethods", []))
    out["AllowedHeaders"] = sorted(h.lower() for h in rule.get("AllowedHeaders", []))
    out["ExposeHeaders"] = sorted(h.lower() for h in rule.get("ExposeHeaders", []))
    if rule.get("MaxAgeSeconds") is not None:
        out["MaxAgeSeconds"] = int(rule["MaxAgeSeconds"])
    return out


def live_rules(storage: Storage) -> list[dict[str, Any]]:
    """The bucket's current CORS rules (empty when it has none)."""
    return read_live_rules(storage, "CORS", storage.client.get_bucket_cors, "NoSuchCORSConfiguration", "CORSRules",
                           normalise_rule)


def diff_cors(storage: Storage, rules: list[dict[str, Any]]) -> RuleDiff:
    """What :func:`apply_cors` would change on the live bucket."""
    return diff_rules("CORS", rules, [r for r in live_rules(storage) if is_managed(r)])


def apply_cors(storage: Storage, rules: list[dict[str, Any]]) -> RuleDiff:
    """Make the bucket's managed CORS rules match ``rules``; rules of others are kept.

    Others' rules for any origin (``*``, as the embedded S3's read rule) go last: SeaweedFS consults only the
    first rule whose origin matches, so a catch-all first would shadow every named origin's rule.
    """
    change = diff_cors(storage, rules)
    if not change.empty:
        foreign = [r for r in live_rules(storage) if not is_managed(r)]
        anyone = [r for r in foreign if "*" in r["AllowedOrigins"]]
        named = [r for r in foreign if "*" not in r["AllowedOrigins"]]
        with storage.errors("write CORS configuration"):
            storage.client.put_bucket_cors(Bucket=storage.bucket,
                                           CORSConfiguration={"CORSRules": [*named, *rules, *anyone]})
    return change


def any_origin_read_rule(max_age: int = DEFAULT_MAX_AGE) -> dict[str, Any]:
    """GET/HEAD with ``Range`` from any origin: for the embedded S3, whose presigned URLs are the protection."""
    return normalise_rule({"ID": "embedded-any-origin-read", "AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"],
                           "AllowedHeaders": list(WEB_HEADERS), "ExposeHeaders": list(WEB_EXPOSED), "MaxAgeSeconds": max_age})


def allow_reads_from_any_origin(storage: Storage) -> None:
    """Add :func:`any_origin_read_rule` after the bucket's rules (idempotent). Real buckets keep named origins."""
    rule = any_origin_read_rule()
    live = live_rules(storage)
    if rule not in live:
        with storage.errors("write CORS configuration"):
            storage.client.put_bucket_cors(Bucket=storage.bucket, CORSConfiguration={"CORSRules": [
                *[r for r in live if r.get("ID") != rule["ID"]], rule]})


def verify_cors(storage: Storage, rules: list[dict[str, Any]]) -> None:
    """Raise :class:`PolicyError` unless the bucket's managed CORS rules match ``rules``."""
    change = diff_cors(storage, rules)
    if not change.empty:
        raise PolicyError(f"CORS does not match: {'; '.join(change.lines())}")


# -- diagnosis ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CorsDiagnosis:
    """What a browser at ``origin`` would get for ``method`` on ``url``."""

    allowed: bool
    reason: str
    preflight_status: int | None
    headers: dict[str, str]

    def __str__(self) -> str:
        return self.reason


def _header_list(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


def _s3_error(response: requests.Response) -> str:
    text = response.text
    code = text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else ""
    message = text.split("<Message>", 1)[1].split("</Message>", 1)[0] if "<Message>" in text else ""
    return ": ".join(part for part in (code, message) if part) or response.reason


def _preflight(url: str, origin: str, method: str, wanted: list[str], timeout: float) -> requests.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if wanted:
        headers["Access-Control-Request-Headers"] = ",".join(wanted)
    return requests.options(url, headers=headers, timeout=timeout, allow_redirects=False)  # as a browser: no redirect


def _allowed_methods_without_headers(url: str, origin: str, method: str, timeout: float) -> set[str]:
    """Repeat a refused preflight without request headers, to tell a bad header from a bad method."""
    try:
        response = _preflight(url, origin, method, [], timeout)
    except requests.RequestException:
        return set()
    return {m.upper() for m in _header_list(response.headers.get("access-control-allow-methods"))}


def diagnose_cors(
    url: str, origin: str, method: str = "GET", request_headers: Iterable[str] | None = None, timeout: float = 10.0
) -> CorsDiagnosis:
    """Send a real CORS preflight for ``method`` from ``origin`` and explain the outcome in one sentence.

    For GET and HEAD it then sends the real request (a 1-byte range) with the ``Origin`` header, to
    check the URL itself (expiry, signature) and that ``ETag`` is exposed to scripts.
    """
    method = method.upper()
    wanted = [h.lower() for h in (request_headers if request_headers is not None else (["range"] if method in ("GET", "HEAD") else []))]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError as exc:
        raise PolicyError(f"{url[:80]!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PolicyError(f"{url[:80]!r} is not an http(s) URL")
    _check_origins([origin], "page")
    host = parts.netloc
    try:
        pre = _preflight(url, origin, method, wanted, timeout)
    except requests.RequestException as exc:
        return CorsDiagnosis(False, f"the preflight could not reach {host}: {type(exc).__name__}", None, {})
    headers = {k.lower(): v for k, v in pre.headers.items()}
    allow_origin = headers.get("access-control-allow-origin")
    allow_methods = {m.upper() for m in _header_list(headers.get("access-control-allow-methods"))}
    allow_headers = _header_list(headers.get("access-control-allow-headers"))

    def refuse(reason: str) -> CorsDiagnosis:
        return CorsDiagnosis(False, reason, pre.status_code, headers)

    if 300 <= pre.status_code < 400:
        return refuse(f"{host} redirected the preflight (HTTP {pre.status_code} to {headers.get('location', '?')}): browsers "
                      "refuse a redirected preflight; use the URL it redirects to")
    if not 200 <= pre.status_code < 300:
        return refuse(f"{host} answered the preflight with HTTP {pre.status_code}: no CORS rule on the bucket allows "
                      f"{method} from {origin}")
    if allow_origin not in (origin, "*"):
        return refuse(f"origin {origin} is not in the bucket's CORS AllowedOrigins (server allowed {allow_origin or 'none'})")
    if method not in allow_methods:
        if wanted and method in _allowed_methods_without_headers(url, origin, method, timeout):
            return refuse(f"request header {', '.join(wanted)} is not in the CORS AllowedHeaders for {origin}")
        return refuse(f"origin {origin} is allowed but method {method} is not (allowed: {', '.join(sorted(allow_methods)) or 'none'})")
    missing = [h for h in wanted if h not in allow_headers and "*" not in allow_headers]
    if missing:
        return refuse(f"request header {', '.join(missing)} is not in the CORS AllowedHeaders for {origin}")
    if method not in ("GET", "HEAD"):
        return CorsDiagnosis(True, f"a browser at {origin} may send {method} to {host} (preflight passed)", pre.status_code, headers)

    try:
        real = requests.request(method, url, headers={"Origin": origin, "Range": "bytes=0-0"}, timeout=timeout,
                                allow_redirects=False)
    except requests.RequestException as exc:
        return refuse(f"the preflight passed but the request could not reach {host}: {type(exc).__name__}")
    real_headers = {k.lower(): v for k, v in real.headers.items()}
    if real.status_code >= 400:
        return CorsDiagnosis(False, f"CORS is fine, but the URL itself was refused (HTTP {real.status_code}: "
                                    f"{_s3_error(real)})", pre.status_code, real_headers)
    if real_headers.get("access-control-allow-origin") not in (origin, "*"):
        return CorsDiagnosis(False, f"the preflight passed but the {method} response carries no "
                                    f"Access-Control-Allow-Origin for {origin}", pre.status_code, real_headers)
    if "etag" not in _header_list(real_headers.get("access-control-expose-headers")):
        return CorsDiagnosis(False, f"{method} from {origin} is allowed but ETag is not exposed (add it to ExposeHeaders): "
                                    "PMTiles readers and multipart uploads need it", pre.status_code, real_headers)
    return CorsDiagnosis(True, f"a browser at {origin} may {method} {host} with {', '.join(wanted) or 'no extra headers'} "
                               "and read ETag", pre.status_code, real_headers)
