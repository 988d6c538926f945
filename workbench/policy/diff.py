"""Differences between the rules we want and the rules a bucket has, keyed by rule id."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Any

import botocore.exceptions

from workbench.storage import Storage

MANAGED_PREFIX = "workbench-"


@dataclasses.dataclass(frozen=True)
class RuleDiff:
    """Rules to add, remove and change to make the live bucket match the desired rules."""

    what: str
    added: dict[str, dict[str, Any]]
    removed: dict[str, dict[str, Any]]
    changed: dict[str, tuple[dict[str, Any], dict[str, Any]]]

    @property
    def empty(self) -> bool:
        """True when the bucket already matches."""
        return not (self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        """Human-readable lines: ``+ id {...}``, ``- id {...}``, ``~ id live -> desired``."""
        out = [f"+ {rid} {_compact(rule)}" for rid, rule in sorted(self.added.items())]
        out += [f"- {rid} {_compact(rule)}" for rid, rule in sorted(self.removed.items())]
        out += [f"~ {rid} {_compact(old)} -> {_compact(new)}" for rid, (old, new) in sorted(self.changed.items())]
        return out

    def __str__(self) -> str:
        if self.empty:
            return f"{self.what}: the bucket matches"
        return "\n".join([f"{self.what}: {len(self.added)} to add, {len(self.removed)} to remove, {len(self.changed)} to change", *self.lines()])


def _compact(rule: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in rule.items() if k != "ID"}, sort_keys=True, separators=(",", ":"))


def diff_rules(what: str, desired: Iterable[dict[str, Any]], live: Iterable[dict[str, Any]]) -> RuleDiff:
    """Compare two rule lists (already normalised) by their ``ID``."""
    want = {rule["ID"]: rule for rule in desired}
    have = {rule.get("ID", f"(unnamed {i})"): rule for i, rule in enumerate(live)}
    return RuleDiff(
        what=what,
        added={rid: rule for rid, rule in want.items() if rid not in have},
        removed={rid: rule for rid, rule in have.items() if rid not in want},
        changed={rid: (have[rid], rule) for rid, rule in want.items() if rid in have and have[rid] != rule},
    )


def is_managed(rule: dict[str, Any]) -> bool:
    """Whether a rule belongs to the workbench (its id starts with ``workbench-``)."""
    return str(rule.get("ID", "")).startswith(MANAGED_PREFIX)


def read_live_rules(
    storage: Storage, what: str, fetch: Callable[..., dict[str, Any]], absent_code: str, field: str,
    normalise: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """Read a bucket configuration's rules with ``fetch``; a missing configuration (``absent_code``) is no rules."""
    with storage.errors(f"read {what} configuration"):
        try:
            response = fetch(Bucket=storage.bucket)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == absent_code:
                return []
            raise
    return [normalise(rule) for rule in response.get(field, [])]
