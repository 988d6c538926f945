"""Optional OpenTelemetry spans: real spans when ``opentelemetry`` is installed, a no-op otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_trace: Any
try:  # optional dependency: the ``otel`` extra
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _trace = None

TRACER_NAME = "workbench"


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """Run the block inside a span called ``name``; attributes must hold no secrets."""
    if _trace is None:
        yield
        return
    tracer = _trace.get_tracer(TRACER_NAME)
    clean = {k: v for k, v in attributes.items() if v is not None}
    with tracer.start_as_current_span(name, attributes=clean):
        yield


def tracing_available() -> bool:
    """Whether spans are really emitted (``opentelemetry`` importable)."""
    return _trace is not None
