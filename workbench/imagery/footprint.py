"""Ground footprints of images and the coverage of a flight.

Flat-ground assumption: the ground is a horizontal plane ``relative_altitude`` metres below the camera
(the take-off point's height). Each image corner's ray, built from the gimbal yaw and pitch and the
field of view (roll taken as 0, as gimbals keep it), is intersected with that plane in the flight's UTM
zone. Hills, buildings and a take-off point higher or lower than the surveyed ground make real
footprints larger or smaller; a ray at or above the horizon gives no footprint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely import Polygon, unary_union
from shapely.geometry.base import BaseGeometry

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


def camera_axes(yaw_deg: float, pitch_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (east, north, up) of a camera's viewing direction, image-up and image-right (roll 0)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), math.sin(pitch)])
    up = np.array([-math.sin(yaw) * math.sin(pitch), -math.cos(yaw) * math.sin(pitch), math.cos(pitch)])
    return forward, up, np.cross(forward, up)


def camera_angles(meta: ImageMetadata) -> tuple[float, float]:
    """Yaw and pitch (degrees) of an image's camera: the gimbal's, else the flight yaw and nadir."""
    yaw = meta.gimbal_yaw if meta.gimbal_yaw is not None else (meta.flight_yaw or 0.0)
    pitch = meta.gimbal_pitch if meta.gimbal_pitch is not None else NADIR_PITCH
    return yaw, pitch


def footprint_local(meta: ImageMetadata) -> list[tuple[float, float]] | None:
    """Footprint corners as east/north offsets (metres) from the camera; None when it cannot be computed."""
    if meta.relative_altitude is None or meta.relative_altitude <= 0 or not meta.width or not meta.height:
        return None
    if not (meta.focal_length_mm and meta.sensor_width_mm):
        return None
    forward, up, right = camera_axes(*camera_angles(meta))
    half_w = meta.sensor_width_mm / (2 * meta.focal_length_mm)
    half_h = half_w * meta.height / meta.width
    corners = []
    for sx, sy in ((-1, 1), (1, 1), (1, -1), (-1, -1)):
        ray = forward + sx * half_w * right + sy * half_h * up
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
