"""Still images for a vision LLM: video frames encoded, and image files read as frames.

:func:`encode_frame` turns an ``rtc.VideoFrame`` (any of the SDK's buffer formats) into an
:class:`~flowkit.messages.Image`: converted to RGB (YUV buffers by the SDK's libyuv, packed
RGBA-like ones by Pillow, since the SDK converts only from YUV), scaled down so its longer
side is at most ``max_size`` pixels, and encoded by Pillow. A vision model resizes what it
is given anyway (OpenAI's to 768 or 2048 pixels on a side), so sending more only costs
upload time and tokens.

:func:`load_frame` reads an image file as a video frame, for a still camera offline
(``flowkit run --camera photo.jpg``) and in tests.

Pillow is imported on first use, so a graph without video does not load it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

from livekit import rtc

from flowkit.messages import Image

__all__ = ["IMAGE_FORMATS", "ImageFormat", "encode_frame", "load_frame"]

ImageFormat = Literal["JPEG", "PNG", "WEBP"]
"""The encodings :func:`encode_frame` writes."""

IMAGE_FORMATS: dict[str, str] = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
"""The MIME type of each :data:`ImageFormat`."""


# The packed four-byte buffer types, as Pillow's raw modes name their byte order.
_PACKED: dict[int, str] = {
    rtc.VideoBufferType.RGBA: "RGBA",
    rtc.VideoBufferType.BGRA: "BGRA",
    rtc.VideoBufferType.ARGB: "ARGB",
    rtc.VideoBufferType.ABGR: "ABGR",
}


def encode_frame(
    frame: rtc.VideoFrame,
    *,
    max_size: int = 1024,
    image_format: ImageFormat = "JPEG",
    quality: int = 75,
    source: str = "camera",
    captured_at: float = 0.0,
) -> Image:
    """Encode a video frame as an image for the LLM.

    CPU-bound (10-15 ms for a 720p frame as JPEG, ``bench/images.py``): call it off the loop
    (``asyncio.to_thread``), as :class:`~flowkit.nodes.video.ImageEncoder` does.

    Args:
        frame: The frame, in any buffer format the SDK can convert.
        max_size: The longest side, in pixels, after scaling down (never up).
        image_format: ``"JPEG"``, ``"PNG"`` or ``"WEBP"``.
        quality: JPEG and WebP quality, 1-95.
        source: Where the frame was seen (kept on the image).
        captured_at: When the frame arrived (kept on the image).

    Raises:
        ValueError: A parameter is out of range, or the frame is empty.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(
            f"image format {image_format!r} is not one of {sorted(IMAGE_FORMATS)}; "
            "JPEG is what vision APIs take most cheaply"
        )
    if max_size < 16:
        raise ValueError(f"max_size={max_size} is too small to see anything; use 256 or more")
    if not 1 <= quality <= 95:
        raise ValueError(f"quality={quality} is outside 1-95 (Pillow's useful range); try 75")
    if frame.width <= 0 or frame.height <= 0:
        raise ValueError(f"the video frame is {frame.width}x{frame.height}: nothing to encode")
    from PIL import Image as PILImage  # here, not at the top: see the module's docs

    size = (frame.width, frame.height)
    packed = _PACKED.get(frame.type)
    if frame.type == rtc.VideoBufferType.RGB24:
        picture = PILImage.frombuffer("RGB", size, bytes(frame.data), "raw", "RGB", 0, 1)
    elif packed is not None:  # the SDK converts planar (YUV) buffers only
        picture = PILImage.frombuffer("RGBA", size, bytes(frame.data), "raw", packed, 0, 1)
        picture = picture.convert("RGB")
    else:
        rgb = frame.convert(rtc.VideoBufferType.RGB24)
        picture = PILImage.frombuffer("RGB", size, bytes(rgb.data), "raw", "RGB", 0, 1)
    picture.thumbnail((max_size, max_size), PILImage.Resampling.BILINEAR)
    out = io.BytesIO()
    options = {} if image_format == "PNG" else {"quality": quality}
    picture.save(out, image_format, **options)
    return Image(
        data=out.getvalue(),
        mime_type=IMAGE_FORMATS[image_format],
        width=picture.width,
        height=picture.height,
        source=source,
        captured_at=captured_at,
    )


def load_frame(path: str | os.PathLike[str]) -> rtc.VideoFrame:
    """Read an image file (any format Pillow opens) as an RGBA video frame.

    Raises:
        FileNotFoundError: There is no such file.
        ValueError: The file is not an image Pillow can read; the message names it.
    """
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no image file {str(file)!r}; give the path of a JPEG or PNG")
    try:
        with PILImage.open(file) as opened:
            rgba = opened.convert("RGBA")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(
            f"{str(file)!r} is not an image Pillow can read ({exc}); give a JPEG, PNG or WebP"
        ) from None
    return rtc.VideoFrame(rgba.width, rgba.height, rtc.VideoBufferType.RGBA, rgba.tobytes())
