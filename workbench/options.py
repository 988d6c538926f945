"""Values users give (engines, CLI, presign, policies): parsed strictly, bounded, refused in one line.

YAML and the command line hand over ``True``, ``"2.5"``, ``1e-9``, ``.nan`` or ``.inf`` as easily as a
number; none of these may slip through as 1, 2, a division by zero or an array too big to allocate. Text
that ends up in an HTTP header or a policy must not carry a CR/LF that would add a header of its own.
"""

from __future__ import annotations

import math

from workbench.errors import WorkbenchError


def check_header_text(value: str, what: str, limit: int = 1024) -> str:
    """Text that becomes an HTTP header or a policy field: printable, one line, bounded (no CR/LF injection)."""
    if not isinstance(value, str):
        raise WorkbenchError(f"{what} must be text, got {type(value).__name__}")
    bad = sorted({f"{ord(c):#04x}" for c in value if ord(c) < 32 or ord(c) == 127})
    if bad:
        raise WorkbenchError(f"{what} {value!r} contains control characters ({', '.join(bad)}): they would forge headers")
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise WorkbenchError(f"{what} is longer than {limit} bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise WorkbenchError(f"{what} {value!r} is not valid Unicode text") from None
    return value


def parse_number(value: object, kind: type, what: str) -> int | float:
    """``value`` as an ``int`` or ``float`` (``kind``): no yes/no values, no fractions for whole numbers, finite."""
    if isinstance(value, bool):
        raise WorkbenchError(f"{what} must be a number, got {value!r} (a yes/no value)")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise WorkbenchError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise WorkbenchError(f"{what} must be a finite number, got {value!r}")
    if kind is int:
        if number != int(number):
            raise WorkbenchError(f"{what} must be a whole number, got {value!r}")
        return int(number)
    return number


def bounded(value: object, kind: type, low: float, high: float, what: str, unit: str = "") -> int | float:
    """:func:`parse_number`, then within ``[low, high]``."""
    number = parse_number(value, kind, what)
    if not low <= number <= high:
        suffix = f" {unit}" if unit else ""
        raise WorkbenchError(f"{what} must be between {low:g} and {high:g}{suffix}, got {value!r}")
    return number
