"""Prefix-scoped access documents for an organisation: read-only and uploader roles.

The layout puts everything an org owns under ``projects/{org}/``, ``pmtiles/{layer}/{org}/``,
``parquet/{dataset}/{org}/`` and ``runs/{org}/`` (scheduled notebook runs), so one IAM (or bucket) policy per role scopes access to an org. Each layer
and dataset is listed by name: IAM's ``*`` matches ``/`` too, so ``pmtiles/*/hot/*`` would also grant
``pmtiles/ortho/acme/hot/...`` (org ``acme``'s project ``hot``).
"""

from __future__ import annotations

from typing import Any

from workbench.errors import PolicyError
from workbench.layout import PARQUET_DATASETS, PMTILES_LAYERS, check_component

ROLES = ("read", "upload")


def org_prefixes(org: str) -> list[str]:
    """The key patterns an org owns (``*`` is the IAM wildcard, only ever at the end)."""
    check_component(org, "org")
    return ([f"projects/{org}/*"] + [f"pmtiles/{layer}/{org}/*" for layer in PMTILES_LAYERS]
            + [f"parquet/{dataset}/{org}/*" for dataset in PARQUET_DATASETS] + [f"runs/{org}/*"])


def org_policy(bucket: str, org: str, role: str = "read", principal_arn: str | None = None) -> dict[str, Any]:
    """An IAM policy document for ``role`` on ``org`` (a bucket policy when ``principal_arn`` is given).

    ``read``: list and get the org's keys. ``upload``: also put raw images (and run multipart uploads)
    under ``projects/{org}/*/raw/``; never delete, never write products.
    """
    if role not in ROLES:
        raise PolicyError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    prefixes = org_prefixes(org)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    statements: list[dict[str, Any]] = [
        {"Sid": "ListOrgPrefixes", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
         "Condition": {"StringLike": {"s3:prefix": prefixes}}},
        {"Sid": "ReadOrgObjects", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [f"{bucket_arn}/{p}" for p in prefixes]},
    ]
    if role == "upload":
        statements.append(
            {"Sid": "UploadRawImages", "Effect": "Allow",
             "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
             "Resource": f"{bucket_arn}/projects/{org}/*/raw/*"}
        )
        statements.append(
            {"Sid": "FindOwnUploads", "Effect": "Allow", "Action": "s3:ListBucketMultipartUploads", "Resource": bucket_arn,
             "Condition": {"StringLike": {"s3:prefix": [f"projects/{org}/*"]}}}
        )
    if principal_arn:
        for statement in statements:
            statement["Principal"] = {"AWS": principal_arn}
    return {"Version": "2012-10-17", "Statement": statements}
