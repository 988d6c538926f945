"""Costs: each price component against hand-computed figures, scenarios, #708, the bucket's bill, refresh."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.cli import main
from workbench.costs import bucket, dronetm, meter, pricebook, scenarios, sensitivity
from workbench.costs.refresh import refresh
from workbench.costs.scenarios import SCENARIOS, LifecyclePlan, Usage, monthly_costs
from workbench.errors import CostError, WorkbenchError
from workbench.policy.lifecycle import apply_lifecycle, lifecycle_rules
from workbench.storage import Storage

GIB = 2**30
TODAY = dt.date(2026, 12, 1)


@pytest.fixture(scope="module")
def book() -> pricebook.PriceBook:
    return pricebook.load(user=False, warn=False)


def aws(book: pricebook.PriceBook, path: str) -> pricebook.Price:
    return book.aws("us-east-1", path)


# -- price components -----------------------------------------------------------------------------------


def test_s3_standard_bands_switch_at_50_and_500_tib(book) -> None:
    standard = aws(book, "s3/storage/STANDARD")
    assert meter.tiered(51200, standard, free=0) == pytest.approx(51200 * 0.023)
    assert meter.tiered(51201, standard, free=0) == pytest.approx(51200 * 0.023 + 0.022)
    assert meter.tiered(600 * 1024, standard, free=0) == pytest.approx(51200 * 0.023 + 460800 * 0.022 + 102400 * 0.021)


def test_internet_egress_after_the_free_100_gb_and_across_bands(book) -> None:
    assert meter.egress(book, "us-east-1", 100) == 0
    assert meter.egress(book, "us-east-1", 101) == pytest.approx(0.09)
    assert meter.egress(book, "us-east-1", 5 * 1024) == pytest.approx(451.80)  # reference §7: direct S3, 5 TB
    assert meter.egress(book, "us-east-1", 10240 + 100 + 10) == pytest.approx(10240 * 0.09 + 10 * 0.085)


def test_cloudfront_pay_as_you_go_after_1_tb_and_10_m_requests(book) -> None:
    assert meter.cloudfront_payg(book, "us-east-1", 1024, 10_000_000) == 0
    assert meter.cloudfront_payg(book, "us-east-1", 2 * 1024, 0) == pytest.approx(87.04)
    assert meter.cloudfront_payg(book, "us-east-1", 5 * 1024, 0) == pytest.approx(348.16)
    assert meter.cloudfront_payg(book, "us-east-1", 10 * 1024, 0) == pytest.approx(783.36)
    assert meter.cloudfront_payg(book, "us-east-1", 0, 10_010_000) == pytest.approx(0.01)


def test_cloudfront_flat_rate_plan_is_the_cheapest_that_covers_the_month(book) -> None:
    assert meter.cloudfront_flat(book, "us-east-1", 50, 900_000) == ("free", 0)
    assert meter.cloudfront_flat(book, "us-east-1", 5 * 1024, 10_000_000) == ("pro", 15)
    assert meter.cloudfront_flat(book, "us-east-1", 5 * 1024, 10_000_001) == ("business", 200)
    with pytest.raises(CostError, match="exceed every CloudFront flat-rate plan"):
        meter.cloudfront_flat(book, "us-east-1", 51 * 1024, 1)


def test_r2_free_tier_and_round_up(book) -> None:
    month = meter.r2_month(book, "standard", 6144, 2_097_152, 1_048_576)  # reference §7, on-prem + R2
    assert month["storage"] == pytest.approx(6134 * 0.015)
    assert month["class_a"] == pytest.approx(2 * 4.50)  # 1.10 M billable rounds up to 2 M
    assert month["class_b"] == 0
    assert meter.r2_month(book, "standard", 11.1, 2_000_001, 0) == pytest.approx(
        {"storage": 2 * 0.015, "class_a": 2 * 4.50, "class_b": 0, "retrieval": 0})
    ia = meter.r2_month(book, "infrequent_access", 0, 1000, 0, retrieval_gb=0.5)  # no free tier for IA
    assert ia["class_a"] == pytest.approx(9.00) and ia["retrieval"] == pytest.approx(0.01)


def test_minimum_storage_duration_and_object_size(book) -> None:
    ia = aws(book, "s3/storage/STANDARD_IA")
    ten_mib = 10 * 2**20
    early = meter.object_storage(book, ia, ten_mib, days=10)
    assert early == pytest.approx(ten_mib / GIB * 0.0125)  # deleted after 10 days, billed 30
    assert meter.object_storage(book, ia, ten_mib, days=60) == pytest.approx(2 * early)
    assert meter.billable_bytes(1024, ia) == 128 * 1024
    assert meter.object_storage(book, ia, 1024, 30) == pytest.approx(meter.object_storage(book, ia, 128 * 1024, 30))
    deep = aws(book, "s3/storage/DEEP_ARCHIVE")
    assert meter.billable_bytes(1024, deep) == 1024 + 40 * 1024 and meter.billed_days(1, deep) == 180
    assert meter.billable_bytes(1024, aws(book, "s3/storage/STANDARD")) == 1024


def test_requests_multipart_and_compute(book) -> None:
    assert meter.multipart_requests(10 * 2**20) == 4 and meter.multipart_requests(8 * 2**20) == 1
    assert meter.requests(2_097_152, aws(book, "s3/requests/STANDARD"), "put") == pytest.approx(10.48576)
    assert meter.hourly(book, "us-east-1", "r7i.8xlarge", 1.0) == 0.70
    assert meter.hourly(book, "us-east-1", "r7i.8xlarge", 0.0) == 2.1168
    assert meter.hourly(book, "us-east-1", "m5.4xlarge", 1.0) == pytest.approx(0.768 * 0.33)  # no hint: discount
    assert meter.odm_ram_gib(book, 1000) == pytest.approx(32 + 32 * 500 / 1000)
    name, price = meter.instance_for(book, "us-east-1", 100)
    assert float(price["ram_gib"]) >= 100 and name == "r6a.8xlarge"  # lowest price per vCPU-hour with 100 GiB
    assert meter.instance_for(book, "us-east-1", 30)[0] == "c5.9xlarge"  # $1.53 / 36 vCPU
    with pytest.raises(CostError, match="no AWS prices for region 'ap-south-1'"):
        meter.hourly(book, "ap-south-1", "r7i.8xlarge", 0.5)


# -- the book --------------------------------------------------------------------------------------------


def test_every_price_has_a_unit_source_and_date_and_old_ones_warn(book) -> None:
    rows = book.provenance()
    assert len(rows) == len(book.prices) > 80 and all(r["as_of"] and r["source"] and r["unit"] for r in rows)
    assert {"us-east-1", "eu-west-1"} <= set(book.regions())
    with pytest.warns(pricebook.StalePriceWarning, match="older than a year"):
        pricebook.load(user=False, today=TODAY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pricebook.load(user=False, today=dt.date(2021, 6, 1))  # every source was at most a year old then... or newer


def test_a_malformed_book_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "book.yaml"
    bad.write_text("aws: {regions: {us-east-1: {inter_region: {usd: 0.03, unit: GB, source: NOPE}}}}\n")
    with pytest.raises(CostError, match="unknown source 'NOPE'"):
        pricebook.load(bad, warn=False)
    bad.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(CostError, match="not valid UTF-8 YAML"):
        pricebook.load(bad, warn=False)


def _offer(code: str, products: dict, terms: dict) -> dict:
    return {"formatVersion": "v1.0", "offerCode": code, "version": "20261101000000",
            "publicationDate": "2026-11-01T00:00:00Z", "products": products, "terms": {"OnDemand": terms}}


def _term(sku: str, *dims: tuple[str, str, str, str]) -> dict:
    return {sku: {f"{sku}.T": {"priceDimensions": {f"{sku}.T.{i}": {"beginRange": b, "endRange": e, "unit": u,
                                                                       "pricePerUnit": {"USD": p}}
                                                  for i, (b, e, u, p) in enumerate(dims)}}}}


def test_refresh_rebuilds_aws_prices_from_offer_files(tmp_path: Path, book) -> None:
    s3 = _offer("AmazonS3", {
        "STD": {"attributes": {"regionCode": "eu-west-1", "usagetype": "EU-TimedStorage-ByteHrs"}},
        "SIA": {"attributes": {"regionCode": "eu-west-1", "usagetype": "EU-TimedStorage-SIA-ByteHrs"}},
        "TABLES": {"attributes": {"regionCode": "eu-west-1", "usagetype": "EU-Tables-TimedStorage-ByteHrs"}},
        "T1": {"attributes": {"regionCode": "eu-west-1", "usagetype": "EU-Requests-Tier1"}},
        "USE1": {"attributes": {"regionCode": "us-east-1", "usagetype": "TimedStorage-ByteHrs"}},
    }, {**_term("STD", ("0", "51200", "GB-Mo", "0.0240"), ("51200", "512000", "GB-Mo", "0.0230"), ("512000", "Inf", "GB-Mo", "0.0220")),
        **_term("SIA", ("0", "Inf", "GB-Mo", "0.0130")), **_term("TABLES", ("0", "Inf", "GB-Mo", "9.99")),
        **_term("T1", ("0", "Inf", "Requests", "0.0000055")), **_term("USE1", ("0", "Inf", "GB-Mo", "7.77"))})
    transfer = _offer("AWSDataTransfer", {
        "OUT": {"attributes": {"fromRegionCode": "eu-west-1", "toLocation": "External", "transferType": "AWS Outbound"}},
    }, _term("OUT", ("0", "10240", "GB", "0.095"), ("10240", "Inf", "GB", "0.08")))
    ec2 = _offer("AmazonEC2", {
        "R7I": {"attributes": {"regionCode": "eu-west-1", "instanceType": "r7i.8xlarge", "vcpu": "32", "memory": "256 GiB",
                               "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}},
        "WIN": {"attributes": {"regionCode": "eu-west-1", "instanceType": "r7i.8xlarge", "vcpu": "32", "memory": "256 GiB",
                               "operatingSystem": "Windows", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}},
    }, {**_term("R7I", ("0", "Inf", "Hrs", "2.2176")), **_term("WIN", ("0", "Inf", "Hrs", "3.69"))})
    files = []
    for name, offer in (("s3.json", s3), ("dt.json", transfer), ("ec2.json", ec2)):
        files.append(tmp_path / name)
        files[-1].write_text(json.dumps(offer))
    output, changed = refresh(files, "eu-west-1", book, tmp_path / "user.yaml")
    assert len(changed) == 3
    fresh = pricebook.load(output, warn=False)
    standard = fresh.aws("eu-west-1", "s3/storage/STANDARD")
    assert standard.tiers == [(51200, 0.024), (512000, 0.023), (None, 0.022)] and standard.as_of == dt.date(2026, 11, 1)
    sia = fresh.aws("eu-west-1", "s3/storage/STANDARD_IA")
    assert sia.usd == 0.013 and sia["min_days"] == 30 and sia["min_object_kib"] == 128  # minimums kept
    assert fresh.aws("eu-west-1", "s3/requests/STANDARD")["put"] == pytest.approx(0.0055)
    assert fresh.aws("eu-west-1", "egress_internet").tiers == [(10240, 0.095), (None, 0.08)]
    assert fresh.aws("eu-west-1", "egress_internet")["free_gb"] == 100
    assert fresh.aws("eu-west-1", "ec2/on_demand/r7i.8xlarge").usd == 2.2176  # Linux, not Windows
    assert fresh.aws("us-east-1", "s3/storage/STANDARD").tiers[0] == (51200, 0.023)  # other regions untouched
    code = main(["costs", "refresh", "--offer-file", str(tmp_path / "missing.json"), "--output", str(output)])
    assert code == 1
    (tmp_path / "bad.json").write_text('{"offerCode": "AmazonRDS", "products": {}}')
    with pytest.raises(CostError, match="not an AmazonS3, AWSDataTransfer or AmazonEC2 offer file"):
        refresh([tmp_path / "bad.json"], "eu-west-1", book, output)


# -- scenarios ---------------------------------------------------------------------------------------------


def test_the_lifecycle_priced_is_the_one_the_policy_module_applies() -> None:
    plan = LifecyclePlan.workbench()
    rules = lifecycle_rules(True)
    days = {r["ID"]: r for r in rules}
    assert plan.tiering_days == days["workbench-raw-tiering"]["Transitions"][0]["Days"]
    assert plan.log_expiry_days == days["workbench-logs-expire"]["Expiration"]["Days"]
    assert plan.abort_days == days["workbench-abort-multipart"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
    assert plan.archive_days is None and LifecyclePlan.workbench(archive_tiers=True).archive_days == 90
    assert LifecyclePlan.from_rules(lifecycle_rules(False)).tiering_days is None


def test_every_scenario_prices_every_month(book) -> None:
    usage = Usage(months=6)
    costs = monthly_costs(usage, book)
    assert set(costs["scenario"]) == set(SCENARIOS) and sorted(set(costs["month"])) == list(range(1, 7))
    assert (costs["usd"] >= 0).all()
    table = scenarios.totals(costs)
    assert (table.diff().iloc[1:] >= -1e-9).all().all()  # data accumulates: no month is cheaper than the last
    lines = scenarios.summary(costs)
    assert lines[-1].startswith("cheapest: months 1-6") or "month" in lines[-1]
    with pytest.raises(CostError, match="unknown scenario"):
        monthly_costs(usage, book, scenarios=["gcp"])


def test_lifecycle_tiering_lowers_storage_and_archive_lowers_it_more(book) -> None:
    usage = dronetm.dronetm_usage()
    month12 = {}
    for name, plan in (("none", LifecyclePlan()), ("workbench", LifecyclePlan.workbench()),
                       ("archive", LifecyclePlan.workbench(archive_tiers=True))):
        costs = monthly_costs(usage, book, plan, ["aws-cloudfront"])
        month12[name] = costs[(costs["item"] == "storage") & (costs["month"] == 12)]["usd"].sum()
    assert month12["none"] > month12["workbench"] > month12["archive"] > 0
    # no lifecycle: 6 TiB a month spread over its 30 days; month 12 holds on average 345.5 days of uploads,
    # billed in the 50 TiB and 450 TiB bands
    stored = 6144 * 345.5 / 30
    assert month12["none"] == pytest.approx(51200 * 0.023 + (stored - 51200) * 0.022, rel=1e-6)


def test_retention_and_rules_cap_what_accumulates(book) -> None:
    usage = Usage(months=12, pmtiles_gib_per_project=0, log_gib_per_month=0, failed_upload_share=0)
    kept = monthly_costs(usage, book, scenarios=["aws-cloudfront"])
    dropped = monthly_costs(usage.replace(retention_months=3), book, scenarios=["aws-cloudfront"])
    storage = lambda c: c[c["item"] == "storage"].set_index("month")["usd"]  # noqa: E731
    assert storage(dropped)[12] < storage(kept)[12]
    assert storage(dropped)[12] == pytest.approx(storage(dropped)[6], rel=1e-9)  # steady state after retention
    assert storage(dropped)[3] > storage(dropped)[2]
    no_abort = LifecyclePlan(tiering_days=30, log_expiry_days=30, abort_days=None)
    leaky = monthly_costs(Usage(months=12, failed_upload_share=0.2), book, no_abort, ["aws-cloudfront"])
    tidy = monthly_costs(Usage(months=12, failed_upload_share=0.2), book, LifecyclePlan.workbench(), ["aws-cloudfront"])
    assert storage(leaky)[12] > storage(tidy)[12]


GROWING = ["projects_per_month", "images_per_project", "image_mib", "products_gib_per_project", "pmtiles_gib_per_project",
           "processing_reads", "tile_requests_per_month", "tile_kib", "downloads_gib_per_month", "log_gib_per_month",
           "compute_scale", "accelerated_share", "failed_upload_share"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(GROWING), base=st.floats(0, 1), growth=st.floats(1.0, 4.0),
       projects=st.floats(0.5, 200), images=st.integers(20, 12000))
def test_costs_never_decrease_when_usage_grows(book, name: str, base: float, growth: float, projects: float,
                                                images: int) -> None:
    usage = Usage(months=3, projects_per_month=projects, images_per_project=images, accelerated_share=0.5,
                  failed_upload_share=0.05)
    value = getattr(usage, name) if name not in ("accelerated_share", "failed_upload_share") else base
    small = usage.replace(**{name: value})
    bigger_value = min(value * growth, 1.0) if name in ("accelerated_share", "failed_upload_share") else value * growth
    if name == "images_per_project":
        bigger_value = int(round(bigger_value))
    large = usage.replace(**{name: bigger_value})
    before = scenarios.totals(monthly_costs(small, book))
    after = scenarios.totals(monthly_costs(large, book))
    assert (after - before >= -1e-6).all().all(), (name, value, bigger_value)


def test_bad_usage_is_one_clear_error() -> None:
    with pytest.raises(CostError, match="share: between 0 and 1"):
        Usage(spot_share=1.5)
    with pytest.raises(CostError, match="finite number"):
        Usage(image_mib=float("nan"))
    with pytest.raises(WorkbenchError, match="whole number"):
        scenarios.parse_usage(["images_per_project=2.5"])
    with pytest.raises(CostError, match="NAME=VALUE"):
        scenarios.parse_usage(["colour=blue"])
    assert scenarios.parse_usage(["nat_in_path=yes", "region=eu-west-1"]).nat_in_path is True


# -- drone-tm #708 -------------------------------------------------------------------------------------------


def test_dronetm_708_reproduced_to_the_cent(book) -> None:
    published = dronetm.published()
    assert [round(line.published_low, 2) for line in published] == [115.00, 5.00, 100.00, 105.00]
    assert round(sum(line.published_high for line in published), 2) == 330.00
    assert round(sum(line.published_low for line in published), 2) == 325.00
    corrected = {line.item: round(line.corrected, 2) for line in dronetm.corrected(book, spot_share=1.0)}
    assert corrected == {"storage": 141.31, "requests": 10.91, "processing transfer": 0.0, "compute": 105.00,
                         "workspace disk": 41.67, "upload acceleration": 204.80}
    on_demand = {line.item: round(line.corrected, 2) for line in dronetm.corrected(book, spot_share=0.0)}
    assert on_demand["compute"] == 317.52
    table = dronetm.comparison(book)
    why = " ".join(table["why"])
    assert "$460.80" in why and "$409.60" in why and "not $320" in why
    assert table.iloc[-1]["published"].startswith("$325.00-330.00")


# -- sensitivity -----------------------------------------------------------------------------------------------


def test_tornado_ranks_inputs_and_break_even_is_where_the_order_flips(book) -> None:
    usage = Usage(months=12)
    table = sensitivity.tornado(usage, book, "aws-cloudfront", inputs=["downloads_gib_per_month", "tile_kib", "image_mib"])
    assert list(table.columns[:2]) == ["input", "base_value"] and len(table) == 3
    assert (table["spread"].diff().iloc[1:] <= 0).all()  # widest bar first
    assert (table["high_total"] >= table["low_total"]).all()
    point = sensitivity.break_even(usage, book, "downloads_gib_per_month", "r2-aws-compute", "aws-cloudfront", 0, 50_000)
    assert point is not None
    below = usage.replace(downloads_gib_per_month=point * 0.9)
    above = usage.replace(downloads_gib_per_month=point * 1.1)
    total = lambda u: scenarios.horizon_totals(monthly_costs(u, book, scenarios=["r2-aws-compute", "aws-cloudfront"]))  # noqa: E731
    assert (total(below)["r2-aws-compute"] > total(below)["aws-cloudfront"]) != (
        total(above)["r2-aws-compute"] > total(above)["aws-cloudfront"])
    assert sensitivity.break_even(usage, book, "tile_kib", "onprem-minio", "aws-cloudfront", 1, 2) is None


# -- the live bucket -------------------------------------------------------------------------------------------


@pytest.fixture
def costs_bucket(s3_server) -> Storage:
    storage = Storage(s3_server.settings.with_(bucket=f"costs-{os.getpid()}"))
    storage.ensure_bucket()
    for key in [i.key for i in storage.list("")]:
        storage.delete(key)
    return storage


def test_bucket_report_from_a_listing(costs_bucket: Storage, book) -> None:
    sizes = {"projects/acme/a/raw/f/1.jpg": 3_000_000, "projects/acme/a/raw/f/2.jpg": 5_000_000,
             "projects/hot/b/raw/f/1.jpg": 7_000_000, "log/acme/a/2026-01-01/x.json": 1000}
    for key, size in sizes.items():
        costs_bucket.put_bytes(key, b"x" * size)
    apply_lifecycle(costs_bucket, lifecycle_rules(False))
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=100)
    result = bucket.report(costs_bucket, book, now=later, months=3)
    groups = result.groups.set_index("prefix")
    assert groups.loc["projects/acme/", "objects"] == 2 and groups.loc["projects/acme/", "bytes"] == 8_000_000
    assert groups.loc["projects/hot/", "bytes"] == 7_000_000 and (groups["age"] == "90-180 d").all()
    assert result.usd_month == pytest.approx(sum(sizes.values()) / GIB * 0.023)
    assert "as if it were on AWS S3 in us-east-1" in " ".join(result.notes)
    assert list(result.projection["usd"]) == pytest.approx([8_000_000 / GIB * 0.023 + 7_000_000 / GIB * 0.023] * 3)  # logs expire
    only = bucket.report(costs_bucket, book, prefix="projects/hot/", now=later)
    assert int(only.groups["bytes"].sum()) == 7_000_000


def test_bucket_report_from_s3_inventory_csv_and_parquet(costs_bucket: Storage, book) -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    rows = [("projects/acme/a/raw/f/1.jpg", 10 * 2**20, "STANDARD", "2026-11-20T10:00:00.000Z", ""),
            ("projects/acme/a/raw/f/small.json", 1024, "STANDARD_IA", "2026-06-01T00:00:00.000Z", ""),
            ("projects/acme/a/raw/f/old%2Fimg.jpg", 20 * 2**20, "INTELLIGENT_TIERING", "2025-01-01T00:00:00.000Z",
             "ARCHIVE_INSTANT_ACCESS")]
    csv = "\n".join(",".join(f'"{v}"' for v in ("workbench", k, s, m, c, t)) for k, s, c, m, t in rows)
    costs_bucket.put_bytes("inventory/data/a.csv.gz", gzip.compress(csv.encode()))
    table = pa.table({"bucket": ["workbench"], "key": ["pmtiles/ortho/acme/2026-11-30.pmtiles"], "size": [5 * 2**20],
                      "last_modified_date": pa.array([dt.datetime(2026, 11, 30)], pa.timestamp("ms")),
                      "storage_class": ["STANDARD"], "intelligent_tiering_access_tier": [None]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    costs_bucket.put_bytes("inventory/data/b.parquet", sink.getvalue())
    manifest = {"fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, LastModifiedDate, StorageClass, IntelligentTieringAccessTier",
                "files": [{"key": "inventory/data/a.csv.gz"}]}
    costs_bucket.put_bytes("inventory/manifest.json", json.dumps(manifest).encode())
    costs_bucket.put_bytes("inventory/manifest-parquet.json", json.dumps(
        {"fileFormat": "Parquet", "files": [{"key": "inventory/data/b.parquet"}]}).encode())
    result = bucket.report(costs_bucket, book, inventory="inventory/manifest.json", now=now, depth=1)
    by_class = result.groups.set_index("storage_class")
    assert by_class.loc["STANDARD_IA", "billable"] == 128 * 1024 and by_class.loc["STANDARD_IA", "age"] == "180-365 d"
    assert by_class.loc["INTELLIGENT_TIERING/ARCHIVE_INSTANT_ACCESS", "age"] == "> 1 y"
    expected = (10 * 2**20 * 0.023 + 128 * 1024 * 0.0125 + 20 * 2**20 * 0.004) / GIB + 1 / 1000 * 0.0025
    assert result.usd_month == pytest.approx(expected)
    parquet = bucket.report(costs_bucket, book, inventory="inventory/manifest-parquet.json", now=now)
    assert parquet.groups["prefix"].tolist() == ["pmtiles/ortho/"] and parquet.source == "inventory"
    with pytest.raises(CostError, match="no inventory manifest"):
        bucket.report(costs_bucket, book, inventory="inventory/nope.json")


# -- CLI --------------------------------------------------------------------------------------------------------


def test_costs_compare_cli(capsys, tmp_path: Path) -> None:
    assert main(["costs", "compare", "--months", "3", "--set", "downloads_gib_per_month=3000",
                 "--csv", str(tmp_path / "lines.csv")]) == 0
    out = capsys.readouterr().out
    assert "cheapest:" in out and "aws-cloudfront-flat" in out
    assert (tmp_path / "lines.csv").read_text().startswith("scenario,month,item,usd")
    assert main(["costs", "compare", "--dronetm"]) == 0
    assert "not $320" in capsys.readouterr().out
    assert main(["costs", "compare", "--set", "months=0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") <= 2 and "months must be between 1 and 60" in err
    user = tmp_path / "book.yaml"
    user.write_text(yaml.safe_dump({"sources": {"MINE": {"title": "my quote", "as_of": "2026-11-30"}},
                                    "cloudflare_r2": {"egress": {"usd": 0, "unit": "GB", "source": "MINE"}}}))
    assert main(["costs", "compare", "--months", "2", "--pricebook", str(user)]) == 0
