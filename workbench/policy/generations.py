"""Keep the last N generations of dated files (``.../{YYYY-MM-DD}.pmtiles``) per folder; delete the rest.

S3 lifecycle rules count days, not generations, so this runs as a job (``workbench prune``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import defaultdict

from workbench.errors import PolicyError
from workbench.layout import check_prefix
from workbench.storage import Storage

_GENERATION = re.compile(r"^(\d{4}-\d{2}-\d{2})\.[A-Za-z0-9]+$")
DEFAULT_KEEP = 7
GENERATIONS_ROOT = "pmtiles/"


@dataclasses.dataclass(frozen=True)
class PruneResult:
    """What a prune kept, deleted (or would delete, on a dry run) and left alone."""

    kept: list[str]
    deleted: list[str]
    ignored: list[str]
    dry_run: bool

    def summary(self) -> str:
        """One line for people."""
        verb = "would delete" if self.dry_run else "deleted"
        return f"kept {len(self.kept)}, {verb} {len(self.deleted)}, left {len(self.ignored)} undated objects alone"


def _generation_date(name: str) -> dt.date | None:
    match = _GENERATION.match(name)
    if not match:
        return None
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        return None


def newest_generation(storage: Storage, prefix: str) -> str | None:
    """Key of the newest dated generation (``YYYY-MM-DD.<ext>``) directly in the folder ``prefix``, or None."""
    dated = [(date, info.key) for info in storage.list(check_prefix(prefix))
             if "/" not in info.key[len(prefix):] and (date := _generation_date(info.key[len(prefix):])) is not None]
    return max(dated)[1] if dated else None


def check_keep(keep: object) -> int:
    """How many generations to keep: a whole number, at least 1 (checked before anything is written)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise PolicyError(f"keep must be a whole number of at least 1 (got {keep!r}): pruning never deletes every generation")
    return keep


def prune_generations(storage: Storage, prefix: str = "pmtiles/", keep: int = DEFAULT_KEEP, dry_run: bool = False) -> PruneResult:
    """Keep the ``keep`` newest dated files in every folder under ``prefix``; delete older ones.

    Folders are ``pmtiles/{layer}/{org}/...``, so generations are counted per (org, layer).
    Objects whose name is not ``YYYY-MM-DD.<ext>`` are never deleted.
    """
    check_keep(keep)
    check_prefix(prefix)
    if not prefix.startswith(GENERATIONS_ROOT):
        raise PolicyError(f"pruning works on the dated generations under {GENERATIONS_ROOT} only, not {prefix!r}: "
                          "raw images, products and manifests are never pruned (the lifecycle rules expire logs)")
    folders: dict[str, list[tuple[dt.date, str]]] = defaultdict(list)
    ignored: list[str] = []
    for info in storage.list(prefix):
        folder, _, name = info.key.rpartition("/")
        date = _generation_date(name)
        if date is None:
            ignored.append(info.key)
        else:
            folders[folder].append((date, info.key))
    kept: list[str] = []
    doomed: list[str] = []
    for generations in folders.values():
        generations.sort(reverse=True)
        kept += [key for _, key in generations[:keep]]
        doomed += [key for _, key in generations[keep:]]
    if doomed and not dry_run:
        storage.delete(doomed)
    return PruneResult(kept=sorted(kept), deleted=sorted(doomed), ignored=ignored, dry_run=dry_run)
