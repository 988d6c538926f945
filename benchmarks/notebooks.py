"""The four notebooks in a real JupyterLab, as a trainer runs them on Binder: memory and time to a painted map.

JupyterLab (under a base URL, opened at 127.0.0.1 in Debian's chromium, offline) runs notebooks 01-04 one
after the other with Run All, leaving every kernel open. Measured:

* peak memory of JupyterLab's whole process tree (the server, the four kernels, the embedded S3 and
  anything they start; not the browser), as the sum of proportional set sizes (PSS: shared pages are
  counted once), sampled every 0.25 s; RSS summed too, for reference;
* seconds from Run All to the map painted, for notebook 02 (the QA map) and 04 (the orthophoto map).

Goals (issue 10): under 1.2 GiB for all four (Binder gives 2 GB), first map under 30 s on 2 cores.
``python benchmarks/notebooks.py`` (needs Debian's chromium and playwright).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.jupyterlab import JupyterLab, browser, copy_notebooks, map_pictures, painted, run_all  # noqa: E402

GOAL_BYTES = 1.2 * 2**30
GOAL_FIRST_MAP_S = 30.0


class TreeMemory:
    """Samples the memory of a process and all its descendants in a thread; keeps the peaks."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_pss = self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pss = rss = 0
            try:
                family = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for process in family:
                try:
                    info = process.memory_full_info()
                    pss += info.pss
                    rss += info.rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    results: dict[str, object] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-notebooks-") as scratch:
        root = copy_notebooks(ROOT / "notebooks", Path(scratch) / "notebooks")
        with JupyterLab(root, Path(scratch) / "lab") as lab, browser(offline=True) as (page, refused):
            assert lab.process is not None
            timings: dict[str, dict[str, float]] = {}
            with TreeMemory(lab.process.pid) as memory:
                for notebook in sorted(p.name for p in root.glob("*.ipynb")):
                    started = time.perf_counter()
                    errors = run_all(page, lab, notebook)
                    ran = time.perf_counter() - started
                    shots = map_pictures(page, Path(scratch), Path(notebook).stem)
                    timings[notebook] = {"run_all_s": round(ran, 1)}
                    if shots:
                        timings[notebook]["map_painted_s"] = round(time.perf_counter() - started, 1)
                        timings[notebook]["painted_share"] = round(painted(shots[0]), 3)
                    if errors:
                        timings[notebook]["errors"] = errors  # type: ignore[assignment]
                    print(f"{notebook:<32} {timings[notebook]}", flush=True)
            results.update(notebooks=timings, peak_pss_mib=round(memory.peak_pss / 2**20), peak_rss_mib=round(memory.peak_rss / 2**20),
                           offline_requests_refused=len(refused))
    first_map = min(t["map_painted_s"] for t in timings.values() if "map_painted_s" in t)
    print(f"\npeak memory of JupyterLab's process tree (4 kernels open): {results['peak_pss_mib']} MiB PSS "
          f"({results['peak_rss_mib']} MiB RSS summed); goal < {GOAL_BYTES / 2**20:.0f} MiB: "
          f"{'met' if results['peak_pss_mib'] * 2**20 < GOAL_BYTES else 'NOT met'}")  # type: ignore[operator]
    print(f"first map painted {first_map:.1f} s after Run All; goal < {GOAL_FIRST_MAP_S:.0f} s: "
          f"{'met' if first_map < GOAL_FIRST_MAP_S else 'NOT met'}")
    out = ROOT / "benchmarks" / "results" / "notebooks.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
