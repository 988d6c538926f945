"""pycolmap, imported so that SIGTERM still just ends the process.

pycolmap installs glog's crash handler when it is imported; that handler also catches SIGTERM, the
ordinary "please stop" that Dask sends its worker processes and Jupyter its kernels, and prints a
stack trace headed ``*** Aborted at ...`` under the user's ``workbench: interrupted``. :func:`load_pycolmap`
imports it and puts SIGTERM's previous handling back (from any thread: the C-level ``sigaction`` is
saved and restored as it was, Python's own handler included); glog keeps its reports of real crashes.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from types import ModuleType

_SIGACTION_BYTES = 512  # larger than any platform's struct sigaction (152 bytes on Linux x86-64)
_lock = threading.Lock()


def load_pycolmap() -> ModuleType:
    """The pycolmap module, first imported with SIGTERM's handling kept as it was (see the module docstring)."""
    with _lock:
        if "pycolmap" in sys.modules:
            return sys.modules["pycolmap"]
        libc = ctypes.CDLL(None, use_errno=True)
        before = ctypes.create_string_buffer(_SIGACTION_BYTES)
        saved = libc.sigaction(signal.SIGTERM, None, before) == 0
        import pycolmap

        if saved:
            libc.sigaction(signal.SIGTERM, before, None)
        return pycolmap
