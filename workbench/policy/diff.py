"""Differences between the rules we want and the rules a bucket has, keyed by rule id."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable


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
