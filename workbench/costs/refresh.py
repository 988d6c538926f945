"""Rebuild the AWS part of the price book from AWS's public Price List offer files (bulk JSON).

A user downloads the files while online (no credentials), for example
``https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonS3/current/us-east-1/index.json`` and the
same for ``AWSDataTransfer`` and ``AmazonEC2``; :func:`refresh` reads them and writes a user book that
:func:`workbench.costs.pricebook.load` lays over the packaged one. Nothing is fetched here.

Pitfalls handled (recorded by objectfs's generator, see the reference): usage types are matched exactly
after the region prefix (``EU-``, ``USE2-``...), storage bands start at ``beginRange``, S3's
``DataTransfer-Out-Bytes`` is not internet egress (that lives in ``AWSDataTransfer``), and Deep Archive may
only appear as Intelligent-Tiering's ``INT-DAA`` usage type.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from workbench.costs.pricebook import PriceBook, default_user_book, merge, read_yaml
from workbench.errors import CostError
from workbench.local import write_private

STORAGE_USAGE = {
    "TimedStorage-ByteHrs": "STANDARD",
    "TimedStorage-INT-FA-ByteHrs": "INTELLIGENT_TIERING_FA",
    "TimedStorage-INT-IA-ByteHrs": "INTELLIGENT_TIERING_IA",
    "TimedStorage-INT-AIA-ByteHrs": "INTELLIGENT_TIERING_AIA",
    "TimedStorage-INT-AA-ByteHrs": "INTELLIGENT_TIERING_AA",
    "TimedStorage-INT-DAA-ByteHrs": "INTELLIGENT_TIERING_DAA",
    "TimedStorage-SIA-ByteHrs": "STANDARD_IA",
    "TimedStorage-ZIA-ByteHrs": "ONEZONE_IA",
    "TimedStorage-GIR-ByteHrs": "GLACIER_IR",
    "TimedStorage-GlacierByteHrs": "GLACIER",
    "TimedStorage-GDA-ByteHrs": "DEEP_ARCHIVE",
}
REQUEST_USAGE = {"Requests-Tier1": "put", "Requests-Tier2": "get"}
_REGION_PREFIX = re.compile(r"^[A-Z]{2,4}\d?-")
EC2_FILTER = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}


def _usage(attributes: dict[str, Any]) -> str:
    usage = str(attributes.get("usagetype", ""))
    return _REGION_PREFIX.sub("", usage, count=1) if _REGION_PREFIX.match(usage) else usage


def _dimensions(offer: dict[str, Any], sku: str) -> list[dict[str, Any]]:
    terms = offer.get("terms", {}).get("OnDemand", {}).get(sku, {})
    return [dim for term in terms.values() for dim in term.get("priceDimensions", {}).values()]


def _tiers(dimensions: list[dict[str, Any]]) -> list[list[float | None]]:
    bands = sorted(dimensions, key=lambda d: float(d.get("beginRange", 0)))
    out: list[list[float | None]] = []
    for dim in bands:
        end = dim.get("endRange", "Inf")
        out.append([None if end in ("Inf", "", None) else float(end), float(dim["pricePerUnit"]["USD"])])
    if not out:
        raise CostError("an offer product has no on-demand price")
    return out


def _products(offer: dict[str, Any], region: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for sku, product in offer.get("products", {}).items():
        attributes = product.get("attributes", {})
        if attributes.get("regionCode", attributes.get("fromRegionCode", region)) == region:
            yield sku, attributes


def _s3(offer: dict[str, Any], region: str, sid: str, book: PriceBook) -> dict[str, Any]:
    storage: dict[str, Any] = {}
    requests: dict[str, float] = {}
    monitoring = None
    for sku, attributes in _products(offer, region):
        usage = _usage(attributes)
        dims = _dimensions(offer, sku)
        if not dims:
            continue
        if usage in STORAGE_USAGE and not attributes.get("operation", "").startswith("Tables"):
            name = STORAGE_USAGE[usage]
            if usage == "TimedStorage-INT-DAA-ByteHrs":
                storage.setdefault("DEEP_ARCHIVE", _carry(book, region, "s3/storage/DEEP_ARCHIVE", _tiers(dims), sid))
            storage[name] = _carry(book, region, f"s3/storage/{name}", _tiers(dims), sid)
        elif usage in REQUEST_USAGE:
            requests[REQUEST_USAGE[usage]] = float(dims[0]["pricePerUnit"]["USD"]) * 1000
        elif usage == "Monitoring-Automation-INT":
            monitoring = float(dims[0]["pricePerUnit"]["USD"]) * 1000
    out: dict[str, Any] = {}
    if storage:
        out["storage"] = storage
    if requests:
        out["requests"] = {"STANDARD": {**requests, "unit": "1000 requests", "source": sid}}
    if monitoring is not None:
        out["monitoring"] = {"usd": monitoring, "unit": "1000 objects-month", "min_object_kib": 128, "source": sid}
    return out


def _carry(book: PriceBook, region: str, path: str, tiers: list[list[float | None]], sid: str) -> dict[str, Any]:
    """A new storage price that keeps the old entry's minimums (they are not in the offer file)."""
    full = f"aws/regions/{region}/{path}"
    old = {k: v for k, v in book[full].fields.items() if k in ("min_days", "min_object_kib", "overhead_kib")} if book.has(full) else {}
    entry: dict[str, Any] = {"unit": "GB-month", "source": sid, **old}
    if len(tiers) == 1:
        entry["usd"] = tiers[0][1]
    else:
        entry["tiers"] = tiers
    return entry


def _data_transfer(offer: dict[str, Any], region: str, sid: str, book: PriceBook) -> dict[str, Any]:
    for sku, attributes in _products(offer, region):
        if attributes.get("transferType") == "AWS Outbound" and attributes.get("toLocation") == "External":
            dims = [d for d in _dimensions(offer, sku) if float(d["pricePerUnit"]["USD"]) > 0 or float(d.get("beginRange", 0)) > 0]
            free = book.aws(region, "egress_internet").get("free_gb", 100) if region in book.regions() else 100
            return {"egress_internet": {"tiers": _tiers(dims), "free_gb": free, "unit": "GB", "source": sid}}
    return {}


def _memory_gib(text: str) -> float:
    match = re.match(r"([\d.,]+)\s*GiB", text or "")
    return float(match.group(1).replace(",", "")) if match else 0.0


def _ec2(offer: dict[str, Any], region: str, sid: str, book: PriceBook) -> dict[str, Any]:
    types: dict[str, Any] = {}
    for sku, attributes in _products(offer, region):
        if "instanceType" not in attributes or any(attributes.get(k) != v for k, v in EC2_FILTER.items()):
            continue
        dims = [d for d in _dimensions(offer, sku) if d.get("unit", "").lower().startswith("hr")]
        if dims and float(dims[0]["pricePerUnit"]["USD"]) > 0:
            types[attributes["instanceType"]] = {
                "usd": float(dims[0]["pricePerUnit"]["USD"]), "vcpu": int(attributes.get("vcpu", 0)),
                "ram_gib": _memory_gib(attributes.get("memory", "")), "unit": "hour", "source": sid}
    return {"ec2": {"on_demand": types}} if types else {}


PARSERS = {"AmazonS3": ("s3", _s3), "AWSDataTransfer": (None, _data_transfer), "AmazonEC2": (None, _ec2)}


def read_offer(path: Path) -> dict[str, Any]:
    """An offer file, with one-line errors."""
    try:
        offer = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CostError(f"cannot read offer file {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise CostError(f"{path} is not a JSON offer file (download the .json variant)") from None
    if not isinstance(offer, dict) or offer.get("offerCode") not in PARSERS or "products" not in offer:
        raise CostError(f"{path} is not an AmazonS3, AWSDataTransfer or AmazonEC2 offer file")
    return offer


def offer_prices(offer: dict[str, Any], region: str, book: PriceBook) -> dict[str, Any]:
    """The price-book mapping (sources + ``aws/regions/{region}``) one offer file yields for ``region``."""
    code = offer["offerCode"]
    published = str(offer.get("publicationDate", ""))[:10]
    try:
        as_of = dt.date.fromisoformat(published)
    except ValueError:
        raise CostError(f"offer file {code} has no publicationDate") from None
    sid = f"offer-{code}-{region}"
    section, parser = PARSERS[code]
    prices = parser(offer, region, sid, book)
    if not prices:
        raise CostError(f"the {code} offer file has no prices for region {region}")
    url = f"https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/{code}/current/{region}/index.json"
    return {"sources": {sid: {"title": f"AWS Price List offer file {code} {region} (version {offer.get('version', '?')})",
                              "url": url, "as_of": as_of.isoformat()}},
            "aws": {"regions": {region: {section: prices} if section else prices}}}


def refresh(offer_files: list[Path], region: str, book: PriceBook, output: Path | None = None) -> tuple[Path, list[str]]:
    """Write the prices of ``offer_files`` for ``region`` into the user book; return it and what changed."""
    output = Path(output) if output else default_user_book()
    data = read_yaml(output) if output.exists() else {}
    changed = []
    for path in offer_files:
        update = offer_prices(read_offer(path), region, book)
        data = merge(data, update)
        count = sum(1 for _ in _leaves(update["aws"]))
        changed.append(f"{Path(path).name}: {count} prices for {region} as of {next(iter(update['sources'].values()))['as_of']}")
    PriceBook(merge(book.data, data), str(output))  # refuse to write a book that would not load
    output.parent.mkdir(parents=True, exist_ok=True)
    write_private(output, yaml.safe_dump(data, sort_keys=False))
    return output, changed


def _leaves(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "source" in node:
            yield node
        else:
            for value in node.values():
                yield from _leaves(value)
