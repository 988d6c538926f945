"""Progress bars that read well live and later: widgets in a live notebook, final states in a saved one.

``workbench run`` sets ``WORKBENCH_STATIC_OUTPUT=1`` for the kernel (:func:`static_mode`): bars are then
plain text written when they finish (a saved notebook shows "100% 18/18", not a widget frozen at 0%),
and maps display a static preview image instead of a widget (:func:`workbench.maps.notebook_map`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

STATIC_ENV = "WORKBENCH_STATIC_OUTPUT"


def static_mode() -> bool:
    """Whether outputs are saved for reading later (a scheduled ``workbench run``) rather than watched live."""
    return os.environ.get(STATIC_ENV, "") not in ("", "0", "false", "no")


def bar(**options: Any) -> Any:
    """A tqdm bar: ``tqdm.auto`` when watched live; in :func:`static_mode`, text that shows its final state."""
    if static_mode():
        from tqdm.std import tqdm

        return tqdm(file=sys.stdout, mininterval=3600, maxinterval=3600, ascii=True, **options)
    from tqdm.auto import tqdm as auto

    return auto(**options)
