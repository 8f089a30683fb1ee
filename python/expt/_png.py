"""A small PNG encoder (stdlib zlib) for images given as arrays: HxW or HxWxC, C in 1..4."""

import struct
import zlib

_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # gray, gray+alpha, RGB, RGBA


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode(pixels, height, width, channels):
    """PNG bytes of 8-bit pixels (bytes of height * width * channels, row-major)."""
    if channels not in _COLOR_TYPE:
        raise ValueError("expt: an image needs 1, 2, 3 or 4 channels, got %d" % channels)
    if height <= 0 or width <= 0:
        raise ValueError("expt: an image needs a positive width and height")
    stride = width * channels
    if len(pixels) != height * stride:
        raise ValueError("expt: %d bytes of pixels for a %dx%dx%d image" % (
            len(pixels), height, width, channels))
    # Filter type 0 (none) in front of every row.
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE[channels], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b""))


def from_array(img):
    """PNG bytes of a NumPy-like array: HxW or HxWxC; uint8, or floats in [0, 1]."""
    import numpy as np

    a = np.asarray(img)
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            a = np.clip(a, 0.0, 1.0) * 255.0 + 0.5
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError("expt: an image array must be HxW or HxWxC, got shape %r" % (a.shape,))
    h, w, c = a.shape
    return encode(np.ascontiguousarray(a).tobytes(), h, w, c)
