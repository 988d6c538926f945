"""The price book: every price as data, with its unit, tiers, minimums, source and date.

The book shipped in the package (``pricebook.yaml``) holds the prices of ``../shared/reference/costs.md``
with their sources. A user's book (``workbench costs refresh`` writes one, default
``~/.local/share/workbench/pricebook.yaml``, or ``$WORKBENCH_PRICEBOOK``) is laid over it, entry by entry.
A price is a *leaf*: a mapping with a ``source`` (an id in ``sources``, each with a title, a URL and an
``as_of`` date) and a ``unit``. Prices older than a year warn (:class:`StalePriceWarning`) when loaded.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import os
import warnings
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import CostError

STALE_AFTER_DAYS = 365
PACKAGED = "pricebook.yaml"


class StalePriceWarning(UserWarning):
    """Some prices in the book are older than :data:`STALE_AFTER_DAYS`."""


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a price comes from."""

    id: str
    title: str
    url: str
    as_of: dt.date
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Price:
    """One entry of the book: its path (``aws/regions/us-east-1/s3/storage/STANDARD``), fields and source."""

    path: str
    fields: Mapping[str, Any]
    source: Source

    def __getitem__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise CostError(f"price {self.path} has no field {name!r}") from None

    def get(self, name: str, default: Any = None) -> Any:
        """A field, or ``default``."""
        return self.fields.get(name, default)

    @property
    def usd(self) -> float:
        """The single price (entries with ``tiers`` have none)."""
        return float(self["usd"])

    @property
    def tiers(self) -> list[tuple[float | None, float]]:
        """Marginal bands ``(up_to, price)``; the last band's ``up_to`` is ``None``; a flat price is one band."""
        if "tiers" not in self.fields:
            return [(None, self.usd)]
        return [(None if bound is None else float(bound), float(price)) for bound, price in self.fields["tiers"]]

    @property
    def as_of(self) -> dt.date:
        """The date the source gave the price."""
        return self.source.as_of


def default_user_book() -> Path:
    """Where ``costs refresh`` writes and :func:`load` reads the user's prices."""
    if os.environ.get("WORKBENCH_PRICEBOOK"):
        return Path(os.environ["WORKBENCH_PRICEBOOK"]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "workbench" / "pricebook.yaml"


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid onto ``base``: mappings merge key by key, a leaf price replaces the whole leaf."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and "source" not in value and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class PriceBook:
    """Prices by path, their sources, staleness and provenance."""

    def __init__(self, data: Mapping[str, Any], origin: str = "packaged") -> None:
        self.data = dict(data)
        self.origin = origin
        self.gb_bytes = int(self.data.get("gb_bytes", 2**30))
        self.sources = {sid: _source(sid, fields) for sid, fields in (self.data.get("sources") or {}).items()}
        self.prices = {price.path: price for price in self._walk(self.data, "")}
        if not self.prices:
            raise CostError(f"price book {origin} holds no prices")

    def _walk(self, node: Mapping[str, Any], path: str) -> Iterator[Price]:
        for key, value in node.items():
            if path == "" and key in ("sources", "version", "gb_bytes"):
                continue
            here = f"{path}/{key}" if path else str(key)
            if not isinstance(value, Mapping):
                raise CostError(f"price book {self.origin}: {here} is not a price (no source)")
            if "source" in value:
                if value["source"] not in self.sources:
                    raise CostError(f"price book {self.origin}: {here} cites unknown source {value['source']!r}")
                if "unit" not in value:
                    raise CostError(f"price book {self.origin}: {here} has no unit")
                yield Price(here, dict(value), self.sources[value["source"]])
            else:
                yield from self._walk(value, here)

    def __getitem__(self, path: str) -> Price:
        try:
            return self.prices[path]
        except KeyError:
            raise CostError(f"the price book has no {path}") from None

    def has(self, path: str) -> bool:
        """Whether the book holds the price at ``path``."""
        return path in self.prices

    def under(self, path: str) -> dict[str, Price]:
        """Prices under ``path``, by the rest of their path."""
        prefix = path.rstrip("/") + "/"
        return {p[len(prefix):]: price for p, price in self.prices.items() if p.startswith(prefix)}

    def aws(self, region: str, path: str) -> Price:
        """An AWS price of ``region`` (``s3/storage/STANDARD``): a clear error for a region the book lacks."""
        if not any(p.startswith(f"aws/regions/{region}/") for p in self.prices):
            known = sorted({p.split("/")[2] for p in self.prices if p.startswith("aws/regions/")})
            raise CostError(f"the price book has no AWS prices for region {region!r} (it has {', '.join(known)}); "
                            "add them with `workbench costs refresh --offer-file`")
        full = f"aws/regions/{region}/{path}"
        if full not in self.prices:
            raise CostError(f"the price book has no {path} price for {region}; "
                            "add it with `workbench costs refresh --offer-file`")
        return self.prices[full]

    def regions(self) -> list[str]:
        """AWS regions the book prices."""
        return sorted({p.split("/")[2] for p in self.prices if p.startswith("aws/regions/")})

    def stale(self, today: dt.date | None = None) -> list[Price]:
        """Prices whose source is older than a year."""
        today = today or dt.date.today()
        return [p for p in self.prices.values() if (today - p.as_of).days > STALE_AFTER_DAYS]

    @property
    def as_of(self) -> dt.date:
        """The oldest date of any price used (what a number computed from the book is at least as old as)."""
        return min(p.as_of for p in self.prices.values())

    def provenance(self) -> list[dict[str, Any]]:
        """One row per price: path, value, unit, source title, URL and date."""
        rows = []
        for price in self.prices.values():
            values = {k: v for k, v in price.fields.items() if k not in ("source", "unit", "note")}
            value = "; ".join(f"{k}={_short(v)}" for k, v in values.items())
            rows.append({"price": price.path, "value": value, "unit": price["unit"], "source": price.source.title,
                         "url": price.source.url, "as_of": price.as_of.isoformat()})
        return rows


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{'∞' if b is None else f'{b:g}'}:{p:g}" for b, p in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _source(sid: str, fields: Mapping[str, Any]) -> Source:
    try:
        as_of = fields["as_of"]
        date = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))
        return Source(sid, str(fields["title"]), str(fields.get("url", "")), date, str(fields.get("note", "")))
    except (KeyError, ValueError, TypeError) as exc:
        raise CostError(f"price book source {sid} needs a title and an as_of date (YYYY-MM-DD): {exc}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """A price book file as a mapping, with one-line errors."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CostError(f"cannot read price book {path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CostError(f"price book {path} is not valid UTF-8 YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise CostError(f"price book {path} is not a mapping")
    return data


def packaged_data() -> dict[str, Any]:
    """The book shipped with the workbench, as a mapping."""
    return yaml.safe_load(resources.files("workbench.costs").joinpath(PACKAGED).read_text(encoding="utf-8"))


def load(path: Path | str | None = None, *, user: bool = True, today: dt.date | None = None,
         warn: bool = True) -> PriceBook:
    """The packaged book, overlaid with ``path`` (or the user's book when it exists and ``user``).

    Warns once (:class:`StalePriceWarning`) when prices are older than a year.
    """
    data, origin = packaged_data(), "packaged"
    extra = Path(path) if path else (default_user_book() if user else None)
    if extra is not None and (path or extra.exists()):
        data, origin = merge(data, read_yaml(extra)), str(extra)
    book = PriceBook(data, origin)
    old = book.stale(today)
    if warn and old:
        oldest = min(old, key=lambda p: p.as_of)
        warnings.warn(f"{len(old)} of {len(book.prices)} prices are older than a year (oldest: {oldest.path}, "
                      f"{oldest.as_of}); check them before publishing numbers", StalePriceWarning, stacklevel=2)
    return book
