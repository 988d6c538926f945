"""Each maker's height, orientation and camera tags, from small XMP packets written here the way each maker
writes them (attributes, elements, structs, other prefixes for the same namespace)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from workbench.imagery import makers
from workbench.imagery.footprint import camera_pose
from workbench.imagery.metadata import ImageMetadata, read_metadata


def _jpeg(xmp: str | None, make: str = "Maker", model: str = "Cam", focal: float = 4.0, focal_35mm: int | None = 24,
          direction: float | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    details = {0x920A: focal}
    if focal_35mm:
        details[0xA405] = focal_35mm
    exif[0x8769] = details
    gps = {0x0001: "N", 0x0002: (41.0, 2.0, 3.0), 0x0003: "W", 0x0004: (83.0, 18.0, 27.0), 0x0005: b"\x00",
           0x0006: 300.0}
    if direction is not None:
        gps.update({0x0010: "T", 0x0011: direction})
    exif[0x8825] = gps
    buffer = io.BytesIO()
    extra = {"xmp": xmp.encode()} if xmp else {}
    Image.new("RGB", (64, 48), (90, 120, 60)).save(buffer, "JPEG", exif=exif.tobytes(), **extra)
    return buffer.getvalue()


def _read(data: bytes) -> ImageMetadata:
    return read_metadata("x.jpg", len(data), lambda start, end: data[start:end])


def _packet(body: str, namespaces: dict[str, str]) -> str:
    declarations = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in namespaces.items())
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" {declarations} {body}</rdf:Description></rdf:RDF></x:xmpmeta>')


def test_dji_attributes() -> None:
    meta = _read(_jpeg(_packet('drone-dji:RelativeAltitude="+61.20" drone-dji:GimbalYawDegree="-135.5" '
                               'drone-dji:GimbalPitchDegree="-89.9" drone-dji:GimbalRollDegree="+0.00" '
                               'drone-dji:FlightYawDegree="-130.1">', {"drone-dji": makers.DJI})))
    assert meta.relative_altitude == pytest.approx(61.2) and meta.height_source == "xmp-dji"
    assert meta.gimbal_yaw == pytest.approx(224.5) and meta.yaw_source == "xmp-dji"  # -135.5 clockwise from north
    assert meta.gimbal_pitch == pytest.approx(-89.9) and meta.flight_yaw == pytest.approx(229.9)


def test_autel_writes_dji_namespace_under_another_prefix() -> None:
    meta = _read(_jpeg(_packet('drone:RelativeAltitude="45.0" drone:GimbalPitchDegree="-90" drone:GimbalYawDegree="12">',
                               {"drone": makers.DJI})))
    assert meta.relative_altitude == 45.0 and meta.gimbal_yaw == 12.0 and meta.gimbal_pitch == -90.0


def test_sensefly_elements() -> None:
    body = ("><sensefly:Height>71.87</sensefly:Height><sensefly:Heading>60.58</sensefly:Heading>"
            "<sensefly:PitchAngle>0.73</sensefly:PitchAngle><sensefly:RollAngle>-3.43</sensefly:RollAngle>"
            "<sensefly:AltitudeWGS84>283.9</sensefly:AltitudeWGS84>")
    meta = _read(_jpeg(_packet(body, {"sensefly": makers.SENSEFLY})))
    assert meta.relative_altitude == pytest.approx(71.87) and meta.height_source == "xmp-sensefly"
    assert meta.flight_yaw == pytest.approx(60.58) and meta.yaw_source == "xmp-sensefly"
    assert meta.flight_roll == pytest.approx(-3.43) and meta.gimbal_yaw is None
    pose = camera_pose(meta)
    assert pose is not None and pose.forward[2] == pytest.approx(-1.0)  # a fixed camera is taken as nadir
    assert pose.up[0] == pytest.approx(0.8711, abs=1e-3) and pose.up[1] == pytest.approx(0.4911, abs=1e-3)  # 60.58 deg


def test_parrot_camera_angles() -> None:
    meta = _read(_jpeg(_packet('drone-parrot:CameraPitchDegree="-51.99" drone-parrot:CameraYawDegree="146.85" '
                               'drone-parrot:CameraRollDegree="0.1">', {"drone-parrot": makers.PARROT})))
    assert meta.gimbal_pitch == pytest.approx(-51.99) and meta.gimbal_yaw == pytest.approx(146.85)
    assert meta.yaw_source == "xmp-parrot" and meta.relative_altitude is None


def test_pix4d_camera_namespace_pitch_zero_is_nadir() -> None:
    # Parrot's own example: Camera:Pitch 38.01 next to CameraPitchDegree -51.99 (90 degrees apart)
    meta = _read(_jpeg(_packet('Camera:Pitch="38.011101" Camera:Yaw="-146.95" Camera:Roll="0" '
                               'Camera:AboveGroundAltitude="80.5">', {"Camera": makers.PIX4D_CAMERA})))
    assert meta.gimbal_pitch == pytest.approx(-51.988899) and meta.gimbal_yaw == pytest.approx(213.05)
    assert meta.relative_altitude == 80.5 and meta.height_source == "xmp-camera" and meta.yaw_source == "xmp-camera"


def test_pix4d_namespace_without_trailing_slash() -> None:
    meta = _read(_jpeg(_packet('Camera:Pitch="0" Camera:Yaw="90">', {"Camera": makers.PIX4D_CAMERA.rstrip("/")})))
    assert meta.gimbal_pitch == -90.0 and meta.gimbal_yaw == 90.0


@pytest.mark.parametrize("struct", [
    '<drone-skydio:CameraOrientationNED drone-skydio:Yaw="-20.5" drone-skydio:Pitch="-88.0" drone-skydio:Roll="0.5"/>',
    '<drone-skydio:CameraOrientationNED rdf:parseType="Resource"><drone-skydio:Yaw>-20.5</drone-skydio:Yaw>'
    '<drone-skydio:Pitch>-88.0</drone-skydio:Pitch><drone-skydio:Roll>0.5</drone-skydio:Roll>'
    '</drone-skydio:CameraOrientationNED>',
])
def test_skydio_orientation_struct_as_attributes_or_elements(struct: str) -> None:
    meta = _read(_jpeg(_packet(">" + struct, {"drone-skydio": makers.SKYDIO})))
    assert meta.gimbal_yaw == pytest.approx(339.5) and meta.gimbal_pitch == -88.0 and meta.gimbal_roll == 0.5
    assert meta.yaw_source == "xmp-skydio"


def test_exif_image_direction_when_no_xmp_yaw() -> None:
    meta = _read(_jpeg(None, direction=275.5))
    assert meta.gimbal_yaw == 275.5 and meta.yaw_source == "exif-direction"
    assert meta.relative_altitude is None and meta.altitude == 300.0


def test_xmp_yaw_wins_over_exif_direction() -> None:
    meta = _read(_jpeg(_packet('drone-dji:GimbalYawDegree="10">', {"drone-dji": makers.DJI}), direction=275.5))
    assert meta.gimbal_yaw == 10.0 and meta.yaw_source == "xmp-dji"


def test_malformed_xmp_is_still_read() -> None:
    packet = _packet('drone-dji:RelativeAltitude="33.5" drone-dji:GimbalYawDegree="7">', {"drone-dji": makers.DJI})
    meta = _read(_jpeg(packet.replace("</rdf:RDF>", "<unclosed>")))
    assert meta.relative_altitude == 33.5 and meta.gimbal_yaw == 7.0 and meta.error is None


def test_sensor_width_from_the_camera_table() -> None:
    meta = _read(_jpeg(None, make="Canon", model="Canon PowerShot S110", focal=5.2, focal_35mm=None))
    assert meta.sensor_width_mm == 7.53 and meta.sensor_source == "camera-table"
    unknown = _read(_jpeg(None, make="Nobody", model="Unknown 1", focal=5.2, focal_35mm=None))
    assert unknown.sensor_width_mm is None and unknown.sensor_source is None
    from_35mm = _read(_jpeg(None, focal=4.0, focal_35mm=24))
    assert from_35mm.sensor_source == "exif-35mm" and from_35mm.sensor_width_mm == pytest.approx(4.0 / 24 * 43.2666 * 0.8, rel=1e-3)


def test_every_table_row_has_a_source() -> None:
    assert all(tag.source and tag.label.startswith("xmp-") for tag in makers.XMP_TAGS)
    assert all(source for _, source in makers.SENSOR_WIDTHS_MM.values())
