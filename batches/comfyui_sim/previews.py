"""Latent previews: the small JPEG that ComfyUI sends as a binary /ws frame after each sampler step.

Real previews (latent2rgb, taesd) go from noise to the picture as the sampler converges; this one
fades from grey noise to a colour, so a viewer can tell successive steps apart.
"""
from __future__ import annotations

import io
import json
import struct

import numpy as np
from PIL import Image

PREVIEW_SIZE = 64  # latent2rgb previews are latent-sized (1/8 of the image); small keeps tests fast
BINARY_PREVIEW_IMAGE = 1  # protocol.BinaryEventTypes.PREVIEW_IMAGE: uint32 format (1 = JPEG), bytes
BINARY_PREVIEW_IMAGE_WITH_METADATA = 4  # uint32 metadata length, JSON metadata, bytes


def preview_jpeg(step: int, total: int) -> bytes:
    """A PREVIEW_SIZE square JPEG for `step` of `total`: less noise at every step."""
    done = step / total if total else 1.0
    rng = np.random.default_rng(step)
    noise = rng.integers(0, 256, (PREVIEW_SIZE, PREVIEW_SIZE, 3), dtype=np.uint8).astype(np.float32)
    target = np.zeros_like(noise)
    target[..., 0], target[..., 1], target[..., 2] = 70, 150, 90
    target[PREVIEW_SIZE // 4: 3 * PREVIEW_SIZE // 4, PREVIEW_SIZE // 4: 3 * PREVIEW_SIZE // 4] = (230, 200, 80)
    pixels = (noise * (1.0 - done) + target * done).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="JPEG", quality=80)
    return out.getvalue()


def preview_frame(image: bytes, metadata: dict, *, with_metadata: bool) -> bytes:
    """The binary frame: type 4 for clients that sent the supports_preview_metadata flag, else type 1."""
    if with_metadata:
        meta = json.dumps(metadata).encode()
        return struct.pack(">II", BINARY_PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + image
    return struct.pack(">II", BINARY_PREVIEW_IMAGE, 1) + image
