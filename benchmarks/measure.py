"""Measure a command from outside: wall time, CPU seconds of its whole process tree, peak tree memory."""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from typing import Any

import psutil


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command`` (with ``env`` if given); return wall seconds, CPU seconds of the whole process tree, and
    peak tree RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.wait(0.05):
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {stderr[-1000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_mib": peak / 2**20}
