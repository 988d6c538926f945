"""A receipt for every run: ``products/{run}/cost.json`` from ``run.json``, the bucket and the price book.

Line items: compute (the run's seconds on the instance type it ran on, when known: ``$WORKBENCH_INSTANCE_TYPE``
or ``--instance-type``; a machine of your own is not priced), storage the products add each month, requests
(reading the inputs, writing the products and records) and transfer (inputs read from a cloud bucket by a
machine outside it pay internet egress; another region pays inter-region transfer). Each line names its
price's source and date.
"""

from __future__ import annotations

import json
import os
from typing import Any

from workbench import layout
from workbench.costs import meter
from workbench.costs.pricebook import Price, PriceBook
from workbench.errors import CostError, NotFoundError
from workbench.storage import Storage

RECEIPT = "cost.json"
RECORD_WRITES = 3  # run.json when the run starts and ends, latest.json


def _line(item: str, quantity: float, unit: str, usd: float, price: Price | None, note: str = "") -> dict[str, Any]:
    return {"item": item, "quantity": round(quantity, 6), "unit": unit, "usd": round(usd, 6),
            "price": price.path if price else None, "source": price.source.title if price else None,
            "as_of": price.as_of.isoformat() if price else None, "note": note}


def _input_sizes(storage: Storage, record: dict[str, Any]) -> list[int]:
    wanted = {i["key"] for i in record.get("inputs", [])}
    if not wanted:
        return []
    prefix = layout.flights_prefix(record["org"], record["project"])
    return [info.size for info in storage.list(prefix) if info.key in wanted]


def receipt(storage: Storage, record: dict[str, Any], book: PriceBook, instance_type: str | None = None,
            spot_share: float = 0.0, compute_region: str | None = None) -> dict[str, Any]:
    """The receipt of the run ``record`` describes (``run.json``'s content)."""
    profile = storage.settings.profile
    provider = {"aws": "s3", "r2": "r2"}.get(profile, "onprem")
    region = storage.settings.region if book.has(f"aws/regions/{storage.settings.region}/s3/storage/STANDARD") else "us-east-1"
    notes: list[str] = []
    lines: list[dict[str, Any]] = []
    hours = float(record.get("seconds") or 0) / 3600
    if instance_type:
        price = book.aws(compute_region or region, f"ec2/on_demand/{instance_type}")
        rate = meter.hourly(book, compute_region or region, instance_type, spot_share)
        lines.append(_line("compute", hours, f"hours of {instance_type}", hours * rate, price,
                           f"{spot_share:.0%} spot" if spot_share else "on-demand"))
    else:
        lines.append(_line("compute", hours, "hours on a machine of your own", 0.0, None,
                           "not priced: set WORKBENCH_INSTANCE_TYPE (or --instance-type) when runs use cloud instances"))
    products = record.get("products", [])
    product_bytes = sum(int(p.get("size", 0)) for p in products)
    gb = product_bytes / book.gb_bytes
    inputs = _input_sizes(storage, record)
    input_gb = sum(inputs) / book.gb_bytes
    writes = sum(meter.multipart_requests(int(p.get("size", 0))) for p in products) + RECORD_WRITES + len(products)
    if provider == "s3":
        storage_price = book.aws(region, "s3/storage/STANDARD")
        lines.append(_line("storage added", gb, "GB-month", gb * storage_price.tiers[0][1], storage_price, "every month the products are kept"))
        requests = book.aws(region, "s3/requests/STANDARD")
        lines.append(_line("requests", writes + len(inputs), "requests",
                           meter.requests(writes, requests, "put") + meter.requests(len(inputs), requests, "get"), requests,
                           f"{len(inputs)} reads, {writes} writes"))
        if instance_type and compute_region and compute_region != region:
            transfer = book.aws(region, "inter_region")
            lines.append(_line("transfer", input_gb, "GB", input_gb * transfer.usd, transfer, f"inputs read from {region}"))
        elif not instance_type:
            transfer = book.aws(region, "egress_internet")
            lines.append(_line("transfer", input_gb, "GB", input_gb * transfer.tiers[0][1], transfer,
                               "inputs read by a machine outside AWS pay internet egress (after the account's 100 GB free a month)"))
        else:
            lines.append(_line("transfer", input_gb, "GB", 0.0, None, "same region: free"))
    elif provider == "r2":
        r2 = book["cloudflare_r2/standard"]
        lines.append(_line("storage added", gb, "GB-month", gb * r2.usd, r2, "every month the products are kept (before free tier)"))
        lines.append(_line("requests", writes + len(inputs), "requests",
                           writes / 1e6 * float(r2["class_a_per_million"]) + len(inputs) / 1e6 * float(r2["class_b_per_million"]),
                           r2, "before the free tier and R2's round-up to a million"))
        lines.append(_line("transfer", input_gb, "GB", 0.0, book["cloudflare_r2/egress"], "R2 charges no egress"))
    else:
        notes.append(f"a {profile} store: storage and transfer are your own hardware and network")
        lines.append(_line("storage added", gb, "GB-month", 0.0, None, "on your own storage"))
    return {"run": record["run"], "org": record["org"], "project": record["project"], "engine": record.get("engine"),
            "status": record.get("status"), "provider": provider, "region": region, "instance_type": instance_type,
            "lines": lines, "total_usd": round(sum(line["usd"] for line in lines), 6),
            "price_book_as_of": book.as_of.isoformat(), "price_book": book.origin, "notes": notes}


def write_receipt(storage: Storage, record: dict[str, Any], book: PriceBook, **options: Any) -> dict[str, Any]:
    """Compute the receipt and store it as ``products/{run}/cost.json``."""
    options.setdefault("instance_type", os.environ.get("WORKBENCH_INSTANCE_TYPE") or None)
    cost = receipt(storage, record, book, **options)
    key = layout.product_key(record["org"], record["project"], record["run"], RECEIPT)
    storage.put_bytes(key, json.dumps(cost, indent=2).encode(), content_type="application/json")
    return cost


def read_receipt(storage: Storage, org: str, project: str, run: str) -> dict[str, Any] | None:
    """A stored receipt, or ``None``."""
    try:
        return json.loads(storage.get_bytes(layout.product_key(org, project, run, RECEIPT)))
    except NotFoundError:
        return None
    except ValueError:
        raise CostError(f"the receipt of run {run} is not JSON") from None


def lines(cost: dict[str, Any]) -> list[str]:
    """The receipt as text."""
    out = [f"run {cost['run']} ({cost['engine']}, {cost['status']}) priced as {cost['provider']} {cost['region']}, "
           f"prices as of {cost['price_book_as_of']}"]
    for line in cost["lines"]:
        out.append(f"  {line['item']:<14} {line['quantity']:>14,.4f} {line['unit']:<32} ${line['usd']:>10,.4f}"
                   + (f"  ({line['note']})" if line["note"] else ""))
    out.append(f"  {'total':<14} {'':>14} {'':<32} ${cost['total_usd']:>10,.4f}")
    return out + cost.get("notes", [])
