"""Outline the target element on the screenshot, the way the captioner sees it.

Shared by training data, evaluation and serving, so all three draw exactly the same
box. The functions return new images and never touch their input.

- The image is first bounded so its longest side is at most `max_side` (Lanczos
  downscaling keeps small UI text legible); the box is scaled with it.
- The magenta (255, 0, 255) stroke lies just outside the element, so it never hides the
  element itself, and is `stroke_width` pixels wide: about 1/256 of the longest side,
  at least 2, so it stays visible after the model's own resizing.
- A black stroke runs outside the magenta one. Black has the highest contrast with
  magenta (about 6.7:1), so the box stays visible on magenta or pink backgrounds; on
  dark backgrounds the magenta itself stands out.
- Where the element touches the image border the stroke is moved inside the image
  rather than lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw

MAGENTA = (255, 0, 255)
OUTLINE = (0, 0, 0)
DEFAULT_MAX_SIDE = 1344  # three 448-pixel MiniCPM-V slices along the longest side
STROKE_FRACTION = 1 / 256
MIN_STROKE = 2


def stroke_width(width: int, height: int) -> int:
    return max(MIN_STROKE, round(max(width, height) * STROKE_FRACTION))


def outline_width(stroke: int) -> int:
    return max(1, stroke // 2)


def bound_image(image: Image.Image, max_side: int | None) -> tuple[Image.Image, float]:
    """An RGB copy of `image` whose longest side is at most `max_side`, and the scale used."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    longest = max(rgb.size)
    if max_side is None or longest <= max_side:
        return (rgb.copy() if rgb is image else rgb), 1.0
    scale = max_side / longest
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), scale


def scale_bbox(bbox: Sequence[float], scale: float) -> list[float]:
    return [float(v) * scale for v in bbox]


def _ring(bbox: Sequence[float], gap: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Inclusive pixel rectangle `gap` pixels outside the box, clamped to the image."""
    x0, y0, x1, y1 = bbox
    left = max(0, math.floor(x0) - gap)
    top = max(0, math.floor(y0) - gap)
    right = min(width - 1, math.ceil(x1) - 1 + gap)
    bottom = min(height - 1, math.ceil(y1) - 1 + gap)
    return left, top, max(left, right), max(top, bottom)


def outline_box(image: Image.Image, bbox: Sequence[float]) -> None:
    """Draw the magenta box (with its black outer stroke) onto `image`, in place."""
    stroke = stroke_width(*image.size)
    outer = outline_width(stroke)
    draw = ImageDraw.Draw(image)
    draw.rectangle(_ring(bbox, stroke + outer, *image.size), outline=OUTLINE, width=outer)
    draw.rectangle(_ring(bbox, stroke, *image.size), outline=MAGENTA, width=stroke)


def draw_target_box(
    image: Image.Image, bbox: Sequence[float], max_side: int | None = DEFAULT_MAX_SIDE
) -> tuple[Image.Image, list[float]]:
    """A bounded RGB copy of `image` with the target outlined, and the box in its pixels."""
    bounded, scale = bound_image(image, max_side)
    scaled = scale_bbox(bbox, scale)
    outline_box(bounded, scaled)
    return bounded, scaled
