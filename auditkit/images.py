"""Image cells: how a picture travels in audit.json (``{"kind": "images"}`` gallery figures).

Below both the probes, which hand the report their examples as data, and ``auditkit.render``,
which draws them: an image is a list of numbers when small, else an 8-bit PNG ``data:`` URI,
the very bytes the report embeds. Pure encoding: no HTML, no I/O.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import numpy as np

MAX_IMAGE_SIDE = 512


#: An image cell with more values than this travels as a PNG ``data:`` URI (``image_cell``):
#: as number lists, six 224×224 RGB gallery rows made a 127 MB audit.json that took 23 s to
#: write. Smaller images (8×8 digits, 28×28 grey) stay readable number lists.
PIXEL_LIST_MAX_VALUES = 1024


PNG_URI = "data:image/png;base64,"


def image_array(pixels: Any) -> np.ndarray:
    """Pixels as an H×W (grey) or H×W×3 (RGB) float array; also accepts 1×H×W and 3×H×W."""
    array = np.asarray(pixels, dtype=np.float64)  # None (a NaN in audit.json) becomes NaN
    if array.ndim == 3 and array.shape[-1] not in (1, 3) and array.shape[0] in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3) or array.size == 0:
        raise ValueError(f"pixels of shape {array.shape}: expected H×W or H×W×3")
    return array


def png_bytes(pixels: Any) -> bytes:
    """Encode pixels (floats in [0, 1], see :func:`image_array`) as an 8-bit PNG.

    Hand-rolled with zlib so the report needs no imaging library and the bytes are stable.
    """
    array = image_array(pixels)
    height, width = array.shape[:2]
    if max(height, width) > MAX_IMAGE_SIDE:
        raise ValueError(f"a {height}×{width} image is too large for the report")
    levels = np.rint(np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)
    color_type = 0 if levels.ndim == 2 else 2
    raw = b"".join(b"\x00" + row.tobytes() for row in levels.reshape(height, -1))

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + tag
            + payload
            + struct.pack(">I", zlib.crc32(tag + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def png_data_uri(pixels: Any) -> str:
    return PNG_URI + base64.b64encode(png_bytes(pixels)).decode("ascii")


def image_cell(label: str, pixels: Any) -> dict[str, Any]:
    """A gallery cell (``{"kind": "images"}`` figures) for H×W or H×W×3 floats in [0, 1]:
    ``pixels`` as number lists (3 decimals) for a small image, else ``png``, an 8-bit PNG
    ``data:`` URI — the very bytes the report embeds. An image wider or taller than
    ``MAX_IMAGE_SIDE`` is averaged down by a whole factor to fit."""
    array = image_array(pixels)
    factor = -(-max(array.shape[:2]) // MAX_IMAGE_SIDE)
    if factor > 1:
        h, w = (array.shape[0] // factor) * factor, (array.shape[1] // factor) * factor
        array = array[:h, :w].reshape(h // factor, factor, w // factor, factor, *array.shape[2:])
        array = array.mean(axis=(1, 3))
    if array.size <= PIXEL_LIST_MAX_VALUES:
        return {"label": label, "pixels": np.round(array, 3).tolist()}
    return {"label": label, "png": png_data_uri(array)}
