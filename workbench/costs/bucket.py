"""What the live bucket costs: bytes and objects by prefix, storage class and age, priced now and projected.

Objects come from a listing (streamed page by page, any size) or from S3 Inventory reports (the
manifest's CSV or Parquet files, streamed batch by batch). Batches are aggregated with pyarrow as they
arrive, so memory does not grow with the bucket (see ``benchmarks/costs.py``). The projection applies the
lifecycle rules in force on the bucket (read live, :class:`~workbench.costs.scenarios.LifecyclePlan`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import gzip
import json
import os
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from workbench.costs import meter
from workbench.costs.pricebook import PriceBook
from workbench.costs.scenarios import CLASSES, LifecyclePlan, s3_tiers
from workbench.errors import CostError, NotFoundError
from workbench.storage import Storage

AGE_BANDS = (30, 90, 180, 365)  # days: 0-30, 30-90, 90-180, 180-365, over 365
BAND_NAMES = ("0-30 d", "30-90 d", "90-180 d", "180-365 d", "> 1 y")
BATCH_ROWS = 100_000  # a listing's batches
FILE_BATCH_ROWS = 500_000  # an inventory file's batches (a Parquet row group, typically)
SCHEMA = pa.schema([("key", pa.string()), ("size", pa.int64()), ("storage_class", pa.string()),
                    ("last_modified", pa.timestamp("ms", tz="UTC")), ("access_tier", pa.string())])
_INVENTORY_COLUMNS = {"key": "key", "size": "size", "storageclass": "storage_class", "storage_class": "storage_class",
                      "lastmodifieddate": "last_modified", "last_modified_date": "last_modified",
                      "intelligenttieringaccesstier": "access_tier", "intelligent_tiering_access_tier": "access_tier"}
_TIERS = {"FREQUENT": "FA", "INFREQUENT": "IA", "ARCHIVE_INSTANT_ACCESS": "AIA", "ARCHIVE_ACCESS": "AA",
          "DEEP_ARCHIVE_ACCESS": "DAA"}
_MIN_SIZE_CLASSES = {"STANDARD_IA": 128 * 1024, "ONEZONE_IA": 128 * 1024, "GLACIER_IR": 128 * 1024}
_OVERHEAD_CLASSES = {"GLACIER": 40 * 1024, "DEEP_ARCHIVE": 40 * 1024}
MONITORED_MIN_BYTES = 128 * 1024


def _reduce(batch: pa.RecordBatch, pattern: str, now_ms: int) -> dict[tuple[str, str, int], np.ndarray]:
    """One batch summed by (prefix, class, age band): [objects, bytes, billable, monitored, age x bytes]."""
    bands = len(BAND_NAMES)
    keys = batch.column("key")
    if pc.any(pc.match_substring(keys, "%2")).as_py():  # inventory CSVs URL-encode keys: %2F is a folder
        keys = pc.replace_substring_regex(keys, "%2[Ff]", "/")
    prefix = pc.struct_field(pc.extract_regex(keys, pattern), [0]).dictionary_encode()
    raw_classes = pc.fill_null(batch.column("storage_class"), "STANDARD")
    classes = raw_classes
    tiers = batch.column("access_tier")
    if tiers.null_count < len(tiers):
        classes = pc.if_else(pc.and_(pc.equal(classes, "INTELLIGENT_TIERING"), pc.is_valid(tiers)),
                             pc.binary_join_element_wise(classes, pc.fill_null(tiers, ""), "/"), classes)
    classes = classes.dictionary_encode()
    size = batch.column("size").to_numpy(zero_copy_only=False).astype(np.int64)
    modified = batch.column("last_modified").cast(pa.int64()).to_numpy(zero_copy_only=False)
    age = np.maximum((now_ms - modified) / 86_400_000, 0.0)
    billable = size.copy()
    class_names = classes.dictionary.to_pylist()
    class_index = classes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    for i, name in enumerate(class_names):
        base = name.partition("/")[0]
        if base in _MIN_SIZE_CLASSES or base in _OVERHEAD_CLASSES:
            hit = class_index == i
            billable[hit] = np.maximum(billable[hit], _MIN_SIZE_CLASSES.get(base, 0)) + _OVERHEAD_CLASSES.get(base, 0)
    n_classes = len(class_names)
    code = ((prefix.indices.to_numpy(zero_copy_only=False).astype(np.int64) * n_classes + class_index) * bands
            + np.searchsorted(AGE_BANDS, age, side="right"))
    length = len(prefix.dictionary) * n_classes * bands
    sums = np.stack([np.bincount(code, minlength=length),
                     np.bincount(code, weights=size, minlength=length),
                     np.bincount(code, weights=billable, minlength=length),
                     np.bincount(code, weights=size >= MONITORED_MIN_BYTES, minlength=length),
                     np.bincount(code, weights=age * size, minlength=length)])
    prefixes = prefix.dictionary.to_pylist()
    out = {}
    for group in np.flatnonzero(sums[0]):
        rest, band = divmod(int(group), bands)
        p, c = divmod(rest, n_classes)
        out[(prefixes[p], class_names[c], band)] = sums[:, group]
    return out


def aggregate(batches: Iterable[pa.RecordBatch], now: dt.datetime, depth: int = 2, threads: int | None = None) -> pd.DataFrame:
    """Objects, bytes, billable bytes, monitored objects and byte-weighted age by (prefix, class, age band).

    ``prefix`` is the key's first ``depth`` folders. Batches are reduced as they arrive, ``threads`` at a time
    (pyarrow and numpy release the GIL; at most that many batches are held): prefixes and classes are
    dictionary-encoded, combined with the age band into one group code and summed with ``numpy.bincount``;
    only the (few) groups are kept.
    """
    if not 1 <= depth <= 8:
        raise CostError(f"prefix depth must be between 1 and 8, not {depth}")
    pattern = rf"^(?P<prefix>(?:[^/]*/){{0,{depth}}})"
    now_ms = int(now.timestamp() * 1000)
    totals: dict[tuple[str, str, int], np.ndarray] = {}

    def merge(part: dict[tuple[str, str, int], np.ndarray]) -> None:
        for key, values in part.items():
            totals[key] = totals[key] + values if key in totals else values

    workers = max(1, min(threads or os.cpu_count() or 1, 4))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending: collections.deque[concurrent.futures.Future] = collections.deque()
        for batch in batches:
            if batch.num_rows:
                pending.append(pool.submit(_reduce, batch, pattern, now_ms))
            while len(pending) >= workers:
                merge(pending.popleft().result())
        while pending:
            merge(pending.popleft().result())
    columns = ["prefix", "storage_class", "age", "objects", "bytes", "billable", "monitored", "mean_age_days"]
    if not totals:
        return pd.DataFrame(columns=columns)
    rows = [(urllib.parse.unquote_plus(p), c, BAND_NAMES[b], int(v[0]), int(round(v[1])), int(round(v[2])),
             int(v[3]), v[4] / max(v[1], 1.0)) for (p, c, b), v in totals.items()]
    return pd.DataFrame(rows, columns=columns).sort_values(["prefix", "storage_class", "age"]).reset_index(drop=True)


def listing_batches(storage: Storage, prefix: str = "", rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The bucket listing under ``prefix`` as record batches of ``rows`` objects (streamed)."""
    buffer: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for info in storage.list(prefix):
        buffer["key"].append(info.key)
        buffer["size"].append(info.size)
        buffer["storage_class"].append(info.storage_class)
        buffer["last_modified"].append(info.last_modified)
        buffer["access_tier"].append(None)
        if len(buffer["key"]) >= rows:
            yield pa.RecordBatch.from_pydict(buffer, schema=SCHEMA)
            buffer = {name: [] for name in SCHEMA.names}
    if buffer["key"]:
        yield pa.RecordBatch.from_pydict(buffer, schema=SCHEMA)


def _normalise(batch: pa.RecordBatch, names: list[str]) -> pa.RecordBatch:
    columns = {}
    for name, column in zip(names, batch.columns):
        target = _INVENTORY_COLUMNS.get(name.strip().lower().replace(" ", ""))
        if target:
            columns[target] = column
    missing = {"key", "size", "last_modified"} - set(columns)
    if missing:
        raise CostError(f"the inventory report lacks {', '.join(sorted(missing))}: configure S3 Inventory with "
                        "Size, LastModifiedDate and StorageClass")
    n = batch.num_rows
    columns.setdefault("storage_class", pa.nulls(n, pa.string()))
    columns.setdefault("access_tier", pa.nulls(n, pa.string()))
    columns["size"] = pc.cast(columns["size"], pa.int64())
    modified = columns["last_modified"]
    if pa.types.is_string(modified.type) or pa.types.is_large_string(modified.type):
        modified = pc.strptime(pc.utf8_slice_codeunits(modified, 0, 19), "%Y-%m-%dT%H:%M:%S", "ms")
    modified = pc.cast(modified, pa.timestamp("ms", tz=getattr(modified.type, "tz", None)))
    columns["last_modified"] = modified.cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC"))  # naive = UTC
    columns["storage_class"] = pc.cast(columns["storage_class"], pa.string())
    columns["access_tier"] = pc.cast(columns["access_tier"], pa.string())
    return pa.RecordBatch.from_arrays([columns[n] for n in SCHEMA.names], schema=SCHEMA)


def file_batches(path: Path, file_format: str, schema: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """One inventory data file (CSV, gzipped or not, with ``schema`` names; or Parquet) as batches."""
    fmt = file_format.lower()
    if fmt == "parquet":
        reader = pq.ParquetFile(path)
        wanted = [n for n in reader.schema_arrow.names if n.strip().lower().replace(" ", "") in _INVENTORY_COLUMNS]
        for batch in reader.iter_batches(batch_size=FILE_BATCH_ROWS, columns=wanted):
            yield _normalise(batch, batch.schema.names)
    elif fmt == "csv":
        if not schema:
            raise CostError("a CSV inventory needs the manifest's fileSchema")
        opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
        with opener(path, "rb") as stream:
            options = pacsv.ReadOptions(column_names=schema, block_size=1 << 26)
            types = {name: pa.string() for name in schema}
            types.update({name: pa.int64() for name in schema if name.strip().lower() == "size"})
            convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
            for batch in pacsv.open_csv(stream, read_options=options, convert_options=convert):
                yield _normalise(batch, schema)
    else:
        raise CostError(f"inventory format {file_format} is not read (CSV and Parquet are)")


def inventory_batches(storage: Storage, manifest_key: str) -> Iterator[pa.RecordBatch]:
    """Every object of an S3 Inventory report, from its ``manifest.json`` in ``storage``'s bucket."""
    try:
        manifest = json.loads(storage.get_bytes(manifest_key))
        file_format, files = manifest["fileFormat"], manifest["files"]
    except NotFoundError:
        raise CostError(f"no inventory manifest at {manifest_key}") from None
    except (ValueError, KeyError, TypeError):
        raise CostError(f"{manifest_key} is not an S3 Inventory manifest (fileFormat and files expected)") from None
    schema = [c.strip() for c in str(manifest.get("fileSchema", "")).split(",")] if manifest.get("fileSchema") else None
    for entry in files:
        with tempfile.TemporaryDirectory(prefix="workbench-inventory-") as scratch:
            local = Path(scratch) / "part"
            with storage.errors(f"download inventory file {entry['key']}"):
                storage.client.download_file(storage.bucket, entry["key"], str(local))
            yield from file_batches(local, file_format, schema)


@dataclasses.dataclass
class BucketReport:
    """The bucket's bill now and under its lifecycle, with how it was measured."""

    groups: pd.DataFrame
    usd_month: float
    projection: pd.DataFrame
    source: str
    provider: str
    as_of: dt.date
    notes: list[str]

    def lines(self) -> list[str]:
        """A short text report."""
        total_bytes = int(self.groups["bytes"].sum()) if len(self.groups) else 0
        objects = int(self.groups["objects"].sum()) if len(self.groups) else 0
        out = [f"{objects:,} objects, {total_bytes / 2**30:,.2f} GiB (from the {self.source}); priced as {self.provider}, "
               f"storage price of {self.as_of}: ${self.usd_month:,.2f} a month now"]
        if len(self.projection):
            last = self.projection.iloc[-1]
            out.append(f"under the lifecycle rules in force: ${self.projection['usd'].iloc[0]:,.2f} next month, "
                       f"${last['usd']:,.2f} in month {int(last['month'])}")
        return out + self.notes


def _class_price(book: PriceBook, region: str, storage_class: str) -> str:
    base, _, tier = storage_class.partition("/")
    if base == "INTELLIGENT_TIERING":
        short = tier if tier in _TIERS.values() else _TIERS.get(tier, "FA")
        return f"INTELLIGENT_TIERING_{short}"
    name = {"REDUCED_REDUNDANCY": "STANDARD", "GLACIER_FLEXIBLE_RETRIEVAL": "GLACIER"}.get(base, base)
    return name if book.has(f"aws/regions/{region}/s3/storage/{name}") else "STANDARD"


def price_groups(groups: pd.DataFrame, book: PriceBook, provider: str, region: str) -> tuple[pd.Series, float]:
    """USD a month per group (first band's rate) and the bill (each class through its tiers, plus monitoring)."""
    gb = groups["billable"] / book.gb_bytes
    if provider == "r2":
        rate = book["cloudflare_r2/standard"].usd
        return gb * rate, meter.r2_month(book, "standard", float(gb.sum()), 0, 0)["storage"]
    classes = groups["storage_class"].map(lambda c: _class_price(book, region, c))
    rates = classes.map(lambda c: book.aws(region, f"s3/storage/{c}").tiers[0][1])
    total = sum(meter.tiered(float(gb[classes == c].sum()), book.aws(region, f"s3/storage/{c}"), free=0)
                for c in classes.unique())
    monitored = groups.loc[groups["storage_class"].str.startswith("INTELLIGENT_TIERING"), "monitored"].sum()
    total += float(monitored) / 1000 * book.aws(region, "s3/monitoring").usd
    return gb * rates, float(total)


def project(groups: pd.DataFrame, book: PriceBook, region: str, plan: LifecyclePlan, months: int = 12) -> pd.DataFrame:
    """The storage bill for the next ``months`` months if nothing is added: objects age under ``plan``."""
    rows = []
    for month in range(1, months + 1):
        aged = groups.copy()
        ages = aged["mean_age_days"].to_numpy() + month * meter.DAYS_PER_MONTH
        under_projects = aged["prefix"].str.startswith("projects/").to_numpy()
        standard = aged["storage_class"].eq("STANDARD").to_numpy()
        tiers = s3_tiers(ages, plan)
        moved = under_projects & standard & (tiers > 0)
        aged.loc[moved, "storage_class"] = ["INTELLIGENT_TIERING/" + CLASSES[t].rsplit("_", 1)[-1] for t in tiers[moved]]
        expired = np.zeros(len(aged), bool)
        if plan.log_expiry_days:
            expired = aged["prefix"].str.startswith("log/").to_numpy() & (ages >= plan.log_expiry_days)
        usd = price_groups(aged[~expired], book, "s3", region)[1] if (~expired).any() else 0.0
        rows.append({"month": month, "usd": usd})
    return pd.DataFrame(rows)


def report(storage: Storage, book: PriceBook, *, prefix: str = "", inventory: str | None = None, depth: int = 2,
           provider: str | None = None, region: str | None = None, months: int = 12,
           now: dt.datetime | None = None, archive: tuple[int, int] | None = None) -> BucketReport:
    """Measure the bucket (listing, or the inventory manifest at ``inventory``), price it and project it."""
    now = now or dt.datetime.now(dt.timezone.utc)
    provider = provider or ("r2" if storage.settings.profile == "r2" else "s3")
    if provider not in ("s3", "r2"):
        raise CostError(f"provider must be s3 or r2, not {provider!r}")
    region = region or (storage.settings.region if book.has(f"aws/regions/{storage.settings.region}/s3/storage/STANDARD")
                        else "us-east-1")
    notes: list[str] = []
    if storage.settings.profile not in ("aws", "r2"):
        notes.append(f"this is a {storage.settings.profile} store: priced as if it were on AWS S3 in {region}")
    batches = inventory_batches(storage, inventory) if inventory else listing_batches(storage, prefix)
    groups = aggregate(batches, now, depth)
    if inventory and prefix:
        groups = groups[groups["prefix"].str.startswith(prefix)].reset_index(drop=True)
    if (groups["storage_class"] == "INTELLIGENT_TIERING").any():
        notes.append("the access tier of some Intelligent-Tiering objects is unknown (listings do not give it): priced "
                     "at Frequent Access, an upper bound; S3 Inventory with IntelligentTieringAccessTier reports it")
    if len(groups):
        per_group, total = price_groups(groups, book, provider, region)
        groups = groups.assign(usd_month=per_group.round(4))
    else:
        total = 0.0
    projection = pd.DataFrame(columns=["month", "usd"])
    if provider == "s3" and len(groups):
        from workbench.policy.lifecycle import live_rules

        rules: list[dict[str, Any]] = []
        with contextlib.suppress(Exception):  # a store without lifecycle support has no rules in force
            rules = live_rules(storage)
        plan = LifecyclePlan.from_rules(rules, archive)
        if not rules:
            notes.append("the bucket has no lifecycle rules: the projection keeps every object where it is")
        projection = project(groups, book, region, plan, months)
    used = book["cloudflare_r2/standard"] if provider == "r2" else book.aws(region, "s3/storage/STANDARD")
    return BucketReport(groups, total, projection, "inventory" if inventory else "listing",
                        "Cloudflare R2" if provider == "r2" else f"AWS S3 {region}", used.as_of, notes)
