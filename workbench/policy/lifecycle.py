"""The bucket's lifecycle as code: what expires, what tiers down, what gets aborted.

=====================================  =====================================================
rule id                                what it does
=====================================  =====================================================
``workbench-logs-expire``              ``log/`` objects expire after 30 days
``workbench-raw-tiering``              ``projects/`` objects move to INTELLIGENT_TIERING
                                       after 30 days (AWS only; since 2024 S3 skips objects
                                       under 128 KiB, which Intelligent-Tiering would not tier)
``workbench-abort-multipart``          incomplete multipart uploads are aborted after 7 days
=====================================  =====================================================

PMTiles generations cannot be counted by S3 rules: :mod:`workbench.policy.generations` prunes them.
Intelligent-Tiering's *archive* tiers need a restore before an object can be read again, so they
are never enabled by these rules; :func:`enable_archive_tiers` is the explicit opt-in.

Only rules whose id starts with ``workbench-`` are managed: other rules on the bucket are kept.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from workbench.errors import PolicyError
from workbench.policy.diff import RuleDiff, diff_rules, is_managed, read_live_rules
from workbench.storage import Storage, translate_error

LOG_EXPIRY_DAYS = 30
RAW_TIERING_DAYS = 30
ABORT_MULTIPART_DAYS = 7


def lifecycle_rules(transitions: bool = True) -> list[dict[str, Any]]:
    """The desired lifecycle rules; ``transitions=False`` for stores without storage classes."""
    rules: list[dict[str, Any]] = [
        {"ID": "workbench-logs-expire", "Status": "Enabled", "Filter": {"Prefix": "log/"},
         "Expiration": {"Days": LOG_EXPIRY_DAYS}},
        {"ID": "workbench-abort-multipart", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS}},
    ]
    if transitions:
        rules.append(
            {"ID": "workbench-raw-tiering", "Status": "Enabled",
             "Filter": {"Prefix": "projects/"},
             "Transitions": [{"Days": RAW_TIERING_DAYS, "StorageClass": "INTELLIGENT_TIERING"}]}
        )
    return [normalise_rule(rule) for rule in rules]


def default_transitions(storage: Storage) -> bool:
    """Whether storage-class transitions apply: AWS S3 has them; MinIO, R2 and SeaweedFS differ."""
    return storage.settings.profile == "aws"


def normalise_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A comparable form: legacy top-level ``Prefix`` becomes ``Filter.Prefix``, empty parts dropped."""
    out = {k: v for k, v in rule.items() if v not in (None, {}, [])}
    if "Prefix" in out:
        out["Filter"] = {"Prefix": out.pop("Prefix")}
    out.setdefault("Filter", {"Prefix": ""})
    if "And" in out["Filter"]:
        conditions = {k: v for k, v in out["Filter"]["And"].items() if v not in (None, "", [])}
        if list(conditions) == ["Prefix"]:
            out["Filter"] = {"Prefix": conditions["Prefix"]}
        else:
            out["Filter"] = {"And": conditions}
    return out


def live_rules(storage: Storage) -> list[dict[str, Any]]:
    """The bucket's current lifecycle rules (empty when it has none)."""
    return read_live_rules(storage, "lifecycle", storage.client.get_bucket_lifecycle_configuration,
                           "NoSuchLifecycleConfiguration", "Rules", normalise_rule)


def diff_lifecycle(storage: Storage, rules: list[dict[str, Any]] | None = None) -> RuleDiff:
    """What :func:`apply_lifecycle` would change on the live bucket."""
    desired = rules if rules is not None else lifecycle_rules(default_transitions(storage))
    managed = [r for r in live_rules(storage) if is_managed(r)]
    return diff_rules("lifecycle", desired, managed)


def apply_lifecycle(storage: Storage, rules: list[dict[str, Any]] | None = None) -> RuleDiff:
    """Make the bucket's managed lifecycle rules match ``rules`` (default: :func:`lifecycle_rules`)."""
    desired = rules if rules is not None else lifecycle_rules(default_transitions(storage))
    change = diff_lifecycle(storage, desired)
    if change.empty:
        return change
    foreign = [r for r in live_rules(storage) if not is_managed(r)]
    try:
        storage.client.put_bucket_lifecycle_configuration(
            Bucket=storage.bucket, LifecycleConfiguration={"Rules": [*foreign, *desired]}
        )
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "NotImplemented" and any("Transitions" in r for r in desired):
            raise PolicyError(
                "this S3 server does not support storage-class transitions: apply the lifecycle without them "
                "(transitions=False, or --no-transitions)"
            ) from None
        raise translate_error(exc, storage.settings, "write lifecycle configuration") from None
    return change


def verify_lifecycle(storage: Storage, rules: list[dict[str, Any]] | None = None) -> None:
    """Raise :class:`PolicyError` unless the bucket's managed lifecycle rules match ``rules``."""
    change = diff_lifecycle(storage, rules)
    if not change.empty:
        raise PolicyError(f"lifecycle does not match: {'; '.join(change.lines())}")


def enable_archive_tiers(storage: Storage, archive_days: int = 90, deep_archive_days: int = 180) -> None:
    """Opt in to Intelligent-Tiering's Archive and Deep Archive tiers for ``projects/``.

    Objects in those tiers are NOT readable until restored (hours, at a cost): only enable this for
    projects nobody will open in a map or reprocess without first running a restore.
    """
    if not 90 <= archive_days < deep_archive_days:
        raise PolicyError("archive_days must be at least 90 and below deep_archive_days (at least 180)")
    config = {
        "Id": "workbench-archive", "Status": "Enabled", "Filter": {"Prefix": "projects/"},
        "Tierings": [{"Days": archive_days, "AccessTier": "ARCHIVE_ACCESS"},
                     {"Days": deep_archive_days, "AccessTier": "DEEP_ARCHIVE_ACCESS"}],
    }
    with storage.errors("write Intelligent-Tiering archive configuration"):
        storage.client.put_bucket_intelligent_tiering_configuration(
            Bucket=storage.bucket, Id="workbench-archive", IntelligentTieringConfiguration=config
        )
