"""The synthetic survey: deterministic, correctly georeferenced, with DJI-style metadata."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
from PIL import Image

from workbench.synthetic import Camera, Survey, enu_to_latlon, render, write_survey

SURVEY = Survey(lines=2, shots_per_line=3, camera=Camera(width=300, height=200))


def _dms_to_deg(dms, ref: str) -> float:
    value = float(dms[0]) + float(dms[1]) / 60 + float(dms[2]) / 3600
    return -value if ref in ("S", "W") else value


def test_rendering_is_deterministic(tmp_path: Path) -> None:
    first = write_survey(tmp_path / "a", SURVEY)
    second = write_survey(tmp_path / "b", SURVEY)
    assert [hashlib.md5(p.read_bytes()).hexdigest() for p in first] == [hashlib.md5(p.read_bytes()).hexdigest() for p in second]
    assert len(first) == 6


def test_exif_and_xmp_carry_position_and_gimbal(tmp_path: Path) -> None:
    paths = write_survey(tmp_path, SURVEY)
    for path, shot in zip(paths, SURVEY.shots()):
        image = Image.open(path)
        exif = image.getexif()
        gps = exif.get_ifd(0x8825)
        assert abs(_dms_to_deg(gps[2], gps[1]) - shot.lat) < 1e-7
        assert abs(_dms_to_deg(gps[4], gps[3]) - shot.lon) < 1e-7
        assert float(gps[6]) == shot.absolute_altitude
        assert exif[0x010F] == "DJI"
        assert exif.get_ifd(0x8769)[0xA405] == 24
        xmp = image.info["xmp"].decode()
        assert 'drone-dji:GimbalPitchDegree="-90.00"' in xmp
        assert f'drone-dji:RelativeAltitude="+{shot.relative_altitude:.2f}"' in xmp
        assert f'drone-dji:GimbalYawDegree="{shot.yaw:+.2f}"' in xmp


def test_overlapping_images_see_the_same_ground() -> None:
    shots = SURVEY.shots()
    gsd = SURVEY.camera.gsd(SURVEY.altitude)
    a, b = shots[0], shots[1]  # consecutive shots on the first line, same yaw
    pixels_a, pixels_b = render(a, SURVEY), render(b, SURVEY)
    shift = round((b.north - a.north) / gsd)
    assert 0 < shift < SURVEY.camera.height
    # b is `shift` rows further north: its row r sees the ground of row r - shift of a
    same = np.all(pixels_b[shift:] == pixels_a[:-shift], axis=-1).mean()
    assert same > 0.99  # (a few pixels sit on cell edges where float rounding differs)
    assert np.all(pixels_b[:-shift] == pixels_a[shift:], axis=-1).mean() < 0.2  # the wrong way round differs
    c = shots[5]  # second line flies back south: yaw 180 turns the image around
    assert c.yaw == 180.0 and a.yaw == 0.0


def test_local_frame_matches_geodesy() -> None:
    lat, lon = enu_to_latlon(0.0, 1000.0, -6.7924, 39.2083)
    assert abs((lat + 6.7924) * 110_574 - 1000) < 5  # ~110.57 km per degree of latitude near the equator
    lat, lon = enu_to_latlon(1000.0, 0.0, -6.7924, 39.2083)
    assert abs((lon - 39.2083) * 111_320 * math.cos(math.radians(6.7924)) - 1000) < 5


def test_gsd_and_overlap() -> None:
    camera = Camera()
    assert abs(camera.gsd(60.0) - 0.075) < 1e-9
    shots = Survey().shots()
    assert len(shots) == 18 and len({s.name for s in shots}) == 18
    assert all(later.time > earlier.time for earlier, later in zip(shots, shots[1:]))
