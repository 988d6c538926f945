"""Policies: lifecycle, CORS (real preflights), pruning, acceleration and access documents."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from workbench import policy
from workbench.errors import PolicyError, UnsafeKeyError
from workbench.presign import Presigner
from workbench.storage import Storage

UPLOAD = "https://upload.example.org"
WEB = "https://maps.example.org"
EVIL = "https://evil.example.net"


# -- lifecycle ---------------------------------------------------------------------------------


def test_lifecycle_diff_apply_verify_on_seaweedfs(storage: Storage) -> None:
    rules = policy.lifecycle_rules(transitions=False)
    before = policy.diff_lifecycle(storage, rules)
    assert set(before.added) == {"workbench-logs-expire", "workbench-abort-multipart"}
    with pytest.raises(PolicyError, match="does not match"):
        policy.verify_lifecycle(storage, rules)
    applied = policy.apply_lifecycle(storage, rules)
    assert applied.added == before.added
    policy.verify_lifecycle(storage, rules)
    assert policy.diff_lifecycle(storage, rules).empty
    live = {r["ID"]: r for r in storage.client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)["Rules"]}
    assert live["workbench-logs-expire"]["Expiration"]["Days"] == 30
    assert live["workbench-abort-multipart"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7


def test_lifecycle_drift_is_detected_and_foreign_rules_are_kept(storage: Storage) -> None:
    rules = policy.lifecycle_rules(transitions=False)
    foreign = {"ID": "team-tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}
    drifted = [{**rules[0], "Expiration": {"Days": 5}}, foreign]
    storage.client.put_bucket_lifecycle_configuration(Bucket=storage.bucket, LifecycleConfiguration={"Rules": drifted})
    change = policy.diff_lifecycle(storage, rules)
    assert set(change.changed) == {"workbench-logs-expire"} and set(change.added) == {"workbench-abort-multipart"}
    assert "team-tmp" not in change.removed
    assert "~ workbench-logs-expire" in str(change)
    policy.apply_lifecycle(storage, rules)
    live_ids = {r["ID"] for r in storage.client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)["Rules"]}
    assert live_ids == {"team-tmp", "workbench-logs-expire", "workbench-abort-multipart"}


def test_transitions_on_a_server_without_them_give_a_clear_error(storage: Storage) -> None:
    with pytest.raises(PolicyError, match="does not support storage-class transitions"):
        policy.apply_lifecycle(storage, policy.lifecycle_rules(transitions=True))


def _record_operations(storage: Storage) -> list[tuple[str, dict]]:
    """Record every S3 operation (name and parameters) the client sends from now on."""
    sent: list[tuple[str, dict]] = []

    def record(params, model, **_):
        sent.append((model.name, params))

    storage.client.meta.events.register("before-parameter-build.s3", record)
    return sent


def test_intelligent_tiering_transition_on_aws_never_archive_tiers(aws_settings) -> None:
    storage = Storage(aws_settings)
    sent = _record_operations(storage)
    assert policy.default_transitions(storage)
    policy.apply_lifecycle(storage)
    policy.verify_lifecycle(storage)
    rules = {r["ID"]: r for r in storage.client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)["Rules"]}
    tiering = rules["workbench-raw-tiering"]
    assert tiering["Transitions"] == [{"Days": 30, "StorageClass": "INTELLIGENT_TIERING"}]
    assert tiering["Filter"]["Prefix"] == "projects/"
    assert all(t["StorageClass"] not in {"GLACIER", "DEEP_ARCHIVE"} for r in rules.values() for t in r.get("Transitions", []))
    assert "PutBucketIntelligentTieringConfiguration" not in {name for name, _ in sent}


def test_archive_tiers_only_by_explicit_opt_in(aws_settings) -> None:
    # moto accepts but does not store Intelligent-Tiering configurations, so check what is sent
    storage = Storage(aws_settings)
    sent = _record_operations(storage)
    with pytest.raises(PolicyError, match="at least 90"):
        policy.enable_archive_tiers(storage, archive_days=30)
    assert sent == []
    policy.enable_archive_tiers(storage)
    [(name, params)] = sent
    assert name == "PutBucketIntelligentTieringConfiguration"
    config = params["IntelligentTieringConfiguration"]
    assert config["Filter"] == {"Prefix": "projects/"}
    assert {t["AccessTier"]: t["Days"] for t in config["Tierings"]} == {"ARCHIVE_ACCESS": 90, "DEEP_ARCHIVE_ACCESS": 180}


def test_transfer_acceleration_set_and_verified_on_aws(aws_settings) -> None:
    storage = Storage(aws_settings)
    assert policy.acceleration_status(storage) is False
    assert policy.set_acceleration(storage, True) is True
    assert policy.acceleration_status(storage) is True
    assert policy.set_acceleration(storage, True) is False


def test_transfer_acceleration_refused_off_aws(storage: Storage) -> None:
    with pytest.raises(PolicyError, match="only on AWS"):
        policy.set_acceleration(storage, True)


# -- CORS -------------------------------------------------------------------------------------------


@pytest.fixture
def cors_bucket(storage: Storage) -> tuple[Storage, str]:
    rules = policy.cors_rules([UPLOAD], [WEB])
    policy.apply_cors(storage, rules)
    policy.verify_cors(storage, rules)
    key = "pmtiles/ortho/org/2026-01-01.pmtiles"
    storage.put_bytes(key, b"PMTiles" + bytes(100))
    return storage, Presigner(storage).get(key)


def test_cors_diff_apply_verify(storage: Storage) -> None:
    rules = policy.cors_rules([UPLOAD], [WEB])
    assert set(policy.diff_cors(storage, rules).added) == {"workbench-upload", "workbench-web"}
    policy.apply_cors(storage, rules)
    assert policy.diff_cors(storage, rules).empty
    wider = policy.cors_rules([UPLOAD], [WEB, "https://other.example.org"])
    with pytest.raises(PolicyError, match="workbench-web"):
        policy.verify_cors(storage, wider)


def test_preflights_pass_for_allowed_origins_and_fail_for_others(cors_bucket) -> None:
    _, url = cors_bucket
    ok = requests.options(url, headers={"Origin": WEB, "Access-Control-Request-Method": "GET",
                                        "Access-Control-Request-Headers": "range"})
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == WEB
    refused = requests.options(url, headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"})
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers


@pytest.mark.parametrize(
    ("origin", "method", "headers", "allowed", "reason"),
    [
        (WEB, "GET", None, True, "may GET"),
        (UPLOAD, "PUT", None, True, "may send PUT"),
        (EVIL, "GET", None, False, "no CORS rule on the bucket allows GET from https://evil.example.net"),
        (WEB, "PUT", None, False, "method PUT is not"),
        (WEB, "GET", ["x-custom-header"], False, "request header x-custom-header is not in the CORS AllowedHeaders"),
    ],
)
def test_diagnose_cors_explains_in_one_sentence(cors_bucket, origin, method, headers, allowed, reason) -> None:
    _, url = cors_bucket
    diagnosis = policy.diagnose_cors(url, origin, method, headers)
    assert diagnosis.allowed is allowed
    assert reason in diagnosis.reason and "\n" not in diagnosis.reason


def test_an_origin_that_uploads_and_reads_gets_one_combined_rule(storage: Storage) -> None:
    rules = policy.cors_rules([UPLOAD, WEB], [WEB])
    assert [r["ID"] for r in rules] == ["workbench-upload", "workbench-upload-web"]
    policy.apply_cors(storage, rules)
    storage.put_bytes("pmtiles/a/o/2026-01-01.pmtiles", b"x" * 10)
    url = Presigner(storage).get("pmtiles/a/o/2026-01-01.pmtiles")
    assert policy.diagnose_cors(url, WEB, "GET").allowed
    assert policy.diagnose_cors(url, WEB, "PUT").allowed
    assert not policy.diagnose_cors(url, UPLOAD, "GET").allowed


def test_diagnose_cors_tells_an_expired_url_from_cors(cors_bucket) -> None:
    storage, _ = cors_bucket
    import time

    url = Presigner(storage).get("pmtiles/ortho/org/2026-01-01.pmtiles", ttl=1)
    time.sleep(2.1)
    diagnosis = policy.diagnose_cors(url, WEB)
    assert not diagnosis.allowed and "CORS is fine" in diagnosis.reason and "expired" in diagnosis.reason


def test_diagnose_cors_flags_a_hidden_etag(storage: Storage) -> None:
    storage.client.put_bucket_cors(Bucket=storage.bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": [WEB], "AllowedMethods": ["GET"], "AllowedHeaders": ["range"]}]})
    storage.put_bytes("pmtiles/a/o/2026-01-01.pmtiles", b"x" * 10)
    diagnosis = policy.diagnose_cors(Presigner(storage).get("pmtiles/a/o/2026-01-01.pmtiles"), WEB)
    assert not diagnosis.allowed and "ETag is not exposed" in diagnosis.reason


def test_diagnose_cors_unreachable_host() -> None:
    diagnosis = policy.diagnose_cors("http://127.0.0.1:9/b/k", WEB)
    assert not diagnosis.allowed and "could not reach" in diagnosis.reason


def test_bad_origins_are_refused() -> None:
    for origin in ("maps.example.org", "https://maps.example.org/", "https://maps.example.org/path"):
        with pytest.raises(PolicyError, match="origin"):
            policy.cors_rules([], [origin])
    with pytest.raises(PolicyError, match="at least one"):
        policy.cors_rules([], [])


# -- generations ----------------------------------------------------------------------------------


def test_prune_keeps_the_last_generations_per_org_and_layer(storage: Storage) -> None:
    start = dt.date(2026, 1, 1)
    for layer, org, count in (("ortho", "a", 10), ("coverage", "a", 3), ("ortho", "b", 9)):
        for day in range(count):
            storage.put_bytes(f"pmtiles/{layer}/{org}/{(start + dt.timedelta(days=day)).isoformat()}.pmtiles", b"x")
    storage.put_bytes("pmtiles/ortho/a/README.txt", b"keep me")

    dry = policy.prune_generations(storage, "pmtiles/", keep=7, dry_run=True)
    assert len(dry.deleted) == 3 + 0 + 2 and dry.dry_run
    assert len(list(storage.list("pmtiles/"))) == 23
    assert dry.ignored == ["pmtiles/ortho/a/README.txt"]

    done = policy.prune_generations(storage, "pmtiles/", keep=7)
    assert done.deleted == dry.deleted
    remaining = {i.key for i in storage.list("pmtiles/")}
    assert "pmtiles/ortho/a/2026-01-03.pmtiles" not in remaining and "pmtiles/ortho/a/2026-01-04.pmtiles" in remaining
    assert "pmtiles/ortho/b/2026-01-02.pmtiles" not in remaining and "pmtiles/ortho/b/2026-01-03.pmtiles" in remaining
    assert len([k for k in remaining if k.startswith("pmtiles/coverage/")]) == 3
    assert "pmtiles/ortho/a/README.txt" in remaining
    assert policy.prune_generations(storage, "pmtiles/", keep=7).deleted == []


def test_newest_generation_is_the_latest_dated_file_of_the_folder(storage: Storage) -> None:
    from workbench.policy.generations import newest_generation

    assert newest_generation(storage, "pmtiles/ortho/a/p/") is None
    for name in ("2026-01-09.pmtiles", "2026-01-10.pmtiles", "zz-not-dated.pmtiles", "sub/2027-01-01.pmtiles"):
        storage.put_bytes(f"pmtiles/ortho/a/p/{name}", b"x")
    assert newest_generation(storage, "pmtiles/ortho/a/p/") == "pmtiles/ortho/a/p/2026-01-10.pmtiles"


def test_prune_refuses_to_delete_everything(storage: Storage) -> None:
    with pytest.raises(PolicyError, match="at least 1"):
        policy.prune_generations(storage, keep=0)


# -- access documents -------------------------------------------------------------------------------


def _actions(document: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in actions:
            out.setdefault(action, set()).update(resources)
    return out


def test_org_policies_are_scoped_to_the_org() -> None:
    from tests.iam import allowed

    read = policy.org_policy("drone-data", "hot", "read")
    bucket, obj = "arn:aws:s3:::drone-data", "arn:aws:s3:::drone-data/"
    own = ["projects/hot/dar/raw/f/x.jpg", "pmtiles/ortho/hot/dar/2026-01-01.pmtiles", "pmtiles/coverage/hot/2026-01-01.pmtiles",
           "parquet/images/hot/dar/manifest.parquet", "parquet/coverage/hot/dar/coverage.parquet"]
    # org "acme" has a project called "hot": IAM's * matches "/", so pmtiles/*/hot/* would have granted these
    theirs = ["projects/acme/hot/raw/f/x.jpg", "pmtiles/ortho/acme/hot/2026-01-01.pmtiles",
              "parquet/images/acme/hot/manifest.parquet", "parquet/coverage/acme/hot/coverage.parquet",
              "pmtiles/coverage/hotter/2026-01-01.pmtiles", "projects/hot-two/p/raw/f/x.jpg"]
    assert all(allowed(read, "s3:GetObject", obj + key) for key in own)
    assert not any(allowed(read, "s3:GetObject", obj + key) for key in theirs)
    assert allowed(read, "s3:ListBucket", bucket, {"s3:prefix": "pmtiles/ortho/hot/dar/"})
    assert not allowed(read, "s3:ListBucket", bucket, {"s3:prefix": "pmtiles/ortho/acme/hot/"})
    assert not allowed(read, "s3:ListBucket", bucket)  # listing the whole bucket
    assert not allowed(read, "s3:PutObject", obj + own[0])
    uploader = policy.org_policy("drone-data", "hot", "upload")
    assert allowed(uploader, "s3:PutObject", obj + "projects/hot/dar/raw/f/x.jpg")
    assert not allowed(uploader, "s3:PutObject", obj + "projects/hot/dar/products/r/ortho.tif")
    assert not allowed(uploader, "s3:PutObject", obj + "projects/acme/hot/raw/f/x.jpg")
    assert allowed(uploader, "s3:ListBucketMultipartUploads", bucket, {"s3:prefix": "projects/hot/dar/raw/f/x.jpg"})
    assert not allowed(uploader, "s3:ListBucketMultipartUploads", bucket, {"s3:prefix": "projects/acme/hot/raw/"})
    assert not allowed(uploader, "s3:ListBucketMultipartUploads", bucket)
    upload = _actions(policy.org_policy("drone-data", "hot", "upload"))
    assert upload["s3:PutObject"] == {"arn:aws:s3:::drone-data/projects/hot/*/raw/*"}
    assert "s3:DeleteObject" not in upload
    bucket_policy = policy.org_policy("drone-data", "hot", "read", principal_arn="arn:aws:iam::123456789012:role/viewer")
    assert all(s["Principal"] == {"AWS": "arn:aws:iam::123456789012:role/viewer"} for s in bucket_policy["Statement"])
    with pytest.raises(UnsafeKeyError):
        policy.org_policy("drone-data", "*", "read")
    with pytest.raises(PolicyError, match="unknown role"):
        policy.org_policy("drone-data", "hot", "admin")
