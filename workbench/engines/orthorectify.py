"""Orthorectification of solved images onto a surface, and a mosaic that keeps the most nadir view per cell.

:func:`render` (a Dask task, one per image) takes each ground cell of the image's window on the mosaic
grid, its height from the :class:`~workbench.engines.surface.Surface`, projects it into the image with the
solved camera (pycolmap's camera model: focal length, principal point and lens distortion) and samples the
reduced image bilinearly. Each cell also gets how far from nadir the image sees it (the tangent of the
off-nadir angle) and a weight that falls to 0 over the last :data:`EDGE_FRACTION` of the image's frame.

:class:`FeatheredMosaic` blends the renderings as they arrive: per cell, weights
``edge * exp(-(tan_off_nadir - best) / FEATHER)``, where ``best`` is the most nadir view of that cell so far
(the running minimum, with the accumulated sums rescaled when it drops: one pass, no second read). The
most nadir image wins; within a band where two are almost equally nadir (about a metre at 40 m height)
they blend, so seams are feathered rather than cut.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from workbench.config import Settings
from workbench.engines.colmap import load_pycolmap
from workbench.engines.reconstruction import reduce_image
from workbench.engines.seams import RenderingFeatures, rendering_features
from workbench.engines.surface import Surface
from workbench.storage import shared_storage

EDGE_FRACTION = 0.04  # of the image's longer side: the frame's edge fades out over this
FEATHER = 0.03  # tangent units of the off-nadir angle
ROWS_PER_BLOCK = 256  # grid rows projected at a time (bounds a task's temporaries)


@dataclasses.dataclass(frozen=True)
class RenderJob:
    """One image to render: its key, solved camera and pose, and its window on the grid."""

    key: str
    camera: dict[str, Any]
    rotation: list[list[float]]
    translation: list[float]
    center: list[float]
    max_size: int
    window: tuple[int, int, int, int]  # row0, col0, rows, cols


@dataclasses.dataclass(frozen=True)
class Rendering:
    """An image rendered on its window of the grid."""

    row0: int
    col0: int
    rgb: np.ndarray  # (rows, cols, 3) uint8
    off_nadir: np.ndarray  # (rows, cols) float32: tan of the off-nadir angle; inf where the image does not see
    edge: np.ndarray  # (rows, cols) float32 in [0, 1]
    features: RenderingFeatures


def _camera(spec: dict[str, Any]) -> Any:
    pycolmap = load_pycolmap()

    return pycolmap.Camera(model=spec["model"], width=spec["width"], height=spec["height"], params=spec["params"])


def ground_extent(camera_spec: dict[str, Any], rotation: np.ndarray, center: np.ndarray,
                  ground: float) -> tuple[float, float, float, float] | None:
    """The box (left, bottom, right, top, local metres) an image sees of flat ground at height ``ground``: its
    frame's edge traced with the lens model, 10 % margin, rays near the horizon clamped to ten heights;
    None if it does not look down."""
    camera = _camera(camera_spec)
    width, height = camera_spec["width"], camera_spec["height"]
    steps = np.linspace(0, 1, 9)
    border = np.concatenate([np.column_stack([steps * width, np.zeros(9)]), np.column_stack([steps * width, np.full(9, height)]),
                             np.column_stack([np.zeros(9), steps * height]), np.column_stack([np.full(9, width), steps * height])])
    rays = np.column_stack([camera.cam_from_img(border), np.ones(len(border))]) @ rotation  # world directions, R^T d
    down = rays[:, 2] < -1e-6
    if not down.any():
        return None
    reach = (ground - center[2]) / rays[down, 2]
    limit = 10 * max(center[2] - ground, 1.0) / np.maximum(np.linalg.norm(rays[down, :2], axis=1), 1e-9)
    xy = center[:2] + rays[down, :2] * np.minimum(reach, limit)[:, None]
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    margin = 0.1 * max(x1 - x0, y1 - y0)
    return x0 - margin, y0 - margin, x1 + margin, y1 + margin


def grid_window(extent: tuple[float, float, float, float], grid: dict[str, float],
                shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The window (row0, col0, rows, cols) of the grid that holds ``extent``; None if they do not meet."""
    left, bottom, right, top = extent
    res = grid["resolution"]
    col0, col1 = max(int((left - grid["left"]) / res), 0), min(math.ceil((right - grid["left"]) / res), shape[1])
    row0, row1 = max(int((grid["top"] - top) / res), 0), min(math.ceil((grid["top"] - bottom) / res), shape[0])
    if col1 <= col0 or row1 <= row0:
        return None
    return row0, col0, row1 - row0, col1 - col0


def _bilinear(pixels: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Colours at image coordinates (COLMAP's: pixel centres at +0.5)."""
    height, width = pixels.shape[:2]
    x, y = np.clip(u - 0.5, 0, width - 1), np.clip(v - 0.5, 0, height - 1)
    x0, y0 = np.minimum(x.astype(np.int64), width - 2), np.minimum(y.astype(np.int64), height - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = pixels[y0, x0] * (1 - fx) + pixels[y0, x0 + 1] * fx
    bottom = pixels[y0 + 1, x0] * (1 - fx) + pixels[y0 + 1, x0 + 1] * fx
    return np.clip(top * (1 - fy) + bottom * fy + 0.5, 0, 255).astype(np.uint8)


def render(settings: Settings, job: RenderJob, grid: dict[str, float], surface: Surface) -> Rendering:
    """Orthorectify one image onto its window of the grid (see the module docstring); runs on a Dask worker."""
    pixels = reduce_image(shared_storage(settings).get_bytes(job.key), job.max_size).astype(np.float32)
    camera = _camera(job.camera)
    rotation, translation = np.asarray(job.rotation), np.asarray(job.translation)
    cx, cy, cz = job.center
    width, height = job.camera["width"], job.camera["height"]
    fade = EDGE_FRACTION * max(width, height)
    row0, col0, rows, cols = job.window
    res = grid["resolution"]
    rgb = np.zeros((rows, cols, 3), dtype=np.uint8)
    off_nadir = np.full((rows, cols), np.inf, dtype=np.float32)
    edge = np.zeros((rows, cols), dtype=np.float32)
    xs = grid["left"] + (col0 + np.arange(cols) + 0.5) * res
    for start in range(0, rows, ROWS_PER_BLOCK):
        stop = min(rows, start + ROWS_PER_BLOCK)
        ys = grid["top"] - (row0 + np.arange(start, stop) + 0.5) * res
        x, y = (a.ravel() for a in np.meshgrid(xs, ys))
        z = surface.sample(x, y)
        in_camera = np.column_stack([x, y, z]) @ rotation.T + translation
        ahead = in_camera[:, 2] > 1e-3
        uv = np.full((len(x), 2), -1.0)
        if ahead.any():
            uv[ahead] = camera.img_from_cam(in_camera[ahead])
        u, v = uv[:, 0], uv[:, 1]
        seen = ahead & (u >= 0) & (u <= width) & (v >= 0) & (v <= height)
        block = slice(start, stop)
        if seen.any():
            flat_rgb = np.zeros((len(x), 3), dtype=np.uint8)
            flat_rgb[seen] = _bilinear(pixels, u[seen], v[seen])
            rgb[block] = flat_rgb.reshape(stop - start, cols, 3)
            tangent = np.hypot(x - cx, y - cy) / np.maximum(cz - z, 1e-3)
            off_nadir[block] = np.where(seen, tangent, np.inf).reshape(stop - start, cols)
            margin = np.minimum(np.minimum(u, width - u), np.minimum(v, height - v))
            edge[block] = np.where(seen, np.clip(margin / fade, 0, 1), 0).reshape(stop - start, cols)
    seen_all = np.isfinite(off_nadir)
    return Rendering(row0, col0, rgb, off_nadir, edge, rendering_features(job.key, row0, col0, rgb, seen_all))


class FeatheredMosaic:
    """Blends renderings as they arrive (see the module docstring); memory: 20 bytes per grid cell."""

    def __init__(self, rows: int, cols: int) -> None:
        self.best = np.full((rows, cols), np.inf, dtype=np.float32)
        self.total = np.zeros((rows, cols, 3), dtype=np.float32)
        self.weight = np.zeros((rows, cols), dtype=np.float32)

    def add(self, rendering: Rendering) -> None:
        """Blend one rendering into the mosaic."""
        rows, cols = rendering.off_nadir.shape
        window = (slice(rendering.row0, rendering.row0 + rows), slice(rendering.col0, rendering.col0 + cols))
        best, total, weight = self.best[window], self.total[window], self.weight[window]
        seen = np.isfinite(rendering.off_nadir) & (rendering.edge > 0)
        lower = seen & (rendering.off_nadir < best)
        if lower.any():  # a more nadir view: what was summed so far counts for less
            factor = np.where(np.isfinite(best[lower]), np.exp(-(best[lower] - rendering.off_nadir[lower]) / FEATHER), 0)
            total[lower] *= factor[:, None]
            weight[lower] *= factor
            best[lower] = rendering.off_nadir[lower]
        w = np.where(seen, rendering.edge * np.exp(-(np.where(seen, rendering.off_nadir, 0) - np.where(seen, best, 0)) / FEATHER), 0)
        total += rendering.rgb * w[..., None]
        weight += w

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The mosaic (rows, cols, 3) uint8 and its alpha (255 where any image contributes)."""
        covered = self.weight > 1e-6
        rgb = np.zeros(self.total.shape, dtype=np.uint8)
        rgb[covered] = np.clip(self.total[covered] / self.weight[covered][:, None] + 0.5, 0, 255).astype(np.uint8)
        return rgb, np.where(covered, 255, 0).astype(np.uint8)
