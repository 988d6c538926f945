"""The image manifest: one row per image, written as GeoParquet (WKB footprints, CRS recorded).

Readable with pyarrow, geopandas (``geopandas.read_parquet``) and DuckDB. Coverage (one row per
flight) is written the same way.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyproj import CRS

from workbench.errors import NotFoundError
from workbench.storage import Storage

GEOPARQUET_VERSION = "1.1.0"

IMAGE_SCHEMA = pa.schema([
    ("key", pa.string()), ("flight", pa.string()), ("name", pa.string()), ("size", pa.int64()), ("etag", pa.string()),
    ("make", pa.string()), ("model", pa.string()), ("captured_at", pa.timestamp("s")),
    ("lat", pa.float64()), ("lon", pa.float64()), ("altitude", pa.float64()), ("relative_altitude", pa.float64()),
    ("gimbal_pitch", pa.float64()), ("gimbal_yaw", pa.float64()), ("gimbal_roll", pa.float64()),
    ("flight_yaw", pa.float64()), ("flight_pitch", pa.float64()), ("flight_roll", pa.float64()),
    ("focal_length_mm", pa.float64()), ("focal_35mm", pa.float64()), ("width", pa.int64()), ("height", pa.int64()),
    ("sensor_width_mm", pa.float64()), ("horizontal_fov", pa.float64()), ("height_source", pa.string()),
    ("yaw_source", pa.string()), ("sensor_source", pa.string()), ("track_yaw", pa.float64()),
    ("bytes_read", pa.int64()), ("error", pa.string()), ("reader_version", pa.int64()),
    ("sharpness", pa.float64()), ("textured_cells", pa.int64()), ("brightness", pa.float64()),
    ("dark_fraction", pa.float64()), ("bright_fraction", pa.float64()), ("thumbnail_key", pa.string()),
    ("flags", pa.list_(pa.string())), ("reasons", pa.list_(pa.string())), ("usable", pa.bool_()),
    ("footprint_missing", pa.string()), ("geometry", pa.binary()),
])

COVERAGE_SCHEMA = pa.schema([
    ("flight", pa.string()), ("images", pa.int64()), ("usable_images", pa.int64()), ("first_capture", pa.timestamp("s")),
    ("last_capture", pa.timestamp("s")), ("area_m2", pa.float64()), ("utm_epsg", pa.int64()), ("geometry", pa.binary()),
])


def geo_metadata(geometry_types: Sequence[str]) -> dict[bytes, bytes]:
    """GeoParquet file metadata for a WKB ``geometry`` column in longitude/latitude (OGC:CRS84)."""
    geo = {
        "version": GEOPARQUET_VERSION,
        "primary_column": "geometry",
        "columns": {"geometry": {"encoding": "WKB", "geometry_types": list(geometry_types),
                                 "crs": CRS("OGC:CRS84").to_json_dict()}},
    }
    return {b"geo": json.dumps(geo).encode()}


def to_table(rows: Sequence[dict[str, Any]], schema: pa.Schema, geometry_types: Sequence[str]) -> pa.Table:
    """Rows to an Arrow table with GeoParquet metadata."""
    table = pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)
    return table.replace_schema_metadata(geo_metadata(geometry_types))


def write_table(storage: Storage, key: str, table: pa.Table) -> int:
    """Write a table as Parquet (zstd) to ``key``; return its size in bytes."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    data = buffer.getvalue()
    storage.put_bytes(key, data, content_type="application/vnd.apache.parquet")
    return len(data)


def read_table(storage: Storage, key: str) -> pa.Table | None:
    """Read a Parquet table from ``key``; None when it does not exist."""
    try:
        data = storage.get_bytes(key)
    except NotFoundError:
        return None
    return pq.read_table(io.BytesIO(data))


def read_geodataframe(storage: Storage, key: str) -> Any:
    """A manifest (or coverage) as a ``geopandas.GeoDataFrame`` in longitude/latitude."""
    import geopandas

    data = storage.get_bytes(key)
    return geopandas.read_parquet(io.BytesIO(data))
