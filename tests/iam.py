"""A small evaluator of IAM policy documents, following AWS's documented rules, for testing the org policies.

Documented rules used (IAM User Guide, "Policy evaluation logic" and "IAM JSON policy elements"):
an explicit Deny wins, then any Allow, else the request is denied; ``Action`` and ``Resource`` match
case-insensitively for actions and case-sensitively for ARNs, with ``*`` matching any run of characters
(``/`` included) and ``?`` any one character; a statement applies only when every condition operator in it
holds, and a condition key absent from the request makes ``StringLike``/``StringEquals`` false.
"""

from __future__ import annotations

import re
from typing import Any


def _pattern(glob: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile("^" + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob) + "$", flags)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            if key not in context:
                return False
            value = context[key]
            if operator == "StringLike":
                if not any(_pattern(w).match(value) for w in _as_list(wanted)):
                    return False
            elif operator == "StringEquals":
                if value not in _as_list(wanted):
                    return False
            else:
                raise NotImplementedError(operator)
    return True


def allowed(document: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """Whether ``document`` allows ``action`` on ``resource`` (an ARN) with the request ``context`` keys."""
    context = context or {}
    decision = False
    for statement in document["Statement"]:
        if not any(_pattern(a, re.IGNORECASE).match(action) for a in _as_list(statement["Action"])):
            continue
        if not any(_pattern(r).match(resource) for r in _as_list(statement["Resource"])):
            continue
        if not _condition_holds(statement.get("Condition", {}), context):
            continue
        if statement["Effect"] == "Deny":
            return False
        decision = True
    return decision
