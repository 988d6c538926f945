"""drone-tm issue #708 as a scenario: its line items reproduced from its own assumptions, then corrected.

#708 (hotosm/drone-tm, 2026-01-21) priced "all in AWS" at $320 a month for 5 TB of imagery a month, each
dataset read twice for processing, 1 TB of outputs, us-east-1, 150 h of r7i.8xlarge spot at $0.70. Its
line items, recomputed from the rates they imply, add to $325-330, not $320. The corrected version prices
the same month with the price book (binary GB, boto3's multipart requests, the outputs, Transfer
Acceleration that #708 recommends, the workspace disk, spot with an on-demand fallback) and lists every
difference with its reason. :func:`growth` shows what the single-month view hides: storage accumulates.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from workbench.costs import meter
from workbench.costs.pricebook import PriceBook
from workbench.costs.scenarios import LifecyclePlan, Usage, monthly_costs

REGION = "us-east-1"
STATED_TOTAL = 320.0
IMAGE_MIB = 10
TIB_GB = 1024
IMAGES = 5 * TIB_GB * 1024 // IMAGE_MIB  # 5 TiB of 10 MiB images: 524,288
SPLIT_IMAGES = 5000  # the largest project ODM's table covers: a 2.5 TB workspace (ClusterODM's mapping)


@dataclasses.dataclass(frozen=True)
class Line:
    """One line item: as #708 has it (a range when it gave one) and as corrected, with the reason."""

    item: str
    published_low: float
    published_high: float
    corrected: float
    why: str


def published() -> list[Line]:
    """#708's lines recomputed from the rates and quantities they imply (decimal units, as it used)."""
    return [
        Line("storage", 5000 * 0.023, 5000 * 0.023, 0.0, "5,000 GB x $0.023"),
        Line("requests", 1_000_000 / 1000 * 0.005, 2_000_000 / 1000 * 0.005, 0.0,
             "$5-10: 1-2 M PUT-class requests at $0.005/1k (500,000 images of 10 MB, 2-4 requests each)"),
        Line("processing transfer", 10_000 * 0.01, 10_000 * 0.01, 0.0, "10 TB of reads at an implied $0.01/GB"),
        Line("compute", 150 * 0.70, 150 * 0.70, 0.0, "150 h x $0.70 (r7i.8xlarge spot)"),
    ]


def dronetm_usage(spot_share: float = 0.8) -> Usage:
    """#708's month as a :class:`Usage`: 524,288 images of 10 MiB in projects of 5,000, 1 TiB of outputs."""
    projects = IMAGES / SPLIT_IMAGES
    return Usage(months=12, projects_per_month=projects, images_per_project=SPLIT_IMAGES, image_mib=IMAGE_MIB,
                 products_gib_per_project=TIB_GB / projects, pmtiles_gib_per_project=0, processing_reads=2,
                 tile_requests_per_month=0, downloads_gib_per_month=0, accelerated_share=1.0,
                 acceleration_edges="us_eu_jp", spot_share=spot_share, log_gib_per_month=0, failed_upload_share=0,
                 product_objects_per_project=0, region=REGION)


def corrected(book: PriceBook, spot_share: float = 0.8) -> list[Line]:
    """The same month priced with the book: every line of #708 and what it left out, with reasons."""
    aws = lambda path: book.aws(REGION, path)  # noqa: E731
    standard = aws("s3/requests/STANDARD")
    writes = IMAGES * meter.multipart_requests(IMAGE_MIB * meter.MIB)
    reads = IMAGES * 2
    stored_gb = 6 * TIB_GB
    hours = 150.0
    on_demand = aws("ec2/on_demand/r7i.8xlarge").usd
    workspace_gb = SPLIT_IMAGES * float(book["odm/ebs_gb_per_image"]["gb"])
    nat = 10 * TIB_GB * aws("nat_gateway").usd
    acceleration = aws("s3/transfer_acceleration")
    uploaded_gb = 5 * TIB_GB
    rates = published()
    return [
        Line("storage", rates[0].published_low, rates[0].published_high,
             meter.tiered(stored_gb, aws("s3/storage/STANDARD"), free=0),
             "6 TiB, not 5,000 GB: the 1 TiB of outputs was left out, and S3 bills binary GB (1 TB = 1,024 GB); "
             "it also grows every month (see growth)"),
        Line("requests", rates[1].published_low, rates[1].published_high,
             meter.requests(writes, standard, "put") + meter.requests(reads, standard, "get"),
             f"{writes:,} writes (boto3 uploads a 10 MiB image as 4 multipart requests) and {reads:,} GETs"),
        Line("processing transfer", rates[2].published_low, rates[2].published_high, 0.0,
             f"S3 to EC2 in the same region is free through a gateway endpoint; through a NAT gateway it is "
             f"${nat:,.2f}, never $100"),
        Line("compute", rates[3].published_low, rates[3].published_high,
             hours * meter.hourly(book, REGION, "r7i.8xlarge", spot_share),
             f"{spot_share:.0%} of hours on spot at $0.70, the rest falling back to on-demand at ${on_demand}/h "
             f"(all on-demand: ${hours * on_demand:,.2f})"),
        Line("workspace disk", 0.0, 0.0,
             workspace_gb * hours / meter.HOURS_PER_MONTH * aws("ec2/ebs_gp3").usd,
             f"not in #708: ODM needs ~{workspace_gb:,.0f} GB of gp3 for a 5,000-image project while it runs"),
        Line("upload acceleration", 0.0, 0.0, uploaded_gb * float(acceleration["in_us_eu_jp"]),
             f"recommended by #708 but not priced: +${acceleration['in_us_eu_jp']}/GB through US/EU/Japan edges "
             f"(${uploaded_gb * float(acceleration['in_other']):,.2f} through other edges)"),
    ]


def comparison(book: PriceBook, spot_share: float = 0.8) -> pd.DataFrame:
    """#708 against the corrected month, one row per line item plus the totals."""
    lines = corrected(book, spot_share)
    rows = [{"item": x.item, "published": _range(x.published_low, x.published_high), "corrected": round(x.corrected, 2),
             "why": x.why} for x in lines]
    low = sum(x.published_low for x in lines)
    high = sum(x.published_high for x in lines)
    rows.append({"item": "total", "published": f"{_range(low, high)} (stated: ${STATED_TOTAL:,.0f})",
                 "corrected": round(sum(x.corrected for x in lines), 2),
                 "why": f"#708's own lines add to {_range(low, high)}, not ${STATED_TOTAL:,.0f}"})
    return pd.DataFrame(rows)


def _range(low: float, high: float) -> str:
    return f"${low:,.2f}" if low == high else f"${low:,.2f}-{high:,.2f}"


def growth(book: PriceBook, months: int = 12) -> pd.DataFrame:
    """S3 storage a month under #708's usage: no lifecycle, the workbench's lifecycle, and with archive tiers."""
    usage = dronetm_usage().replace(months=months)
    plans = {"S3 Standard only": LifecyclePlan(),
             "workbench lifecycle (Intelligent-Tiering after 30 days)": LifecyclePlan.workbench(),
             "with archive tiers (restore needed)": LifecyclePlan.workbench(archive_tiers=True)}
    columns = {}
    for name, plan in plans.items():
        costs = monthly_costs(usage, book, plan, ["aws-cloudfront"])
        columns[name] = costs[costs["item"] == "storage"].set_index("month")["usd"]
    return pd.DataFrame(columns)
