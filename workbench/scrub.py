"""Saved notebooks a person can read later: no secret in them, no megabytes of widget code.

:func:`scrub_notebook` runs on every notebook the workbench stores: every source and output text passes
through :func:`workbench.redact.redact` and has the known secret values (access keys, secret keys, tokens)
masked; AWS access key ids and presigned query strings are masked wherever they appear; widget state (the
JavaScript payload of maps and progress bars) is dropped; a widget output keeps its text only when the
cell displayed nothing else (the static previews shown in :func:`workbench.maps.static_mode` stand in).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from workbench.redact import redact

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
MASK = "***"


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL secrets redacted, the given secret values and AWS access key ids masked."""
    text = redact(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _ACCESS_KEY_ID.sub(MASK, text)


def _scrub_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, list):
        return [_scrub_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(v, secrets) for k, v in value.items()}
    return value


def scrub_notebook(notebook: dict[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """Scrub a notebook (nbformat JSON as a dict) in place and return it (see the module docstring)."""
    known = list(secrets)
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook.get("cells", []):
        cell["source"] = _scrub_value(cell.get("source", ""), known)
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if isinstance(data, dict):
                data.pop(WIDGET_STATE, None)
                if WIDGET_VIEW in data:
                    del data[WIDGET_VIEW]
                    if len(cell.get("outputs", [])) > 1:
                        continue  # a static preview of this widget is among the cell's outputs
            outputs.append(_scrub_value(output, known))
        if "outputs" in cell:
            cell["outputs"] = outputs
    return notebook
