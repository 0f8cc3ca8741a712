"""Decode one record's image bytes into an RGB PNG, or say precisely why it cannot be.

Images are decoded here, one by one, instead of by `datasets`: a single truncated or
mislabelled file must quarantine its record, not abort the run.

Normalisation, so later steps see one kind of image:
- an RGB PNG is kept byte for byte (no re-encode);
- transparency (RGBA, LA, PA, P with a transparent colour) is composited over white, the
  background a browser gives a transparent page;
- 16-bit greyscale (I;16*) is scaled to 8 bits (value / 257); 32-bit integer greyscale
  (I) likewise when it holds values above 255; float greyscale (F) is clipped to 0..255;
- every other mode (L, 1, P, CMYK, YCbCr, LAB, HSV) goes through Pillow's RGB conversion.
Huge images are kept (prepare bounds their size); only beyond MAX_PIXELS is a file
treated as a decompression bomb.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image

# A 4,000 x 100,000 full-page screenshot still fits; Pillow's own default is ~89 M pixels.
MAX_PIXELS = 400_000_000
PNG_COMPRESS_LEVEL = 6
WHITE = (255, 255, 255)
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
OBJECT_REPR = re.compile(r" ?<[^<>]* at 0x[0-9a-fA-F]+>")


class ImageDecodeError(ValueError):
    """The bytes are not an image Pillow can fully decode."""


@dataclass(frozen=True)
class NormalisedImage:
    """An image as ingest stores it: RGB PNG bytes, plus what was done to get there."""

    png: bytes
    width: int
    height: int
    source_format: str
    source_mode: str

    @property
    def converted(self) -> bool:
        return not (self.source_format == "PNG" and self.source_mode == "RGB")


@contextmanager
def pixel_limit(limit: int) -> Iterator[None]:
    """Raise Pillow's decompression-bomb limit for the duration of the block only."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB (see the module docstring for the rules)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image, dtype=np.int64)
        if mode in SIXTEEN_BIT_MODES or values.max(initial=0) > 255:
            values = np.rint(values.clip(0, 65535) / 257)
        return Image.fromarray(values.clip(0, 255).astype(np.uint8), mode="L").convert("RGB")
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        values = np.nan_to_num(values, nan=0.0).clip(0, 255)
        return Image.fromarray(np.rint(values).astype(np.uint8), mode="L").convert("RGB")
    return image.convert("RGB")


def normalise_image(data: bytes) -> NormalisedImage:
    """Fully decode `data` and return it as RGB PNG bytes; ImageDecodeError if it cannot."""
    if not data:
        raise ImageDecodeError("image bytes are empty")
    try:
        with pixel_limit(MAX_PIXELS):
            with Image.open(io.BytesIO(data)) as probe:
                probe.verify()  # structural checks (PNG CRCs) that load() skips
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # decodes every pixel: catches truncated data
                source_format, source_mode = image.format or "unknown", image.mode
                width, height = image.size
                if source_format == "PNG" and source_mode == "RGB":
                    return NormalisedImage(data, width, height, source_format, source_mode)
                rgb = to_rgb(image)
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(f"more than {MAX_PIXELS:,} pixels: {error}") from error
    except Exception as error:  # Pillow raises many types for corrupt data; all mean the same
        message = OBJECT_REPR.sub("", str(error))  # no memory addresses in the manifest
        raise ImageDecodeError(f"{type(error).__name__}: {message}") from error
    if width < 1 or height < 1:
        raise ImageDecodeError(f"image is {width}x{height} pixels")
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return NormalisedImage(buffer.getvalue(), width, height, source_format, source_mode)
