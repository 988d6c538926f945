"""The seam misfit: SIFT features of overlapping renderings on a mosaic grid, against known shifts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from workbench.engines.seams import SeamRecorder, consistent, rendering_features

RESOLUTION = 0.05  # metres per grid pixel


def _ground(size: int = 1400, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2.5))
    grey = np.asarray(noise, dtype=np.float32)
    grey = (grey - grey.mean()) / grey.std() * 45 + 128
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _recorder(tmp_path: Path, ground: np.ndarray, shift: tuple[int, int]) -> SeamRecorder:
    """Image a renders the ground at its place; image b renders it displaced by ``shift`` (rows, cols) on the grid."""
    recorder = SeamRecorder(tmp_path / "seams", RESOLUTION)
    a = ground[100:700, 100:700]
    b = ground[400 - shift[0] : 1000 - shift[0], 300 - shift[1] : 900 - shift[1]]
    seen = np.ones(a.shape[:2], dtype=bool)
    recorder.add(rendering_features("a", 100, 100, a, seen))
    recorder.add(rendering_features("b", 400, 300, b, seen))
    return recorder


@pytest.mark.parametrize("shift", [(0, 0), (12, -7), (-30, 45)])
def test_misfit_is_the_shift_between_renderings(tmp_path: Path, shift: tuple[int, int]) -> None:
    report = _recorder(tmp_path, _ground(), shift).report()
    assert report.unmeasured == 0 and len(report.pairs) == 1
    [pair] = report.pairs
    assert pair.median_m == pytest.approx(np.hypot(*shift) * RESOLUTION, abs=0.3 * RESOLUTION)
    assert pair.east_m == pytest.approx(shift[1] * RESOLUTION, abs=0.3 * RESOLUTION)
    assert pair.north_m == pytest.approx(-shift[0] * RESOLUTION, abs=0.3 * RESOLUTION)
    summary = report.summary()
    assert summary["pairs"] == 1 and summary["median_m"] == pytest.approx(pair.median_m, abs=1e-3)


def test_featureless_overlaps_are_counted_as_unmeasured(tmp_path: Path) -> None:
    flat = np.full((1400, 1400, 3), 128, dtype=np.uint8)
    report = _recorder(tmp_path, flat, (0, 0)).report()
    assert report.pairs == [] and report.unmeasured == 1 and report.summary()["median_m"] is None


def test_where_the_rendering_ends_gives_no_features(tmp_path: Path) -> None:
    ground = _ground()[:600, :600]
    seen = np.zeros((600, 600), dtype=bool)
    seen[:, :300] = True
    features = rendering_features("half", 0, 0, ground, seen)
    assert len(features.points) > 20 and features.points[:, 0].max() < 300  # none on or past the edge


def test_consistent_keeps_the_matches_of_one_similarity() -> None:
    rng = np.random.default_rng(1)
    source = rng.random((60, 2)) * 500
    angle = np.radians(8)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = source @ rotation.T * 1.02 + [30, -12]
    target[:15] = rng.random((15, 2)) * 500  # wrong matches
    inliers = consistent(source, target, tolerance=2.0)
    assert inliers[15:].all() and not inliers[:15].any()
