"""What each local Dask worker process does as it starts (a distributed preload: ``preload=[__name__]``).

A terminal's Ctrl+C goes to every process of its foreground group, the Dask worker processes of a command
too: each printed a KeyboardInterrupt traceback under the command's one-line "interrupted". The workers
ignore it; the process that started them handles it and closes the cluster, which stops them.
"""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    """Ignore Ctrl+C (SIGINT) in this worker process: its parent decides."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
