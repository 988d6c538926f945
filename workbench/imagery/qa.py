"""Quality checks: is each image usable, and if not, why.

Per image: unreadable files, missing or impossible GPS, not nadir, under- or over-exposure.
Across a flight: far from the others (distance from the median position), duplicates (same size and
ETag, i.e. the same content), gaps and hovering in the capture sequence, and blur: a frame is blurry
when its sharpness (:mod:`workbench.imagery.pixels`) is far below the flight's own median, or below an
absolute floor (so a flight blurred throughout is still flagged). Every threshold lives in
:class:`Thresholds`. Each flag comes with a one-line reason.

``no_height`` (no height above ground, so no footprint) is advisory: the image stays usable for
engines that do not need it (odm), and the quick-look says how many it cannot place.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from workbench.imagery.metadata import ImageMetadata
from workbench.imagery.pixels import PixelStats

FLAGS = ("unreadable", "no_gps", "bad_gps", "not_nadir", "far", "duplicate", "blurry", "underexposed",
         "overexposed", "gap", "hover", "no_height")
ADVISORY = frozenset({"no_height"})  # flags that do not make an image unusable
EARTH_RADIUS_M = 6371008.8


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Every QA threshold, with defaults that suit mapping flights of consumer drones."""

    max_gimbal_pitch: float = -20.0  # pitch above this (towards the horizon) is "not nadir"
    max_distance_from_median_m: float = 2000.0
    # sharpness is the fine-detail ratio of pixels.sharpness; measured values in pixels' docstring
    min_sharpness: float = 0.03  # absolute floor: blurred beyond use, whatever the flight
    min_relative_sharpness: float = 0.38  # share of the flight's median sharpness below which a frame is blurry
    min_images_for_relative: int = 5  # flights with fewer scored frames get the floor only
    min_brightness: float = 40.0
    max_brightness: float = 215.0
    max_clipped_fraction: float = 0.5  # share of near-black or near-white pixels
    max_gap_s: float = 30.0  # seconds between consecutive captures
    hover_radius_m: float = 2.0
    hover_min_images: int = 4  # this many consecutive captures within hover_radius_m


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def image_flags(meta: ImageMetadata, pixels: PixelStats | None, limits: Thresholds) -> list[tuple[str, str]]:
    """Flags that one image earns on its own."""
    flags: list[tuple[str, str]] = []
    if meta.error and not meta.error.startswith("no EXIF metadata"):
        flags.append(("unreadable", meta.error))
    if meta.lat is None or meta.lon is None:
        flags.append(("no_gps", "no GPS position" if not meta.error else f"no GPS position ({meta.error})"))
    elif meta.lat == 0 and meta.lon == 0:
        flags.append(("bad_gps", "GPS at 0,0 (no satellite fix)"))
    elif not (-90 <= meta.lat <= 90 and -180 <= meta.lon <= 180):
        flags.append(("bad_gps", f"impossible GPS position {meta.lat:.5f}, {meta.lon:.5f}"))
    if meta.gimbal_pitch is not None and meta.gimbal_pitch > limits.max_gimbal_pitch:
        flags.append(("not_nadir", f"gimbal pitch {meta.gimbal_pitch:.1f} deg is above {limits.max_gimbal_pitch:.0f} deg"))
    if pixels is not None:
        clipped_dark = pixels.dark_fraction > limits.max_clipped_fraction
        clipped_bright = pixels.bright_fraction > limits.max_clipped_fraction
        if pixels.brightness < limits.min_brightness or clipped_dark:
            flags.append(("underexposed", f"mean brightness {pixels.brightness:.0f}, {pixels.dark_fraction:.0%} near black"))
        if pixels.brightness > limits.max_brightness or clipped_bright:
            flags.append(("overexposed", f"mean brightness {pixels.brightness:.0f}, {pixels.bright_fraction:.0%} near white"))
    return flags


def blur_flags(scores: Sequence[float | None], limits: Thresholds) -> list[list[tuple[str, str]]]:
    """``blurry`` for frames far below the flight's median sharpness, or below the absolute floor."""
    scored = [s for s in scores if s is not None]
    median = float(np.median(scored)) if scored else None
    relative = len(scored) >= limits.min_images_for_relative
    flags: list[list[tuple[str, str]]] = [[] for _ in scores]
    for i, score in enumerate(scores):
        if score is None or median is None:
            continue
        threshold = limits.min_relative_sharpness * median
        if relative and score < threshold:
            flags[i].append(("blurry", f"sharpness {score:.3f} is {score / median:.2f} of the flight's median {median:.3f} "
                                       f"(threshold {limits.min_relative_sharpness:g} x median = {threshold:.3f})"))
        elif score < limits.min_sharpness:
            flags[i].append(("blurry", f"sharpness {score:.3f} below the floor {limits.min_sharpness:g} "
                                       f"(flight median {median:.3f}): blurred beyond use"))
    return flags


def _located(meta: ImageMetadata) -> bool:
    return meta.lat is not None and meta.lon is not None and not (meta.lat == 0 and meta.lon == 0) \
        and -90 <= meta.lat <= 90 and -180 <= meta.lon <= 180


def flight_flags(images: Sequence[ImageMetadata], limits: Thresholds) -> list[list[tuple[str, str]]]:
    """Flags that need the whole flight: far from the median, duplicates, gaps and hovering."""
    flags: list[list[tuple[str, str]]] = [[] for _ in images]
    located = [i for i, m in enumerate(images) if _located(m)]
    if located:
        median_lat = float(np.median([images[i].lat for i in located]))
        median_lon = float(np.median([images[i].lon for i in located]))
        for i in located:
            far = distance_m(median_lat, median_lon, images[i].lat, images[i].lon)  # type: ignore[arg-type]
            if far > limits.max_distance_from_median_m:
                flags[i].append(("far", f"{far / 1000:.1f} km from the flight's median position"))
    by_content: dict[tuple[int, str], list[int]] = defaultdict(list)
    for i, meta in enumerate(images):
        if meta.etag and meta.size:
            by_content[(meta.size, meta.etag)].append(i)
    for same in by_content.values():
        for i in same[1:]:
            flags[i].append(("duplicate", f"same content as {images[same[0]].name}"))
    timed = sorted((i for i in located if images[i].captured_at is not None), key=lambda i: (images[i].captured_at, images[i].name))
    for previous, current in zip(timed, timed[1:]):
        seconds = (images[current].captured_at - images[previous].captured_at).total_seconds()  # type: ignore[operator]
        if seconds > limits.max_gap_s:
            flags[current].append(("gap", f"{seconds:.0f} s since the previous capture ({images[previous].name})"))
    run: list[int] = timed[:1]
    for current in timed[1:]:
        anchor = images[run[0]]
        if distance_m(anchor.lat, anchor.lon, images[current].lat, images[current].lon) <= limits.hover_radius_m:  # type: ignore[arg-type]
            run.append(current)
            continue
        _flag_hover(images, run, flags, limits)
        run = [current]
    _flag_hover(images, run, flags, limits)
    return flags


def _flag_hover(images: Sequence[ImageMetadata], run: list[int], flags: list[list[tuple[str, str]]], limits: Thresholds) -> None:
    if len(run) >= limits.hover_min_images:
        for i in run[1:]:
            flags[i].append(("hover", f"{len(run)} captures within {limits.hover_radius_m:g} m of {images[run[0]].name}"))
