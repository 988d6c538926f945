"""EXIF and DJI XMP metadata of drone images, read from as few bytes as possible.

A JPEG's metadata sits in APP1 segments before the image data, so the reader walks the segment
headers of the first 64 KiB and asks for more only when a segment runs past what it has. The same
walk gives the pixel size (SOF segment). The last 16 bytes are read too: a JPEG that does not end
with its end-of-image marker was truncated (an interrupted copy or upload). EXIF is decoded by Pillow; DJI's ``drone-dji`` XMP
attributes (or elements) are parsed here.

Problems (empty, not a JPEG, truncated, corrupt, no EXIF) never raise: they are recorded in
``ImageMetadata.error`` so a batch always completes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from workbench.imagery.makers import XMP_TAGS, sensor_width, xmp_properties

FIRST_READ = 64 * 1024
TAIL_READ = 16  # the end-of-image marker, possibly followed by padding
MAX_HEADER = 1024 * 1024  # metadata beyond 1 MiB is treated as corrupt
_EXIF_HEADER = b"Exif\x00\x00"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
MIN_SENSOR_MM, MAX_SENSOR_MM = 1.0, 70.0

Reader = Callable[[int, int], bytes]  # (start, end exclusive) -> bytes


@dataclasses.dataclass
class ImageMetadata:
    """What one image says about itself; ``error`` names why fields are missing."""

    name: str
    size: int
    etag: str | None = None
    make: str | None = None
    model: str | None = None
    captured_at: dt.datetime | None = None
    lat: float | None = None
    lon: float | None = None
    altitude: float | None = None
    relative_altitude: float | None = None
    gimbal_pitch: float | None = None
    gimbal_yaw: float | None = None
    gimbal_roll: float | None = None
    flight_yaw: float | None = None
    flight_pitch: float | None = None
    flight_roll: float | None = None
    focal_length_mm: float | None = None
    focal_35mm: float | None = None
    width: int | None = None
    height: int | None = None
    sensor_width_mm: float | None = None
    height_source: str | None = None  # where relative_altitude came from: xmp-dji, agl-option, dem, ...
    yaw_source: str | None = None  # where the camera's heading came from: xmp-dji, exif-direction, track, ...
    sensor_source: str | None = None  # exif-focal-plane, exif-35mm or camera-table
    track_yaw: float | None = None  # bearing of the flight track here (set per flight by ingest)
    bytes_read: int = 0
    error: str | None = None

    @property
    def horizontal_fov(self) -> float | None:
        """Horizontal field of view in degrees (from focal length and sensor width)."""
        if not (self.focal_length_mm and self.sensor_width_mm):
            return None
        return math.degrees(2 * math.atan(self.sensor_width_mm / (2 * self.focal_length_mm)))

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ImageMetadata:
        """Rebuild from a manifest row (other columns are ignored)."""
        values: dict[str, Any] = {field.name: row.get(field.name) for field in dataclasses.fields(cls)}
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        """A flat dict for tables (includes the derived field of view)."""
        row = dataclasses.asdict(self)
        row["horizontal_fov"] = self.horizontal_fov
        return row


@dataclasses.dataclass(frozen=True)
class _Segments:
    exif: bytes | None
    xmp: bytes | None
    width: int | None
    height: int | None
    needed: int | None  # bytes needed to finish the walk, when the buffer was too short
    error: str | None


def _walk_jpeg(data: bytes, total_size: int) -> _Segments:
    """Walk JPEG segment headers up to the image data; collect EXIF, XMP and the pixel size."""
    if data[:2] != b"\xff\xd8":
        return _Segments(None, None, None, None, None, "not a JPEG")
    exif = xmp = None
    width = height = None
    pos = 2
    while True:
        if pos + 4 > len(data):
            if pos + 4 > total_size:
                return _Segments(exif, xmp, width, height, None, "truncated before the image data")
            return _Segments(exif, xmp, width, height, pos + 4, None)
        if data[pos] != 0xFF:
            return _Segments(exif, xmp, width, height, None, f"corrupt JPEG (no marker at byte {pos})")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return _Segments(exif, xmp, width, height, None, f"corrupt JPEG (segment length {length})")
        end = pos + 2 + length
        if marker == 0xDA:  # start of scan: the metadata is behind us
            return _Segments(exif, xmp, width, height, None, None)
        if end > len(data):
            if end > total_size:
                return _Segments(exif, xmp, width, height, None, "truncated inside a header segment")
            if end > MAX_HEADER:
                return _Segments(exif, xmp, width, height, None, "corrupt JPEG (headers larger than 1 MiB)")
            return _Segments(exif, xmp, width, height, end + 4, None)
        payload = data[pos + 4 : end]
        if marker == 0xE1 and payload.startswith(_EXIF_HEADER) and exif is None:
            exif = payload
        elif marker == 0xE1 and payload.startswith(_XMP_HEADER) and xmp is None:
            xmp = payload[len(_XMP_HEADER) :]
        elif marker in _SOF_MARKERS and len(payload) >= 5:
            height = int.from_bytes(payload[1:3], "big")
            width = int.from_bytes(payload[3:5], "big")
        pos = end


def _ratio(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _dms(values: Any, ref: Any, negative: str) -> float | None:
    try:
        degrees, minutes, seconds = (float(v) for v in values)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    if not math.isfinite(value):
        return None
    ref_text = ref.decode(errors="ignore") if isinstance(ref, bytes) else str(ref or "")
    return -value if ref_text.strip().upper().startswith(negative) else value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.decode(errors="ignore") if isinstance(value, bytes) else str(value)
    text = text.replace("\x00", "").strip()
    return text or None


def _parse_time(value: Any) -> dt.datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        return dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _apply_exif(meta: ImageMetadata, payload: bytes) -> None:
    exif = Image.Exif()
    exif.load(payload)
    meta.make = _text(exif.get(0x010F))
    meta.model = _text(exif.get(0x0110))
    details = exif.get_ifd(0x8769)
    meta.captured_at = _parse_time(details.get(0x9003)) or _parse_time(exif.get(0x0132))
    meta.focal_length_mm = _ratio(details.get(0x920A))
    meta.focal_35mm = _ratio(details.get(0xA405)) or None
    resolution, unit = _ratio(details.get(0xA20E)), details.get(0xA210)
    width = details.get(0xA002) or meta.width  # focal-plane resolution refers to the sensor's own pixel count
    if resolution and width and unit in (2, 3):
        meta.sensor_width_mm = float(width) / resolution * (25.4 if unit == 2 else 10.0)
        meta.sensor_source = "exif-focal-plane"
    gps = exif.get_ifd(0x8825)
    if gps:
        meta.lat = _dms(gps.get(2), gps.get(1), "S")
        meta.lon = _dms(gps.get(4), gps.get(3), "W")
        altitude = _ratio(gps.get(6))
        if altitude is not None:
            below = gps.get(5) in (1, b"\x01")
            meta.altitude = -altitude if below else altitude
        direction = _ratio(gps.get(0x11))  # GPSImgDirection: where the camera pointed (exiftool GPS.pm)
        if direction is not None:
            meta.gimbal_yaw, meta.yaw_source = direction % 360.0, "exif-direction"


def _apply_xmp(meta: ImageMetadata, payload: bytes) -> None:
    """Fill fields from the makers' XMP (first row of :data:`XMP_TAGS` present wins per field)."""
    properties = xmp_properties(payload)
    taken: set[str] = set()
    for tag in XMP_TAGS:
        text = properties.get((tag.namespace.rstrip("/"), tag.path))
        value = _ratio(text) if text is not None else None
        if value is None or tag.field in taken:
            continue
        taken.add(tag.field)
        setattr(meta, tag.field, tag.convert(value))
        if tag.field == "relative_altitude":
            meta.height_source = tag.label
        elif tag.field == "gimbal_yaw" or (tag.field == "flight_yaw" and meta.yaw_source is None):
            meta.yaw_source = tag.label  # the camera's own yaw rows come first in the table


def _derive_sensor(meta: ImageMetadata) -> None:
    """Sensor width from the 35 mm-equivalent focal length, else the camera table, when EXIF lacks the
    focal plane resolution.

    Widths outside 1..70 mm (e.g. from a resized image whose EXIF still describes the original) are
    dropped: no field of view is better than a wrong one.
    """
    if not meta.sensor_width_mm and meta.focal_length_mm and meta.focal_35mm and meta.width and meta.height:
        diagonal = _FULL_FRAME_DIAGONAL_MM * meta.focal_length_mm / meta.focal_35mm
        meta.sensor_width_mm, meta.sensor_source = diagonal * meta.width / math.hypot(meta.width, meta.height), "exif-35mm"
    if not meta.sensor_width_mm and (listed := sensor_width(meta.make, meta.model)):
        meta.sensor_width_mm, meta.sensor_source = listed[0], "camera-table"
    if meta.sensor_width_mm is not None and not MIN_SENSOR_MM <= meta.sensor_width_mm <= MAX_SENSOR_MM:
        meta.sensor_width_mm = meta.sensor_source = None


def read_metadata(name: str, size: int, reader: Reader, etag: str | None = None, first_read: int = FIRST_READ) -> ImageMetadata:
    """Read an image's metadata through ``reader(start, end)``, fetching only the header bytes it needs."""
    meta = ImageMetadata(name=name, size=size, etag=etag)
    if size == 0:
        meta.error = "empty file"
        return meta
    data = reader(0, min(size, first_read))
    meta.bytes_read = len(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        meta.error = "no EXIF metadata (PNG image)"
        return meta
    while True:
        segments = _walk_jpeg(data, size)
        if segments.needed is None:
            break
        more = reader(len(data), min(size, max(segments.needed, len(data) + first_read)))
        meta.bytes_read += len(more)
        data += more
    meta.width, meta.height = segments.width, segments.height
    if segments.error is None:
        tail = data[-TAIL_READ:] if len(data) >= size else reader(size - TAIL_READ, size)
        meta.bytes_read += len(tail) if len(data) < size else 0
        if not tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
            segments = dataclasses.replace(segments, error="truncated (no end-of-image marker)")
    try:
        if segments.exif is not None:
            _apply_exif(meta, segments.exif)
        if segments.xmp is not None:
            _apply_xmp(meta, segments.xmp)
    except Exception as exc:  # Pillow raises many types on malformed EXIF; the batch must go on
        meta.error = f"unreadable EXIF ({type(exc).__name__})"
        return meta
    _derive_sensor(meta)
    if segments.error:
        meta.error = segments.error
    elif segments.exif is None:
        meta.error = "no EXIF metadata"
    return meta


def metadata_from_file(path: str | Path) -> ImageMetadata:
    """Metadata of a local image file."""
    file = Path(path)
    with open(file, "rb") as handle:
        def reader(start: int, end: int) -> bytes:
            handle.seek(start)
            return handle.read(end - start)

        return read_metadata(file.name, file.stat().st_size, reader)
