"""Ground footprints of images and the coverage of a flight.

Flat-ground assumption: the ground is a horizontal plane ``relative_altitude`` metres below the camera
(the height above ground, from the maker's tags or one of ingest's fallbacks). Each image corner's
ray, built from the camera's pose (:func:`camera_pose`: a gimbal's yaw, pitch and roll; the aircraft's
attitude for a camera fixed in the airframe; else the flight track's bearing) and the field of view,
is intersected with that plane in the flight's UTM zone. Hills and buildings make real footprints
smaller or larger; a ray at or above the horizon gives no footprint.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely import Polygon, unary_union
from shapely.geometry.base import BaseGeometry

from workbench.imagery.ground import HOW_TO_GIVE
from workbench.imagery.metadata import ImageMetadata

NADIR_PITCH = -90.0


def utm_crs(lon: float, lat: float) -> CRS:
    """The UTM zone CRS (WGS84) containing a longitude/latitude."""
    zone = int((lon + 180) // 6) % 60 + 1
    return CRS.from_epsg((32700 if lat < 0 else 32600) + zone)


def flight_crs(images: Sequence[ImageMetadata]) -> CRS | None:
    """The UTM CRS at the median position of the images that have one."""
    located = [(m.lon, m.lat) for m in images if m.lat is not None and m.lon is not None]
    if not located:
        return None
    lons, lats = zip(*located)
    return utm_crs(float(np.median(lons)), float(np.median(lats)))


@dataclasses.dataclass(frozen=True)
class CameraPose:
    """A camera's axes as east/north/up unit vectors, and where its heading came from."""

    forward: np.ndarray  # the optical axis
    up: np.ndarray  # the image's up direction
    right: np.ndarray  # the image's right direction
    yaw_source: str


def _rotation_ned(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Aerospace Z-Y-X rotation (yaw, pitch, roll in degrees) from a body frame to north/east/down."""
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    return rz @ ry @ rx


_NED_TO_ENU = np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]])


def _pose(camera_ned: np.ndarray, source: str) -> CameraPose:
    """Camera frame columns (optical axis, image right, image down) in NED to a :class:`CameraPose`."""
    enu = _NED_TO_ENU @ camera_ned
    return CameraPose(forward=enu[:, 0], up=-enu[:, 2], right=enu[:, 1], yaw_source=source)


def gimbal_pose(yaw: float, pitch: float = NADIR_PITCH, roll: float = 0.0, source: str = "given") -> CameraPose:
    """A gimbal camera's pose: yaw clockwise from north, pitch -90 = nadir, roll about the optical axis."""
    return _pose(_rotation_ned(yaw, pitch, roll), source)


def camera_pose(meta: ImageMetadata) -> CameraPose | None:
    """Where an image's camera pointed, from the best evidence it has; None when its heading is unknown.

    In order: the camera's own yaw (a gimbal, or EXIF's image direction) with its pitch (nadir if
    none) and roll; the aircraft's heading, for a camera without its own angles (fixed in the
    airframe, image up towards the nose); the bearing of the flight track. Without a gimbal the
    camera is taken as nadir: on the senseFly flight (seneca) applying the aircraft's pitch and roll
    tags made the ground positions of features matched in overlapping images agree no better (median
    misfit 14.7 m with pitch, 17.2-18.4 m with roll either sign, 15.4 m with neither), so they are
    recorded but not applied.
    """
    roll = meta.gimbal_roll or 0.0
    pitch = meta.gimbal_pitch if meta.gimbal_pitch is not None else NADIR_PITCH
    if meta.gimbal_yaw is not None:
        return gimbal_pose(meta.gimbal_yaw, pitch, roll, meta.yaw_source or "camera-yaw")
    if meta.flight_yaw is not None:
        return gimbal_pose(meta.flight_yaw, pitch, roll, meta.yaw_source or "flight-yaw")
    if meta.track_yaw is not None:
        return gimbal_pose(meta.track_yaw, pitch, roll, "track")
    return None


def track_headings(images: Sequence[ImageMetadata], min_step_m: float = 1.0) -> list[float | None]:
    """The flight track's bearing (degrees clockwise from north) at each image, from its neighbours in
    capture order (time, then name); None for images without a position or a flight of one image.

    The bearing at an image runs from the previous position to the next (the first and last use their
    one neighbour); neighbours closer than ``min_step_m`` (hovering) are skipped.
    """
    order = sorted((i for i, m in enumerate(images) if m.lat is not None and m.lon is not None),
                   key=lambda i: (images[i].captured_at is None, images[i].captured_at or 0, images[i].name))
    headings: list[float | None] = [None] * len(images)
    if len(order) < 2:
        return headings
    lat0 = math.radians(float(np.median([images[i].lat for i in order])))  # type: ignore[misc]

    def offset(a: int, b: int) -> tuple[float, float]:
        east = math.radians(images[b].lon - images[a].lon) * math.cos(lat0) * 6371008.8  # type: ignore[operator]
        north = math.radians(images[b].lat - images[a].lat) * 6371008.8  # type: ignore[operator]
        return east, north

    for rank, i in enumerate(order):
        before = next((order[j] for j in range(rank - 1, -1, -1) if math.hypot(*offset(order[j], i)) >= min_step_m), i)
        after = next((order[j] for j in range(rank + 1, len(order)) if math.hypot(*offset(i, order[j])) >= min_step_m), i)
        if before != after:
            east, north = offset(before, after)
            headings[i] = math.degrees(math.atan2(east, north)) % 360.0
    return headings


MISSING = {  # why an image has no footprint, and what to do about it
    "position": "no GPS position",
    "height": "no height above ground: " + HOW_TO_GIVE,
    "field of view": ("no field of view: EXIF has no focal length, focal plane resolution or 35 mm equivalent, and the "
                      "camera is not in workbench.imagery.makers.SENSOR_WIDTHS_MM"),
    "heading": "no heading: no yaw tag, and no flight track to take one from (a flight of one image)",
    "horizon": "the camera looks at or above the horizon",
}


def missing_for_footprint(meta: ImageMetadata) -> str | None:
    """What keeps an image from having a footprint (a key of :data:`MISSING`), or None."""
    if meta.lat is None or meta.lon is None:
        return "position"
    if meta.relative_altitude is None or meta.relative_altitude <= 0:
        return "height"
    if not (meta.focal_length_mm and meta.sensor_width_mm and meta.width and meta.height):
        return "field of view"
    if camera_pose(meta) is None:
        return "heading"
    return "horizon" if footprint_local(meta) is None else None


def explain_missing(counts: dict[str, int], total: int) -> str:
    """One line: how many of ``total`` images have no footprint, by cause, with what to do."""
    if not counts:
        return f"none of the {total} image(s) has a footprint"
    missing = sum(counts.values())
    causes = "; ".join(f"{n} {MISSING[cause]}" for cause, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{missing} of {total} image(s) have no footprint ({causes})"


def footprint_local(meta: ImageMetadata) -> list[tuple[float, float]] | None:
    """Footprint corners as east/north offsets (metres) from the camera; None when it cannot be computed."""
    if meta.relative_altitude is None or meta.relative_altitude <= 0 or not meta.width or not meta.height:
        return None
    if not (meta.focal_length_mm and meta.sensor_width_mm):
        return None
    pose = camera_pose(meta)
    if pose is None:
        return None
    half_w = meta.sensor_width_mm / (2 * meta.focal_length_mm)
    half_h = half_w * meta.height / meta.width
    corners = []
    for sx, sy in ((-1, 1), (1, 1), (1, -1), (-1, -1)):
        ray = pose.forward + sx * half_w * pose.right + sy * half_h * pose.up
        if ray[2] >= -1e-6:
            return None  # this corner sees the sky
        scale = meta.relative_altitude / -ray[2]
        corners.append((float(ray[0] * scale), float(ray[1] * scale)))
    return corners


def footprints(images: Sequence[ImageMetadata], crs: CRS | None = None) -> tuple[list[Polygon | None], CRS | None]:
    """Each image's footprint in the flight's UTM CRS (or ``crs``), None where it cannot be computed."""
    crs = crs or flight_crs(images)
    if crs is None:
        return [None] * len(images), None
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    out: list[Polygon | None] = []
    for meta in images:
        corners = footprint_local(meta) if meta.lat is not None and meta.lon is not None else None
        if corners is None:
            out.append(None)
            continue
        east, north = to_utm.transform(meta.lon, meta.lat)
        out.append(Polygon([(east + dx, north + dy) for dx, dy in corners]))
    return out, crs


def to_lonlat(geometry: BaseGeometry, crs: CRS) -> BaseGeometry:
    """Reproject a geometry from ``crs`` to longitude/latitude (WGS84)."""
    transformer = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def coverage(polygons: Sequence[Polygon | None]) -> BaseGeometry | None:
    """The union of the footprints (the flight's coverage), in their CRS."""
    present = [p for p in polygons if p is not None]
    return unary_union(present) if present else None
