"""flowkit.images: video frames encoded for a vision LLM, and image files read as frames."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc
from PIL import Image as PILImage

from flowkit.images import encode_frame, load_frame


def solid_frame(
    width: int, height: int, rgb: tuple[int, int, int], kind: int = rtc.VideoBufferType.I420
) -> rtc.VideoFrame:
    """A frame of one colour, in the buffer type the SDK's decoder gives (I420) by default."""
    pixels = np.empty((height, width, 4), np.uint8)
    pixels[..., :3] = rgb
    pixels[..., 3] = 255
    rgba = rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, pixels.tobytes())
    return rgba if kind == rtc.VideoBufferType.RGBA else rgba.convert(kind)  # type: ignore[arg-type]


def decoded(data: bytes) -> PILImage.Image:
    picture = PILImage.open(io.BytesIO(data))
    picture.load()
    return picture


def test_a_frame_is_scaled_down_keeping_its_shape_and_encoded_as_jpeg() -> None:
    image = encode_frame(solid_frame(1280, 720, (200, 40, 40)), max_size=640, captured_at=3.5)
    assert (image.width, image.height, image.mime_type) == (640, 360, "image/jpeg")
    picture = decoded(image.data)
    assert picture.format == "JPEG" and picture.size == (640, 360)
    # I420 holds colour at quarter resolution and JPEG is lossy: close, not equal
    mean = np.asarray(picture).reshape(-1, 3).mean(axis=0)
    assert np.allclose(mean, (200, 40, 40), atol=6), mean
    assert image.captured_at == 3.5 and image.source == "camera"


def test_a_small_frame_is_never_scaled_up_and_png_keeps_every_pixel() -> None:
    frame = solid_frame(64, 48, (10, 120, 250), kind=rtc.VideoBufferType.RGBA)
    image = encode_frame(frame, image_format="PNG", source="screen_share")
    assert (image.width, image.height, image.mime_type) == (64, 48, "image/png")
    assert image.source == "screen_share"
    assert set(map(tuple, np.asarray(decoded(image.data)).reshape(-1, 3))) == {(10, 120, 250)}


def test_the_data_url_is_the_encoded_bytes_in_base64() -> None:
    image = encode_frame(solid_frame(32, 32, (0, 0, 0)), image_format="PNG")
    prefix, payload = image.data_url().split(",", 1)
    assert prefix == "data:image/png;base64"
    assert base64.b64decode(payload) == image.data
    assert "data=" not in repr(image)  # a repr (a log line) does not dump the bytes


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image_format": "GIF"}, "image format 'GIF' is not one of"),
        ({"max_size": 8}, "max_size=8 is too small"),
        ({"quality": 0}, "quality=0 is outside 1-95"),
    ],
)
def test_bad_options_are_refused_with_the_remedy(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_frame(solid_frame(32, 32, (0, 0, 0)), **options)  # type: ignore[arg-type]


def test_an_image_file_is_read_as_an_rgba_frame(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    PILImage.new("RGB", (30, 20), (1, 2, 3)).save(path)
    frame = load_frame(path)
    assert (frame.width, frame.height, frame.type) == (30, 20, rtc.VideoBufferType.RGBA)
    assert bytes(frame.data)[:4] == bytes((1, 2, 3, 255))


def test_a_missing_or_unreadable_image_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no image file .*nothing\.png"):
        load_frame(tmp_path / "nothing.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.png' is not an image Pillow can read"):
        load_frame(text)
