"""Pricing primitives: tiers, free tiers, round-up, minimum durations and sizes, requests, transfer, compute.

Quantities are in the book's GB (binary for AWS, see :mod:`workbench.costs.pricebook`), months of 30 days
(720 hours), and counts. Every function prices one month of one line item and is pure.
"""

from __future__ import annotations

import bisect
import math

from workbench.costs.pricebook import Price, PriceBook
from workbench.errors import CostError

DAYS_PER_MONTH = 30
HOURS_PER_MONTH = 720
KIB = 1024
MIB = 1024**2


def tiered(quantity: float, price: Price, free: float | None = None) -> float:
    """``quantity`` priced through ``price``'s marginal bands, after the free allowance (default the price's)."""
    if quantity < 0:
        raise CostError(f"{price.path}: quantity cannot be negative ({quantity})")
    remaining = max(0.0, quantity - (price.get("free_gb", 0) if free is None else free))
    total, floor = 0.0, 0.0
    for bound, rate in price.tiers:
        band = remaining if bound is None else min(remaining, max(0.0, bound - floor))
        total += band * rate
        remaining -= band
        if bound is not None:
            floor = bound
        if remaining <= 0:
            break
    return total


def rounded_up(quantity: float, unit: float = 1.0) -> float:
    """R2's rule: usage rounds up to the next whole billing unit (1,000,001 ops bill as 2 million)."""
    if quantity <= 0:
        return 0.0
    return math.ceil(quantity / unit - 1e-9) * unit


def billable_bytes(size: int, price: Price) -> int:
    """An object's billed size: at least the class's minimum (128 KiB for IA), plus per-object overhead."""
    minimum = int(price.get("min_object_kib", 0)) * KIB
    return max(int(size), minimum) + int(price.get("overhead_kib", 0)) * KIB


def billed_days(days: float, price: Price) -> float:
    """Days billed for an object stored ``days`` then deleted: at least the class's minimum duration."""
    return max(float(days), float(price.get("min_days", 0)))


def object_storage(book: PriceBook, price: Price, size: int, days: float, count: int = 1) -> float:
    """USD to store ``count`` objects of ``size`` bytes for ``days`` in ``price``'s class (first band's rate).

    An object deleted before the class's minimum duration pays the minimum; small objects pay the minimum size.
    """
    gb_months = count * billable_bytes(size, price) / book.gb_bytes * billed_days(days, price) / DAYS_PER_MONTH
    return gb_months * price.tiers[0][1]


def requests(count: float, price: Price, kind: str) -> float:
    """USD for ``count`` requests of ``kind`` (``put``, ``get``, ``transition_in``) at a per-1,000 price."""
    return count / 1000 * float(price[kind])


def multipart_requests(size_bytes: float, threshold_mib: float = 8, chunk_mib: float = 8) -> int:
    """Write requests for one object as boto3 uploads it: 1 PUT, or Create + parts + Complete."""
    if size_bytes <= threshold_mib * MIB:
        return 1
    return 2 + math.ceil(size_bytes / (chunk_mib * MIB))


def r2_month(book: PriceBook, storage_class: str, gb_month: float, class_a: float, class_b: float,
             retrieval_gb: float = 0.0) -> dict[str, float]:
    """One month of Cloudflare R2: storage, Class A, Class B, retrieval, after free tier and round-up."""
    price = book[f"cloudflare_r2/{storage_class}"]
    free_gb, free_a, free_b = (float(price.get(k, 0)) for k in ("free_gb", "free_class_a", "free_class_b"))
    round_up = bool(price.get("round_up"))

    def units(quantity: float, free: float, unit: float) -> float:
        billable = max(0.0, quantity - free)
        return rounded_up(billable, unit) if round_up else billable

    return {
        "storage": units(gb_month, free_gb, 1) * price.usd,
        "class_a": units(class_a, free_a, 1e6) / 1e6 * float(price["class_a_per_million"]),
        "class_b": units(class_b, free_b, 1e6) / 1e6 * float(price["class_b_per_million"]),
        "retrieval": units(retrieval_gb, 0, 1) * float(price.get("retrieval_gb", 0)),
    }


def cloudfront_payg(book: PriceBook, region: str, gb: float, requests_count: float) -> float:
    """CloudFront pay as you go (US/EU): transfer bands after 1 TB free, HTTPS requests after 10 M free."""
    transfer = tiered(gb, book.aws(region, "cloudfront/out_us_eu"))
    req = book.aws(region, "cloudfront/https_requests")
    return transfer + max(0.0, requests_count - float(req["free"])) / 10_000 * req.usd


def cloudfront_flat(book: PriceBook, region: str, gb: float, requests_count: float) -> tuple[str, float]:
    """The cheapest flat-rate plan whose allowance covers the month (name, USD); an error above them all."""
    book.aws(region, "cloudfront/out_us_eu")  # the region's error, if the book lacks it
    plans = sorted(book.under(f"aws/regions/{region}/cloudfront/flat_rate_plans").items(), key=lambda kv: kv[1].usd)
    for name, plan in plans:
        if gb <= float(plan["gb"]) and requests_count <= float(plan["requests"]):
            return name, plan.usd
    raise CostError(f"{gb:,.0f} GB and {requests_count:,.0f} requests a month exceed every CloudFront flat-rate plan "
                    "(AWS throttles above the allowance): price pay-as-you-go instead")


def egress(book: PriceBook, region: str, gb: float) -> float:
    """Internet egress from AWS (S3 or EC2) after the account's 100 GB free."""
    return tiered(gb, book.aws(region, "egress_internet"))


def odm_ram_gib(book: PriceBook, images: int) -> float:
    """ODM's minimum RAM (or RAM + swap) for ``images`` images, interpolated in the docs' table."""
    table = [(float(n), float(gib)) for n, gib in book["odm/ram_gib_by_images"]["table"]]
    counts = [n for n, _ in table]
    if images <= counts[0]:
        return table[0][1]
    if images >= counts[-1]:
        return table[-1][1] * images / counts[-1]
    i = bisect.bisect_left(counts, images)
    (n0, r0), (n1, r1) = table[i - 1], table[i]
    return r0 + (r1 - r0) * (images - n0) / (n1 - n0)


def instance_for(book: PriceBook, region: str, ram_gib: float, spot_share: float = 0.0) -> tuple[str, Price]:
    """The instance type with at least ``ram_gib`` of memory that does the work cheapest: lowest price per vCPU-hour
    (ODM's hours shrink with cores), on the spot/on-demand mix of ``spot_share``."""
    types = book.under(f"aws/regions/{region}/ec2/on_demand")
    if not types:
        book.aws(region, "ec2/on_demand")  # raises the region's error
    fitting = [(hourly(book, region, name, spot_share) / float(price["vcpu"]), name, price)
               for name, price in types.items() if float(price["ram_gib"]) >= ram_gib]
    if not fitting:
        raise CostError(f"no instance type in the price book has {ram_gib:.0f} GiB of memory: split the project")
    _, name, price = min(fitting, key=lambda t: (t[0], t[1]))
    return name, price


def hourly(book: PriceBook, region: str, instance: str, spot_share: float) -> float:
    """USD per hour of ``instance`` when ``spot_share`` of hours run on spot and the rest fall back to on-demand."""
    if not 0 <= spot_share <= 1:
        raise CostError(f"spot share must be between 0 and 1, not {spot_share}")
    on_demand = book.aws(region, f"ec2/on_demand/{instance}").usd
    hint = f"aws/regions/{region}/ec2/spot_hint/{instance}"
    spot = book[hint].usd if book.has(hint) else on_demand * float(book.aws(region, "ec2/spot_discount")["ratio"])
    return spot_share * spot + (1 - spot_share) * on_demand
