"""Reading an image for finishing: PNG bytes or a Pillow image in, an RGBA array out, every way
it can fail turned into a SpriteError that names the image."""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from batches.sprites.errors import SpriteError


def to_rgba(image: "Image.Image | bytes", *, name: str = "image") -> np.ndarray:
    """(h, w, 4) uint8; fully transparent pixels have RGB 0 so they all compare equal."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: a bomb either way.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(image, (bytes, bytearray, memoryview)):
                image = Image.open(io.BytesIO(bytes(image)))
            elif not isinstance(image, Image.Image):
                raise SpriteError(f"{name}: expected PNG bytes or a Pillow image, got {type(image).__name__}")
            limit = Image.MAX_IMAGE_PIXELS
            if limit and image.width * image.height > limit:
                raise Image.DecompressionBombError(f"{image.width}x{image.height}")
            image.load()
            alpha = "A" in image.getbands() or "transparency" in image.info
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise SpriteError(f"{name}: {image.mode} pixels (16-bit or float) are not sprite material: "
                                  f"save it as an 8-bit RGB or RGBA PNG")
            rgba = np.array(image.convert("RGBA"), dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SpriteError(f"{name}: too many pixels to be a sprite (over {Image.MAX_IMAGE_PIXELS:,}, "
                          f"Pillow's decompression-bomb limit): give a 1024x1024-class image") from None
    except UnidentifiedImageError:
        raise SpriteError(f"{name}: not an image Pillow can read: give a PNG (or JPEG/WebP)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, SpriteError):
            raise
        raise SpriteError(f"{name}: the image is damaged or truncated ({exc}): export it again") from None
    if rgba.shape[0] < 1 or rgba.shape[1] < 1:
        raise SpriteError(f"{name}: the image is empty")
    if alpha:
        rgba[rgba[..., 3] == 0] = 0
    return rgba
