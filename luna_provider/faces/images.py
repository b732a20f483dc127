"""Decoding source images and encoding samples."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: images with more pixels are refused before they are decoded (a 64 MP photo is about 190 MB as RGB)
MAX_PIXELS = 64_000_000


class ImageDecodeError(ValueError):
    """The bytes are not an image this service can read."""


def decode_image(data: bytes) -> np.ndarray:
    """Decode an image file into an RGB ``uint8`` array, turned upright by its EXIF orientation."""
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ImageDecodeError(f"{width}x{height} pixels is more than {MAX_PIXELS}")
            upright = ImageOps.exif_transpose(image)
            rgb = upright.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, ImageDecodeError):
            raise
        raise ImageDecodeError(str(error) or type(error).__name__) from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def encode_png(image: np.ndarray) -> bytes:
    """Encode an RGB ``uint8`` array losslessly."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
