"""An index over a large ortho in the bucket: workbench.analysis (rioxarray + Dask) vs a rasterio windowed loop.

The tiles benchmark's RGBA COG (default 16000 x 16000 px at 5 cm, ``benchmarks/tiles.py``) is uploaded to a
fresh embedded S3 as a run's ``ortho.tif``. Then, each in its own process (wall time and peak memory measured
from outside), the mean VARI of the whole ortho is computed:

* workbench: ``open_product`` (presigned ``/vsicurl/``, chunks of 4 x 4 COG tiles) -> ``indices.vari`` ->
  ``.mean()``, on Dask's threaded scheduler with 2 workers (GDAL and numpy release the GIL; for an 8000 px
  ortho, a distributed LocalCluster of 2 worker processes took 5.2 s and of 2 in-process workers 3.8 s,
  against 2.1 s for the threaded scheduler);
* loop: ``rasterio.open`` of the same presigned URL and a loop over its 512 px blocks, the same formula.

Both must give the same mean. Bytes read are counted by ``netem.LinkEmulator`` in front of the S3, run twice:
``loopback`` (no delay, no pacing: the issue's setting; on a 2-CPU machine the S3 server, the proxy and the
computation share the CPUs, so the comparison is CPU-bound) and ``in-region`` (20 ms round trip, 50 MB/s per
connection: what a notebook on EC2 sees of S3 in its region, where the loop waits on each block in turn).
``python benchmarks/analysis.py [--size 16000]``; goal: at least 1.5x faster than the loop, under 1 GiB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure  # noqa: E402
from netem import LinkEmulator  # noqa: E402
from tiles import make_cog  # noqa: E402

ORG, PROJECT = "bench", "big"
# link name -> (round trip ms, MB/s per connection; None: unpaced) of the proxy in front of the embedded S3
LINKS: dict[str, tuple[float, float | None]] = {"loopback": (0.0, None), "in-region": (20.0, 50.0)}
LINK_NOTES = {"loopback": "the embedded S3 on 127.0.0.1, as the issue sets it",
              "in-region": "20 ms round trip, 50 MB/s per connection: S3 seen from EC2 in its region"}


def _vari_sums(r, g, b, alpha):  # type: ignore[no-untyped-def]
    import numpy as np

    r, g, b = (x.astype("float32") for x in (r, g, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (g - r) / (g + r - b)
    valid = (alpha > 0) & np.isfinite(value) & (value >= -1) & (value <= 1)
    return float(value[valid].sum(dtype="float64")), int(valid.sum())


def run_workbench(settings_file: Path, out: Path) -> None:
    import dask

    from workbench.analysis.indices import vari
    from workbench.analysis.products import open_product
    from workbench.config import load_settings
    from workbench.storage import Storage

    storage = Storage(load_settings(config_file=settings_file))
    with dask.config.set(scheduler="threads", num_workers=2):
        mean = float(vari(open_product(storage, ORG, PROJECT, "ortho")).mean().compute())
    out.write_text(json.dumps({"mean": mean}))


def run_loop(settings_file: Path, out: Path) -> None:
    import rasterio

    from workbench.analysis.products import GDAL_OPTIONS, product_key
    from workbench.config import load_settings
    from workbench.presign import Presigner
    from workbench.storage import Storage

    storage = Storage(load_settings(config_file=settings_file))
    key, _ = product_key(storage, ORG, PROJECT, "ortho")
    total, count = 0.0, 0
    with rasterio.Env(**GDAL_OPTIONS), rasterio.open("/vsicurl/" + Presigner(storage).get(key)) as src:
        for _, window in src.block_windows(1):
            r, g, b, alpha = src.read(window=window)
            s, n = _vari_sums(r, g, b, alpha)
            total, count = total + s, count + n
    out.write_text(json.dumps({"mean": total / count}))


def run_both(settings: Any, scratch: Path, rtt_ms: float, mbps: float | None) -> dict[str, dict[str, Any]]:
    """Both computations, each in its own process, through a byte-counting proxy with this link."""
    from urllib.parse import urlsplit

    import yaml

    results: dict[str, dict[str, Any]] = {}
    link = LinkEmulator(urlsplit(settings.endpoint).port, rtt=rtt_ms / 1000, mbps=mbps)
    with link as port:
        settings_file = scratch / "workbench.yaml"
        settings_file.write_text(yaml.safe_dump(settings.with_(endpoint=f"http://127.0.0.1:{port}")
                                                .to_yaml_dict(include_secrets=True)))
        for name in ("workbench", "loop"):
            out = scratch / f"{name}.json"
            before = link.received
            results[name] = measure([sys.executable, __file__, "--run", name, str(settings_file), str(out)])
            results[name]["bytes_read"] = link.received - before
            results[name]["mean"] = json.loads(out.read_text())["mean"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16000)
    parser.add_argument("--run", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        name, settings_file, out = args.run
        (run_workbench if name == "workbench" else run_loop)(Path(settings_file), Path(out))
        return
    from workbench import layout
    from workbench.engines.runs import RUN_RECORD
    from workbench.local import LocalS3
    from workbench.storage import Storage
    from workbench.transfer import upload_file

    with tempfile.TemporaryDirectory(prefix="workbench-bench-analysis-") as scratch:
        cog = make_cog(Path(scratch) / "ortho.tif", args.size, 0.05)
        server = LocalS3(data_dir=Path(scratch) / "s3")
        results = {}
        settings = server.start()
        try:
            storage = Storage(settings)
            run = layout.new_id()
            key = layout.product_key(ORG, PROJECT, run, "ortho.tif")
            uploaded = upload_file(storage, cog, key, existing=None)
            record = {"run": run, "org": ORG, "project": PROJECT, "engine": "bench", "status": "completed",
                      "products": [{"name": "ortho.tif", "key": key, "size": uploaded.size, "etag": uploaded.etag}]}
            storage.put_bytes(layout.product_key(ORG, PROJECT, run, RUN_RECORD), json.dumps(record).encode())
            storage.put_bytes(layout.latest_key(ORG, PROJECT), json.dumps({"run": run}).encode())
            for link, (rtt_ms, mbps) in LINKS.items():
                results[link] = run_both(settings, Path(scratch), rtt_ms, mbps)
            size = cog.stat().st_size
        finally:
            server.stop()
    speedups = {}
    for link, pair in results.items():
        print(f"{link} ({LINK_NOTES[link]}):")
        for name, result in pair.items():
            print(f"  {name:>9}: {result['wall_s']:6.1f} s wall, {result['cpu_s']:6.1f} s CPU, peak {result['peak_mib']:6.0f} MiB, "
                  f"read {result['bytes_read'] / 2**20:6.0f} MiB of {size / 2**20:.0f} MiB, mean VARI {result['mean']:.5f}")
        speedups[link] = pair["loop"]["wall_s"] / pair["workbench"]["wall_s"]
        print(f"  speed-up {speedups[link]:.2f}x (goal >= 1.5x), workbench peak {pair['workbench']['peak_mib']:.0f} MiB (goal < 1024)")
    same = all(abs(pair["loop"]["mean"] - pair["workbench"]["mean"]) < 1e-4 for pair in results.values())
    print(f"same mean: {same}; CPUs: {os.cpu_count()} (the embedded S3 shares them)")
    Path(__file__).with_name("results").mkdir(exist_ok=True)
    Path(__file__).with_name("results").joinpath("analysis.json").write_text(json.dumps(
        {"size": args.size, "cog_bytes": size, "cpus": os.cpu_count(), "links": LINKS, "results": results,
         "speedup": speedups, "same_mean": same}, indent=2))
    if not same:
        raise SystemExit("the two computations disagree")


if __name__ == "__main__":
    main()
