"""Processing: the quicklook engine's speed and memory, and the odm engine's upload memory.

* quicklook on the synthetic survey (18 images, 1200 x 800) and on the 18 real DJI images
  (4000 x 2250) from ``../shared``: seconds per image and peak memory (this process plus its Dask
  workers, sampled every 50 ms), with 1 and 2 Dask workers;
* odm against the NodeODM stand-in of the tests, for projects of 50 and 200 images (copies of the real
  images): the most image bytes held in memory at once while uploading, which must not grow with the
  project.

``python benchmarks/process.py``
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.nodeodm_fake import FakeNodeODM  # noqa: E402
from workbench import layout  # noqa: E402
from workbench.cluster import local_client  # noqa: E402
from workbench.engines.odm import OdmEngine  # noqa: E402
from workbench.engines.quicklook import QuicklookEngine  # noqa: E402
from workbench.engines.runs import run_engine  # noqa: E402
from workbench.imagery.ingest import ingest  # noqa: E402
from workbench.local import LocalS3  # noqa: E402
from workbench.storage import Storage  # noqa: E402
from workbench.synthetic import Survey, write_survey  # noqa: E402
from workbench.transfer import upload_folder  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
REAL_IMAGES = SHARED / "brighton_beach" / "images"
NODE_OUTPUTS = SHARED / "odm_samples" / "nodeodm_outputs"
MiB = 1024 * 1024


class PeakMemory:
    """Samples the resident memory of this process and its children (the Dask workers)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def prepare(storage: Storage, project: str, folder: Path) -> int:
    """Upload a folder as one flight and ingest it (metadata only); return the number of images."""
    flight = layout.new_id()
    upload_folder(storage, folder, lambda p: layout.raw_key("bench", project, flight, p.name), progress=False)
    return len(ingest(storage, "bench", project, pixels=False, workers=1, progress=False).rows)


def quicklook(storage: Storage, project: str, workers: int) -> tuple[float, int]:
    """Seconds and peak memory of one quicklook run (cluster start not timed; a new run each time)."""
    client = local_client(n_workers=workers, threads_per_worker=2)
    try:
        client.wait_for_workers(workers)
        with PeakMemory() as memory:
            start = time.perf_counter()
            run_engine(storage, "bench", project, QuicklookEngine(), client=client, progress=False, force=True)
            seconds = time.perf_counter() - start
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    return seconds, memory.peak


def odm_upload_peak(storage: Storage, images: int) -> tuple[int, int, int]:
    """Peak image bytes in memory while uploading ``images`` copies; also the project size and largest image."""
    project = f"odm-{images}"
    seeds = sorted(REAL_IMAGES.glob("*.JPG"))
    flight = layout.new_id()
    for i in range(images):
        storage.put_bytes(layout.raw_key("bench", project, flight, f"IMG_{i:05d}.JPG"), seeds[i % len(seeds)].read_bytes())
    ingest(storage, "bench", project, pixels=False, workers=1, progress=False)
    with FakeNodeODM(NODE_OUTPUTS, polls_to_finish=1) as url:
        engine = OdmEngine(url, poll_seconds=0.05, parallel_uploads=4)
        run_engine(storage, "bench", project, engine, progress=False)
    sizes = [info.size for info in storage.list(layout.flights_prefix("bench", project))]
    return engine.peak_upload_bytes, sum(sizes), max(sizes)


def main() -> None:
    if not REAL_IMAGES.is_dir() or not NODE_OUTPUTS.is_dir():
        sys.exit(f"the shared datasets are not available under {SHARED}")
    with tempfile.TemporaryDirectory(prefix="bench-process-") as scratch:
        server = LocalS3(data_dir=Path(scratch) / "s3")
        storage = Storage(server.start())
        try:
            write_survey(Path(scratch) / "synthetic", Survey())
            counts = {"synthetic": prepare(storage, "synthetic", Path(scratch) / "synthetic"),
                      "brighton": prepare(storage, "brighton", REAL_IMAGES)}
            print(f"quicklook, {os.cpu_count()} CPUs (seconds exclude cluster start; memory = this process + workers)")
            print(f"{'survey':<12}{'workers':>8}{'seconds':>9}{'s/image':>9}{'peak MiB':>10}")
            timings = {}
            for project, count in counts.items():
                for workers in (1, 2):
                    seconds, peak = quicklook(storage, project, workers)
                    timings[(project, workers)] = seconds
                    print(f"{project:<12}{workers:>8}{seconds:>9.2f}{seconds / count:>9.3f}{peak / MiB:>10.0f}")
            for project in counts:
                print(f"{project}: 2 vs 1 workers {timings[(project, 1)] / timings[(project, 2)]:.2f}x")
            print("\nodm engine upload (4 parallel uploads): image bytes held in memory at once")
            print(f"{'images':>7}{'project MiB':>13}{'largest MiB':>13}{'peak MiB':>10}")
            for images in (50, 200):
                peak, total, largest = odm_upload_peak(storage, images)
                print(f"{images:>7}{total / MiB:>13.1f}{largest / MiB:>13.2f}{peak / MiB:>10.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
