"""Secrets out of text: tokens, signatures and credentials in URLs become ``***``.

Libraries put request URLs in their exception texts (requests: "Max retries exceeded with url:
/options?token=..."); presigned URLs carry signatures and credentials in their query. :func:`redact`
is applied to every workbench error message (:mod:`workbench.errors`), run record and saved notebook.
"""

from __future__ import annotations

import re

SENSITIVE_PARAMETERS = ("token", "access_token", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
                        "signature", "policy", "key-pair-id", "awsaccesskeyid", "x-goog-signature", "x-goog-credential",
                        "sig", "secret", "password")
_PARAMETER = re.compile(r"(?i)((?:^|[?&;\s'\"])(?:" + "|".join(re.escape(p) for p in SENSITIVE_PARAMETERS)
                        + r")=)[^&\s'\"<>]*")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@")
_BEARER = re.compile(r"(?i)\b(authorization:\s*(?:bearer|token|aws4-hmac-sha256)\s+)\S+")


def redact(text: str) -> str:
    """``text`` with the values of sensitive URL parameters, URL user info and authorization headers masked."""
    text = _PARAMETER.sub(lambda m: m.group(1) + "***", text)
    text = _USERINFO.sub(lambda m: m.group(1) + "***@", text)
    return _BEARER.sub(lambda m: m.group(1) + "***", text)
