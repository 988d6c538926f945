"""Ingest: the workbench (ranged metadata reads on Dask) vs the naive way (download each object whole, parse).

N images (default 500: server-side copies of the 18 real DJI images in ``../shared``, distinct names) sit
in the embedded S3. Timed in one run:

* naive: a boto3 loop that GETs every object whole and parses its metadata;
* workbench ingest, metadata only (``pixels=False``), with 1 and with 2 Dask worker processes;
* workbench ingest with pixel checks and thumbnails (reads whole objects), 2 workers, for reference.

Each runs twice: straight to SeaweedFS on loopback, and through ``netem.LinkEmulator`` (default 20 ms
round trip, 50 MB/s per connection: roughly S3 seen from EC2 in the same region). Prints bytes read per
image, wall time and the speed-ups.

Then the real flights as flown (brighton: 18 DJI images, 4000 x 2250; seneca: 14 senseFly images,
3600 x 2700) with the pixel checks on, 2 workers, on loopback: images/s (median of 3 runs from an empty
manifest), what was flagged and how many footprints. ``python benchmarks/ingest.py [--images 500]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from workbench import layout
from workbench.cluster import local_client
from workbench.imagery.ingest import ingest, manifest_key
from workbench.imagery.metadata import read_metadata
from workbench.local import LocalS3
from workbench.storage import Storage
from workbench.transfer import upload_folder

sys.path.insert(0, str(Path(__file__).parent))
from netem import LinkEmulator  # noqa: E402

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SHARED_IMAGES = DATASETS / "brighton_beach" / "images"
REAL_FLIGHTS = {"brighton": SHARED_IMAGES, "seneca": DATASETS / "seneca" / "images"}


def populate(storage: Storage, count: int) -> str:
    """Upload the real images once, then server-side copy them to ``count`` distinct keys; return the project."""
    flight = layout.new_id()
    seed_flight = layout.new_id()
    upload_folder(storage, SHARED_IMAGES, lambda p: layout.raw_key("bench", "seed", seed_flight, p.name), progress=False)
    seeds = [info.key for info in storage.list(layout.flights_prefix("bench", "seed"))]
    for i in range(count):
        source = seeds[i % len(seeds)]
        storage.copy(source, layout.raw_key("bench", "ingest", flight, f"IMG_{i:05d}.JPG"))
    return "ingest"


def naive(storage: Storage, project: str) -> tuple[float, int, int]:
    """Download every object whole and parse it; return seconds, bytes read, images parsed."""
    keys = [(info.key, info.size) for info in storage.list(layout.flights_prefix("bench", project))]
    start = time.perf_counter()
    total = parsed = 0
    for key, size in keys:
        data = storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()
        total += len(data)
        meta = read_metadata(key, size, lambda s, e, d=data: d[s:e])
        parsed += meta.lat is not None
    return time.perf_counter() - start, total, parsed


def workbench(storage: Storage, project: str, workers: int, pixels: bool) -> tuple[float, int, int]:
    """Run the workbench's ingest from scratch (cluster start not timed); return seconds, bytes read, images."""
    if storage.exists(manifest_key("bench", project)):
        storage.delete(manifest_key("bench", project))
    client = local_client(n_workers=workers, threads_per_worker=8)
    try:
        client.wait_for_workers(workers)
        start = time.perf_counter()
        result = ingest(storage, "bench", project, client=client, pixels=pixels, progress=False)
        seconds = time.perf_counter() - start
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    located = sum(row["lat"] is not None for row in result.rows)
    return seconds, result.bytes_read, located


def real_flights(storage: Storage, repeats: int = 3) -> dict[str, dict[str, object]]:
    """Each real flight ingested with the pixel checks (2 workers): median seconds, images/s, flags, footprints."""
    found: dict[str, dict[str, object]] = {}
    client = local_client(n_workers=2, threads_per_worker=4)
    try:
        client.wait_for_workers(2)
        for name, folder in REAL_FLIGHTS.items():
            if not folder.is_dir():
                continue
            flight = layout.new_id()
            upload_folder(storage, folder, lambda p, name=name: layout.raw_key("bench", name, flight, p.name), progress=False)
            times = []
            for _ in range(repeats):
                if storage.exists(manifest_key("bench", name)):
                    storage.delete(manifest_key("bench", name))
                start = time.perf_counter()
                result = ingest(storage, "bench", name, client=client, progress=False)
                times.append(time.perf_counter() - start)
            seconds = sorted(times)[len(times) // 2]
            found[name] = {"images": len(result.rows), "seconds": seconds, "images_per_s": len(result.rows) / seconds,
                           "flags": sorted({f for r in result.rows for f in r["flags"]}),
                           "footprints": sum(r["geometry"] is not None for r in result.rows),
                           "sharpness": [round(min(r["sharpness"] for r in result.rows), 3),
                                         round(max(r["sharpness"] for r in result.rows), 3)]}
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    return found


def run_all(storage: Storage, project: str) -> dict[str, tuple[float, int, int]]:
    """The four runs against one endpoint."""
    return {
        "naive (GET whole object, parse)": naive(storage, project),
        "workbench metadata, 1 worker": workbench(storage, project, 1, pixels=False),
        "workbench metadata, 2 workers": workbench(storage, project, 2, pixels=False),
        "workbench + pixel QA/thumbnails, 2 workers": workbench(storage, project, 2, pixels=True),
    }


def report(title: str, runs: dict[str, tuple[float, int, int]], images: int) -> None:
    """Print one table and the ratios."""
    print(f"\n{title}")
    print(f"{'run':<44}{'seconds':>9}{'img/s':>9}{'KiB read/img':>14}{'located':>9}")
    for name, (seconds, nbytes, located) in runs.items():
        print(f"{name:<44}{seconds:>9.2f}{images / seconds:>9.1f}{nbytes / images / 1024:>14.1f}{located:>9}")
    naive_s = runs["naive (GET whole object, parse)"][0]
    one, two = runs["workbench metadata, 1 worker"][0], runs["workbench metadata, 2 workers"][0]
    print(f"speed-up vs naive: {naive_s / one:.1f}x (1 worker), {naive_s / two:.1f}x (2 workers); "
          f"2 vs 1 workers: {one / two:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="emulated round trip (default 20 ms)")
    parser.add_argument("--mbps", type=float, default=50.0, help="emulated MB/s per connection (default 50)")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "ingest.json")
    args = parser.parse_args()
    if not SHARED_IMAGES.is_dir():
        sys.exit(f"the real DJI images are not available: {SHARED_IMAGES} is absent")
    results: dict[str, dict[str, tuple[float, int, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        server = LocalS3(data_dir=Path(scratch) / "s3")
        storage = Storage(server.start())
        try:
            project = populate(storage, args.images)
            print(f"{args.images} real DJI images (copies of {len(list(SHARED_IMAGES.glob('*.JPG')))}) in SeaweedFS; "
                  f"{os.cpu_count()} CPUs")
            flights = real_flights(storage)
            results["loopback"] = run_all(storage, project)
            with LinkEmulator(server.ports["s3"], rtt=args.rtt_ms / 1000, mbps=args.mbps) as port:
                linked = Storage(storage.settings.with_(endpoint=f"http://127.0.0.1:{port}"))
                results["link"] = run_all(linked, project)
        finally:
            server.stop()
    report("loopback: no network between client and SeaweedFS (a range read costs SeaweedFS a whole 4 MiB chunk)",
           results["loopback"], args.images)
    report(f"emulated link: {args.rtt_ms:g} ms round trip, {args.mbps:g} MB/s per connection (S3 from EC2 in-region)",
           results["link"], args.images)
    print("\nreal flights, pixel checks on, 2 workers, loopback (median of 3)")
    print(f"{'flight':<10}{'images':>7}{'seconds':>9}{'img/s':>8}{'footprints':>11}  sharpness range  flags")
    for name, facts in flights.items():
        print(f"{name:<10}{facts['images']:>7}{facts['seconds']:>9.2f}{facts['images_per_s']:>8.1f}{facts['footprints']:>11}  "
              f"{facts['sharpness'][0]:.3f}-{facts['sharpness'][1]:.3f}      {', '.join(facts['flags']) or 'none'}")  # type: ignore[index]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "real_flights": flights,
        "images": args.images, "cpus": os.cpu_count(), "rtt_ms": args.rtt_ms, "mbps": args.mbps,
        "runs": {scenario: {k: {"seconds": v[0], "bytes": v[1], "located": v[2]} for k, v in runs.items()}
                 for scenario, runs in results.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
