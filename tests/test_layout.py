"""Layout: key builders, parser, unsafe components, UUIDv7 time windows."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from workbench import layout
from workbench.errors import UnsafeKeyError
from workbench.storage import Storage

UTC = dt.timezone.utc
FLIGHT = layout.new_id(dt.datetime(2026, 5, 1, 8, 0, tzinfo=UTC))
RUN = layout.new_id(dt.datetime(2026, 5, 2, 8, 0, tzinfo=UTC))


def test_builders_and_parser_round_trip() -> None:
    raw = layout.raw_key("hot", "dar-es-salaam", FLIGHT, "DJI_0001.JPG")
    assert raw == f"projects/hot/dar-es-salaam/raw/{FLIGHT}/DJI_0001.JPG"
    parsed = layout.parse_key(raw)
    assert (parsed.kind, parsed.org, parsed.project, parsed.flight, parsed.name) == ("raw", "hot", "dar-es-salaam", FLIGHT, "DJI_0001.JPG")
    thumb = layout.thumbnail_key("hot", "p", FLIGHT, "DJI_0001.JPG")
    assert thumb.endswith(f"/thumbnails/{FLIGHT}/DJI_0001.webp") and layout.parse_key(thumb).kind == "thumbnail"
    product = layout.product_key("hot", "p", RUN, "ortho.tif")
    assert layout.parse_key(product).run == RUN
    tiles = layout.pmtiles_key("ortho", "hot", dt.date(2026, 5, 3), "p")
    assert tiles == "pmtiles/ortho/hot/p/2026-05-03.pmtiles"
    assert layout.parse_key(tiles).date == dt.date(2026, 5, 3)
    assert layout.parse_key(layout.pmtiles_key("coverage", "hot", dt.date(2026, 1, 1))).layer == "coverage"
    log = layout.log_key("hot", "p", dt.date(2026, 5, 3), "ingest.log")
    assert layout.parse_key(log).kind == "log"
    pq = layout.parquet_key("images", "hot", "p", "part-0.parquet")
    assert layout.parse_key(pq).dataset == "images"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("..", "relative"), (".", "relative"), ("a/b", "separator"), ("a\\b", "separator"), ("", "empty"),
        ("bad\x00name", "control"), ("tab\tname", "control"), (" lead", "leading or trailing"),
        ("trail ", "leading or trailing"), ("x" * 256, "bytes long"), ("semi;colon", "unsafe characters"),
        ("q?uery", "unsafe"), ("hash#", "unsafe"), (".hidden", "starts with a dot"), ("percent%2F", "unsafe"),
    ],
)
def test_unsafe_components_are_rejected(value: str, reason: str) -> None:
    with pytest.raises(UnsafeKeyError, match=reason):
        layout.raw_key("org", "project", FLIGHT, value)
    with pytest.raises(UnsafeKeyError):
        layout.project_prefix(value, "project")


def test_safe_names_with_spaces_and_unicode_pass() -> None:
    assert layout.raw_key("org", "project", FLIGHT, "Vuelo 3 (copia).JPG").endswith("Vuelo 3 (copia).JPG")
    assert layout.project_prefix("ünïcode-org", "Projet_été") == "projects/ünïcode-org/Projet_été/"


def test_whole_keys_are_checked() -> None:
    with pytest.raises(UnsafeKeyError, match="starts with '/'"):
        layout.check_key("/projects/a")
    with pytest.raises(UnsafeKeyError, match="1024"):
        layout.check_key("/".join(["a" * 200] * 6))
    with pytest.raises(UnsafeKeyError, match="empty"):
        layout.check_key("projects//a")
    with pytest.raises(UnsafeKeyError, match="not part of the workbench layout"):
        layout.parse_key("somewhere/else.txt")


def test_flight_and_run_ids_must_be_uuid7() -> None:
    with pytest.raises(UnsafeKeyError, match="UUIDv7"):
        layout.raw_key("o", "p", str(uuid.uuid4()), "a.jpg")
    with pytest.raises(UnsafeKeyError, match="UUIDv7"):
        layout.product_key("o", "p", "latest", "a.tif")


def test_uuid7_encodes_time_and_sorts_by_it() -> None:
    moments = [dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=7 * i) for i in range(50)]
    ids = [layout.new_id(m) for m in moments]
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert sorted(ids) == ids
    assert [layout.id_time(i) for i in ids] == moments
    low, high = layout.id_bounds(moments[10], moments[20])
    assert [i for i in ids if low <= i <= high] == ids[10:21]
    with pytest.raises(ValueError, match="timezone"):
        layout.new_id(dt.datetime(2026, 1, 1))


def test_a_seeded_uuid7_is_the_same_each_time_and_still_a_uuid7() -> None:
    moment = dt.datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    seeded = {seed: layout.new_id(moment, seed=seed) for seed in ("survey a", "survey b", "")}
    assert all(layout.new_id(moment, seed=seed) == value for seed, value in seeded.items())
    assert len(set(seeded.values())) == 3 and len({layout.new_id(moment) for _ in range(2)}) == 2
    assert all(layout.check_id(value) and layout.id_time(value) == moment for value in seeded.values())


def test_flights_between_lists_a_time_window(storage: Storage) -> None:
    base = dt.datetime(2026, 4, 1, tzinfo=UTC)
    flights = [layout.new_id(base + dt.timedelta(days=d)) for d in range(10)]
    for flight in flights:
        storage.put_bytes(layout.raw_key("org", "proj", flight, "a.jpg"), b"x")
    storage.put_bytes("projects/org/proj/raw/not-a-flight/a.jpg", b"x")
    window = layout.flights_between(storage, "org", "proj", base + dt.timedelta(days=3), base + dt.timedelta(days=6, hours=1))
    assert window == flights[3:7]
    assert layout.flights_between(storage, "org", "proj", base - dt.timedelta(days=30), base - dt.timedelta(days=1)) == []
    run = layout.new_id(base)
    storage.put_bytes(layout.product_key("org", "proj", run, "run.json"), b"{}")
    assert layout.runs_between(storage, "org", "proj", base, base + dt.timedelta(seconds=1)) == [run]
