"""Upload throughput: the workbench vs ``rclone copy`` vs a plain boto3 ``upload_file`` loop.

All three upload the same files (default 200 x 10 MB of random bytes) to their own fresh bucket on the
same embedded S3 (SeaweedFS on 127.0.0.1), in one run. The workbench and rclone get the same
concurrency; the boto3 loop is what most scripts do (one file after another, boto3's default transfer
settings). Prints MB/s, requests per file where they can be counted, and the ratios.

    python benchmarks/upload.py [--files 200] [--size-mb 10] [--workers 16]

Needs ``pip install -e '.[local]'`` and ``rclone`` (``apt-get install rclone``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from botocore.config import Config

from workbench.config import Settings
from workbench.local import LocalS3
from workbench.storage import Storage
from workbench.transfer import upload_files

MB = 1000 * 1000


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` files of ``size`` random (incompressible) bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    block = os.urandom(size)
    paths = []
    for i in range(count):
        path = folder / f"IMG_{i:05d}.JPG"
        # distinct content per file, cheaply: rotate the block
        shift = (i * 7919) % size
        path.write_bytes(block[shift:] + block[:shift])
        paths.append(path)
    return paths


def fresh_bucket(settings: Settings, name: str) -> Storage:
    """A new bucket with one object written, so volume allocation is not timed."""
    storage = Storage(settings.with_(bucket=f"{name}-{time.time_ns() % 10**9}"))
    storage.ensure_bucket()
    storage.put_bytes("warmup/x.bin", os.urandom(1024))
    return storage


def verify(storage: Storage, prefix: str, count: int, size: int) -> None:
    objects = list(storage.list(prefix))
    if len(objects) != count or any(o.size != size for o in objects):
        raise SystemExit(f"{storage.bucket}: expected {count} objects of {size} bytes, found {len(objects)}")


def drop(storage: Storage) -> None:
    """Delete what a run wrote, so later runs do not pay for a fuller disk."""
    storage.delete([o.key for o in storage.list("")])


def count_requests(client) -> Callable[[], int]:
    sent = {"n": 0}

    def hook(**_):
        sent["n"] += 1

    client.meta.events.register("before-send.s3", hook)
    return lambda: sent["n"]


def run_workbench(settings: Settings, files: list[Path], workers: int) -> tuple[float, int]:
    storage = fresh_bucket(settings, "bench-wb")
    requests = count_requests(storage.client)
    before = requests()
    start = time.perf_counter()
    report = upload_files(storage, [(p, f"projects/bench/up/raw/{p.name}") for p in files], workers=workers, progress=False)
    seconds = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"workbench upload failed: {report.failed[0]}")
    verify(storage, "projects/bench/up/raw/", len(files), files[0].stat().st_size)
    drop(storage)
    return seconds, requests() - before


def run_rclone(settings: Settings, folder: Path, count: int, size: int, workers: int) -> float:
    storage = fresh_bucket(settings, "bench-rclone")
    # rclone 1.60 cannot combine AWS_CA_BUNDLE with its own transport; the endpoint is plain HTTP anyway
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update({
        "RCLONE_CONFIG_BENCH_TYPE": "s3", "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": settings.endpoint or "", "RCLONE_CONFIG_BENCH_REGION": settings.region,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": settings.access_key or "",
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": settings.secret_key.reveal() if settings.secret_key else "",
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
    })
    start = time.perf_counter()
    subprocess.run(["rclone", "copy", str(folder), f"bench:{storage.bucket}/projects/bench/up/raw",
                    f"--transfers={workers}", f"--checkers={workers}", "--quiet"], env=env, check=True)
    seconds = time.perf_counter() - start
    verify(storage, "projects/bench/up/raw/", count, size)
    drop(storage)
    return seconds


def run_boto3_loop(settings: Settings, files: list[Path]) -> tuple[float, int]:
    storage = fresh_bucket(settings, "bench-boto3")
    client = boto3.client(
        "s3", endpoint_url=settings.endpoint, region_name=settings.region, aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key.reveal() if settings.secret_key else None,
        config=Config(s3={"addressing_style": "path"}),
    )
    requests = count_requests(client)
    start = time.perf_counter()
    for path in files:
        client.upload_file(str(path), storage.bucket, f"projects/bench/up/raw/{path.name}")
    seconds = time.perf_counter() - start
    verify(storage, "projects/bench/up/raw/", len(files), files[0].stat().st_size)
    drop(storage)
    return seconds, requests()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-mb", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=8, help="concurrency for the workbench and rclone (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, tool order rotated each round; medians reported")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "upload.json")
    args = parser.parse_args()
    if not shutil.which("rclone"):
        sys.exit("rclone is not installed: apt-get install rclone")
    size = int(args.size_mb * MB)
    total_mb = args.files * size / MB
    seconds: dict[str, list[float]] = {"workbench": [], "rclone copy": [], "boto3 upload_file loop": []}
    requests: dict[str, int | None] = {"workbench": None, "rclone copy": None, "boto3 upload_file loop": None}
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as scratch:
        files = make_files(Path(scratch) / "files", args.files, size)
        server = LocalS3(data_dir=Path(scratch) / "s3")
        settings = server.start()

        def workbench() -> None:
            elapsed, requests["workbench"] = run_workbench(settings, files, args.workers)
            seconds["workbench"].append(elapsed)

        def rclone() -> None:
            seconds["rclone copy"].append(run_rclone(settings, files[0].parent, args.files, size, args.workers))

        def boto3_loop() -> None:
            elapsed, requests["boto3 upload_file loop"] = run_boto3_loop(settings, files)
            seconds["boto3 upload_file loop"].append(elapsed)

        tools = [workbench, rclone, boto3_loop]
        try:
            print(f"{args.files} files x {args.size_mb:g} MB = {total_mb:.0f} MB to SeaweedFS on {settings.endpoint}; "
                  f"{os.cpu_count()} CPUs; concurrency {args.workers}; {args.rounds} rounds")
            for round_number in range(args.rounds):
                order = tools[round_number % 3:] + tools[:round_number % 3]
                for tool in order:
                    tool()
        finally:
            server.stop()
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{'tool':<24}{'median s':>10}{'MB/s':>9}{'requests/file':>15}   all runs (s)")
    for name, median in medians.items():
        count = requests[name]
        per_file = f"{count / args.files:.2f}" if count is not None else "n/a"
        runs = ", ".join(f"{v:.2f}" for v in seconds[name])
        print(f"{name:<24}{median:>10.2f}{total_mb / median:>9.1f}{per_file:>15}   {runs}")
    print(f"workbench / rclone throughput: {medians['rclone copy'] / medians['workbench']:.2f}x")
    print(f"workbench / boto3 loop throughput: {medians['boto3 upload_file loop'] / medians['workbench']:.2f}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "files": args.files, "size_bytes": size, "workers": args.workers, "cpus": os.cpu_count(),
        "seconds": seconds, "requests": requests,
    }, indent=2))


if __name__ == "__main__":
    main()
