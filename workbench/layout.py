"""Every key the workbench writes: builders, a parser, validation, and time-ordered ids.

Layout (one bucket)::

    projects/{org}/{project}/raw/{flight}/{image}
    projects/{org}/{project}/thumbnails/{flight}/{image-stem}.webp
    projects/{org}/{project}/products/{run}/{name}
    projects/{org}/{project}/products/latest.json
    projects/{org}/{project}/products/{run}/derived/{name}.tif
    pmtiles/{layer}/{org}/[{part}/...]{YYYY-MM-DD}.pmtiles
    log/{org}/{project}/{YYYY-MM-DD}/{name}
    runs/{org}/{notebook}/{YYYY-MM-DD}/{run}.ipynb|.html|.json
    parquet/{dataset}/{org}/{project}/{name}

Flight and run ids are UUIDv7: their text sorts by creation time, so an S3 prefix listing of a
project's flights or runs is also a time window (see :func:`id_bounds` and :func:`list_ids_between`).
Components are validated before any request is made: no ``..``, no ``/``, no control characters,
nothing empty, over-long, or with leading/trailing spaces.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Protocol

from workbench.errors import UnsafeKeyError

LATEST_NAME = "latest.json"
PMTILES_LAYERS = ("ortho", "coverage", "derived")  # pmtiles/{layer}/...: every layer the workbench writes
PARQUET_DATASETS = ("images", "coverage")  # parquet/{dataset}/...
MAX_COMPONENT_BYTES = 255
MAX_KEY_BYTES = 1024
_EXTRA_SAFE = set(" ._-()+,=@")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def check_component(value: str, what: str = "key component") -> str:
    """Return ``value`` if it is safe as one path component of a key; raise :class:`UnsafeKeyError` if not."""
    if not isinstance(value, str):
        raise UnsafeKeyError(f"{what} must be text, got {type(value).__name__}")
    if value == "":
        raise UnsafeKeyError(f"{what} is empty")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):  # undecodable bytes of a file name (surrogate escapes)
        raise UnsafeKeyError(f"{what} {value!r} is not valid UTF-8 (a name written in another encoding?): rename it")
    if value in {".", ".."}:
        raise UnsafeKeyError(f"{what} {value!r} is a relative path reference")
    if "/" in value or "\\" in value:
        raise UnsafeKeyError(f"{what} {value!r} contains a path separator")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UnsafeKeyError(f"{what} {value!r} contains a control character")
    if value != value.strip():
        raise UnsafeKeyError(f"{what} {value!r} has leading or trailing spaces")
    if len(value.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise UnsafeKeyError(f"{what} is {len(value.encode())} bytes long: at most {MAX_COMPONENT_BYTES} allowed")
    bad = sorted({ch for ch in value if not (ch.isalnum() or ch in _EXTRA_SAFE)})
    if bad:
        raise UnsafeKeyError(f"{what} {value!r} contains unsafe characters: {''.join(bad)!r}")
    if value.startswith("."):
        raise UnsafeKeyError(f"{what} {value!r} starts with a dot")
    return value


def check_key(key: str) -> str:
    """Validate a whole key: safe components, no leading ``/``, at most 1024 bytes."""
    if not isinstance(key, str) or key == "":
        raise UnsafeKeyError("key is empty")
    if key.startswith("/"):
        raise UnsafeKeyError(f"key {key!r} starts with '/'")
    size = len(key.encode("utf-8", "surrogatepass"))  # undecodable names are refused by check_component below
    if size > MAX_KEY_BYTES:
        raise UnsafeKeyError(f"key is {size} bytes long: at most {MAX_KEY_BYTES} allowed")
    for part in key.split("/"):
        check_component(part, what=f"component of key {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Validate a listing prefix: empty, or a safe key optionally ending with ``/``."""
    if not isinstance(prefix, str):
        raise UnsafeKeyError(f"prefix must be text, got {type(prefix).__name__}")
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


# --- UUIDv7 ------------------------------------------------------------------------------------


def new_id(at: dt.datetime | None = None, seed: str | None = None) -> str:
    """Return a new UUIDv7 (RFC 9562) as text; ``at`` fixes its timestamp (default: now); ``seed`` fixes its
    random bits (the same ``at`` and ``seed`` give the same id: what is made again lands on the same keys)."""
    millis = _millis(at or dt.datetime.now(dt.timezone.utc))
    rand = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10] if seed is not None else os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a lower-case UUIDv7; raise :class:`UnsafeKeyError` otherwise."""
    if not isinstance(value, str) or not _UUID7_RE.match(value):
        raise UnsafeKeyError(f"{what} {value!r} is not a UUIDv7 (e.g. {new_id()})")
    return value


def id_time(value: str) -> dt.datetime:
    """Return the creation time (UTC, millisecond precision) encoded in a UUIDv7."""
    millis = uuid.UUID(check_id(value)).int >> 80
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.timezone.utc)


def id_bounds(start: dt.datetime, end: dt.datetime) -> tuple[str, str]:
    """Return the smallest and largest UUIDv7 text that can be created within ``[start, end]``."""
    lo, hi = _millis(start), _millis(end)
    if hi < lo:
        raise ValueError("end is before start")
    low = (lo << 80) | (0x7 << 76) | (0b10 << 62)
    high = (hi << 80) | (0x7 << 76) | (0xFFF << 64) | (0b10 << 62) | ((1 << 62) - 1)
    return str(uuid.UUID(int=low)), str(uuid.UUID(int=high))


def _millis(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return int(moment.timestamp() * 1000)


# --- key builders --------------------------------------------------------------------------------


def project_prefix(org: str, project: str) -> str:
    """``projects/{org}/{project}/``"""
    return f"projects/{check_component(org, 'org')}/{check_component(project, 'project')}/"


def flights_prefix(org: str, project: str) -> str:
    """``projects/{org}/{project}/raw/``: one sub-prefix per flight."""
    return project_prefix(org, project) + "raw/"


def raw_key(org: str, project: str, flight: str, image: str) -> str:
    """Key of one raw image of a flight."""
    return f"{flights_prefix(org, project)}{check_id(flight, 'flight')}/{check_component(image, 'image name')}"


def thumbnail_key(org: str, project: str, flight: str, image: str) -> str:
    """Key of the WebP thumbnail of a raw image."""
    stem = PurePosixPath(check_component(image, "image name")).stem
    return f"{project_prefix(org, project)}thumbnails/{check_id(flight, 'flight')}/{stem}.webp"


def runs_prefix(org: str, project: str) -> str:
    """``projects/{org}/{project}/products/``: one sub-prefix per processing run."""
    return project_prefix(org, project) + "products/"


def latest_key(org: str, project: str) -> str:
    """Key of the project's ``latest`` pointer: the last run whose products were published and verified."""
    return runs_prefix(org, project) + LATEST_NAME


def product_key(org: str, project: str, run: str, name: str) -> str:
    """Key of one product (``ortho.tif``, ``run.json``, ...) of a run."""
    return f"{runs_prefix(org, project)}{check_id(run, 'run')}/{check_component(name, 'product name')}"


def pmtiles_prefix(layer: str, org: str, *parts: str) -> str:
    """Folder of a PMTiles layer's generations: ``pmtiles/{layer}/{org}/[parts/]``."""
    if layer not in PMTILES_LAYERS:
        raise UnsafeKeyError(f"PMTiles layer {layer!r}: the layout has {', '.join(PMTILES_LAYERS)}")
    middle = "".join(f"{check_component(p, 'pmtiles path part')}/" for p in parts)
    return f"pmtiles/{layer}/{check_component(org, 'org')}/{middle}"


def pmtiles_key(layer: str, org: str, date: dt.date, *parts: str) -> str:
    """Key of one PMTiles generation: ``pmtiles/{layer}/{org}/[parts/]{YYYY-MM-DD}.pmtiles``."""
    return f"{pmtiles_prefix(layer, org, *parts)}{date.isoformat()}.pmtiles"


def log_key(org: str, project: str, day: dt.date, name: str) -> str:
    """Key of a log file (expired after 30 days by the lifecycle policy)."""
    return f"log/{check_component(org, 'org')}/{check_component(project, 'project')}/{day.isoformat()}/{check_component(name, 'log name')}"


def parquet_prefix(dataset: str, org: str) -> str:
    """Folder of an org's Parquet files of a dataset (e.g. ``images``), one sub-folder per project."""
    if dataset not in PARQUET_DATASETS:
        raise UnsafeKeyError(f"Parquet dataset {dataset!r}: the layout has {', '.join(PARQUET_DATASETS)}")
    return f"parquet/{dataset}/{check_component(org, 'org')}/"


def parquet_key(dataset: str, org: str, project: str, name: str) -> str:
    """Key of a Parquet file of a dataset (e.g. ``images``)."""
    return f"{parquet_prefix(dataset, org)}{check_component(project, 'project')}/{check_component(name, 'file name')}"


NOTEBOOK_RUN_SUFFIXES = (".ipynb", ".html", ".json")  # the executed notebook, its HTML, its ledger entry


def notebook_runs_prefix(org: str, notebook: str | None = None) -> str:
    """Folder of an org's scheduled notebook runs (``runs/{org}/[{notebook}/]``)."""
    return f"runs/{check_component(org, 'org')}/" + (f"{check_component(notebook, 'notebook')}/" if notebook else "")


def notebook_run_key(org: str, notebook: str, day: dt.date, run: str, suffix: str) -> str:
    """Key of one file of a notebook run: ``runs/{org}/{notebook}/{YYYY-MM-DD}/{run}{suffix}``."""
    if suffix not in NOTEBOOK_RUN_SUFFIXES:
        raise UnsafeKeyError(f"notebook run file suffix {suffix!r}: one of {', '.join(NOTEBOOK_RUN_SUFFIXES)}")
    return f"{notebook_runs_prefix(org, notebook)}{day.isoformat()}/{check_id(run, 'run')}{suffix}"


# --- parser ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParsedKey:
    """What a key means: its kind and the ownership/time components it encodes."""

    kind: str
    org: str | None = None
    project: str | None = None
    flight: str | None = None
    run: str | None = None
    name: str | None = None
    layer: str | None = None
    dataset: str | None = None
    date: dt.date | None = None


def parse_key(key: str) -> ParsedKey:
    """Parse a key written by this module; raise :class:`UnsafeKeyError` for anything else."""
    parts = check_key(key).split("/")
    head, n = parts[0], len(parts)
    if head == "projects" and n == 6 and parts[3] == "raw":
        return ParsedKey("raw", org=parts[1], project=parts[2], flight=check_id(parts[4], "flight"), name=parts[5])
    if head == "projects" and n == 6 and parts[3] == "thumbnails":
        return ParsedKey("thumbnail", org=parts[1], project=parts[2], flight=check_id(parts[4], "flight"), name=parts[5])
    if head == "projects" and n == 5 and parts[3] == "products" and parts[4] == LATEST_NAME:
        return ParsedKey("latest", org=parts[1], project=parts[2], name=parts[4])
    if head == "projects" and n == 6 and parts[3] == "products":
        return ParsedKey("product", org=parts[1], project=parts[2], run=check_id(parts[4], "run"), name=parts[5])
    if head == "projects" and n == 7 and parts[3] == "products" and parts[5] == "derived":
        return ParsedKey("derived", org=parts[1], project=parts[2], run=check_id(parts[4], "run"), name=parts[6])
    if head == "pmtiles" and n >= 4 and parts[-1].endswith(".pmtiles"):
        return ParsedKey("pmtiles", layer=parts[1], org=parts[2], date=_parse_date(parts[-1][: -len(".pmtiles")]), name=parts[-1])
    if head == "log" and n == 5:
        return ParsedKey("log", org=parts[1], project=parts[2], date=_parse_date(parts[3]), name=parts[4])
    if head == "parquet" and n == 5:
        return ParsedKey("parquet", dataset=parts[1], org=parts[2], project=parts[3], name=parts[4])
    if head == "runs" and n == 5 and parts[4].endswith(NOTEBOOK_RUN_SUFFIXES):
        run = check_id(parts[4].rsplit(".", 1)[0], "run")
        return ParsedKey("notebook-run", org=parts[1], name=parts[2], date=_parse_date(parts[3]), run=run)
    raise UnsafeKeyError(f"key {key!r} is not part of the workbench layout")


def _parse_date(text: str) -> dt.date:
    if not _DATE_RE.match(text):
        raise UnsafeKeyError(f"{text!r} is not a YYYY-MM-DD date")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UnsafeKeyError(f"{text!r} is not a valid date") from None


# --- time windows --------------------------------------------------------------------------------


class PrefixLister(Protocol):
    """Anything that lists the immediate sub-prefixes under a prefix, in key order, after a key."""

    def list_prefixes(self, prefix: str, start_after: str = "") -> Iterator[str]: ...


def list_ids_between(lister: PrefixLister, prefix: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    """List the UUIDv7 sub-prefixes of ``prefix`` created within ``[start, end]``.

    Uses ``StartAfter`` so the listing starts at the window and stops as soon as it passes it:
    the cost is proportional to the window, not to the project's history.
    """
    low, high = id_bounds(start, end)
    found: list[str] = []
    for sub in lister.list_prefixes(prefix, start_after=prefix + low[:-1]):
        ident = sub[len(prefix):].rstrip("/")
        if ident > high:
            break
        if _UUID7_RE.match(ident) and ident >= low:
            found.append(ident)
    return found


def flights_between(lister: PrefixLister, org: str, project: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    """The project's flight ids created within ``[start, end]``, oldest first."""
    return list_ids_between(lister, flights_prefix(org, project), start, end)


def runs_between(lister: PrefixLister, org: str, project: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    """The project's processing run ids created within ``[start, end]``, oldest first."""
    return list_ids_between(lister, runs_prefix(org, project), start, end)
