"""Pricing a bucket inventory: the workbench (pyarrow, streamed batches) vs the same computation in pandas.

Generates an S3 Inventory-style Parquet file of N objects (default 10 million: key, size, storage class,
last modified; row groups of 1 M; keys like ``projects/org12/p3/raw/{flight}/IMG_000123.JPG``), then, each
in its own process (measured from outside: wall time and peak memory of the process):

* workbench: :func:`workbench.costs.bucket.aggregate` over the file's record batches, then
  :func:`workbench.costs.bucket.price_groups` (prefix of depth 2, class, age band -> objects, bytes,
  billable bytes, byte-weighted age; priced);
* pandas: ``pd.read_parquet`` of the four columns, the prefix with ``str.extract``, billable bytes, the age
  band with ``pd.cut``, a ``groupby().agg``; priced the same way.

Both results must agree (objects and bytes per group). Prints times, peak memory and the ratios; writes
``benchmarks/results/costs.json``. ``python benchmarks/costs.py [--objects 10000000]``; the goal is at least
3x faster than pandas and under 1 GiB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure  # noqa: E402

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
ROW_GROUP = 1_000_000
CLASSES = np.array(["STANDARD", "INTELLIGENT_TIERING", "STANDARD_IA", "GLACIER_IR", "DEEP_ARCHIVE"])


def generate(path: Path, objects: int, seed: int = 0) -> None:
    """Write the inventory file, one row group at a time."""
    rng = np.random.default_rng(seed)
    schema = pa.schema([("key", pa.string()), ("size", pa.int64()), ("storage_class", pa.string()),
                        ("last_modified_date", pa.timestamp("ms", tz="UTC"))])
    now_ms = int(NOW.timestamp() * 1000)
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, objects, ROW_GROUP):
            n = min(ROW_GROUP, objects - start)
            org, project, flight = rng.integers(0, 40, n), rng.integers(0, 25, n), rng.integers(0, 1000, n)
            top = rng.random(n)
            keys = [f"projects/org{o}/p{p}/raw/{f:04d}/IMG_{start + i:08d}.JPG" if t < 0.9 else
                    f"log/org{o}/p{p}/2026-{1 + f % 12:02d}-01/{start + i}.json" if t < 0.97 else
                    f"pmtiles/ortho/org{o}/p{p}/{start + i}.pmtiles"
                    for i, (o, p, f, t) in enumerate(zip(org, project, flight, top))]
            sizes = np.where(top < 0.9, rng.integers(5_000_000, 15_000_000, n), rng.integers(200, 400_000, n))
            classes = CLASSES[rng.choice(len(CLASSES), n, p=[0.5, 0.3, 0.1, 0.05, 0.05])]
            modified = now_ms - rng.integers(0, 800 * 86_400_000, n)
            writer.write_table(pa.table({"key": keys, "size": sizes, "storage_class": classes,
                                         "last_modified_date": pa.array(modified, pa.timestamp("ms", tz="UTC"))},
                                        schema=schema))


def run_workbench(path: Path, out: Path) -> None:
    from workbench.costs.bucket import aggregate, file_batches, price_groups
    from workbench.costs.pricebook import load

    groups = aggregate(file_batches(path, "parquet"), NOW, depth=2)
    per_group, total = price_groups(groups, load(user=False, warn=False), "s3", "us-east-1")
    _write(out, groups, total)


def run_pandas(path: Path, out: Path) -> None:
    import pandas as pd

    from workbench.costs.bucket import AGE_BANDS, BAND_NAMES, price_groups
    from workbench.costs.pricebook import load

    frame = pd.read_parquet(path, columns=["key", "size", "storage_class", "last_modified_date"])
    frame["prefix"] = frame["key"].str.extract(r"^((?:[^/]*/){0,2})", expand=False)
    age = (pd.Timestamp(NOW) - frame["last_modified_date"]).dt.total_seconds().clip(lower=0) / 86400
    frame["band"] = pd.cut(age, [-1, *AGE_BANDS, np.inf], right=False, labels=False)
    billable = frame["size"].copy()
    small = frame["storage_class"].isin(["STANDARD_IA", "ONEZONE_IA", "GLACIER_IR"])
    billable[small] = billable[small].clip(lower=128 * 1024)
    billable += np.where(frame["storage_class"].isin(["GLACIER", "DEEP_ARCHIVE"]), 40 * 1024, 0)
    frame["billable"] = billable
    frame["monitored"] = (frame["size"] >= 128 * 1024).astype("int64")
    frame["age_bytes"] = age * frame["size"]
    frame["objects"] = 1
    groups = frame.groupby(["prefix", "storage_class", "band"], as_index=False)[
        ["objects", "size", "billable", "monitored", "age_bytes"]].sum()
    groups = groups.rename(columns={"size": "bytes"})
    groups["age"] = [BAND_NAMES[int(b)] for b in groups.pop("band")]
    groups["mean_age_days"] = groups["age_bytes"] / groups["bytes"].clip(lower=1)
    per_group, total = price_groups(groups, load(user=False, warn=False), "s3", "us-east-1")
    _write(out, groups, total)


def _write(out: Path, groups, total: float) -> None:
    summary = {f"{r.prefix}|{r.storage_class}|{r.age}": [int(r.objects), int(r.bytes)] for r in groups.itertuples()}
    out.write_text(json.dumps({"total_usd": total, "groups": summary}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000_000)
    parser.add_argument("--run", choices=["workbench", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        (run_workbench if args.run == "workbench" else run_pandas)(Path(args.file), Path(args.out))
        return
    with tempfile.TemporaryDirectory(prefix="workbench-bench-costs-") as scratch:
        path = Path(scratch) / "inventory.parquet"
        start = time.perf_counter()
        generate(path, args.objects)
        print(f"inventory of {args.objects:,} objects: {path.stat().st_size / 2**20:,.0f} MiB Parquet "
              f"(generated in {time.perf_counter() - start:.1f} s)")
        results, answers = {}, {}
        for name in ("workbench", "pandas"):
            out = Path(scratch) / f"{name}.json"
            results[name] = measure([sys.executable, __file__, "--run", name, "--file", str(path), "--out", str(out)])
            answers[name] = json.loads(out.read_text())
            print(f"{name:>9}: {results[name]['wall_s']:6.1f} s wall, {results[name]['cpu_s']:6.1f} s CPU, "
                  f"peak {results[name]['peak_mib']:7.0f} MiB")
    same = answers["workbench"]["groups"] == answers["pandas"]["groups"]
    close = abs(answers["workbench"]["total_usd"] - answers["pandas"]["total_usd"]) < 1e-6 * answers["pandas"]["total_usd"]
    speedup = results["pandas"]["wall_s"] / results["workbench"]["wall_s"]
    memory = results["pandas"]["peak_mib"] / results["workbench"]["peak_mib"]
    print(f"same groups: {same}; same bill: {close} (${answers['workbench']['total_usd']:,.2f} a month)")
    print(f"speed-up {speedup:.1f}x (goal >= 3x), memory {memory:.1f}x less; workbench peak "
          f"{results['workbench']['peak_mib']:.0f} MiB (goal < 1024)")
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    Path(__file__).with_name("results").joinpath("costs.json").write_text(json.dumps(
        {"objects": args.objects, "results": results, "speedup": speedup, "memory_ratio": memory,
         "same_groups": same, "same_bill": close}, indent=2))
    if not (same and close):
        raise SystemExit("the two computations disagree")


if __name__ == "__main__":
    main()
