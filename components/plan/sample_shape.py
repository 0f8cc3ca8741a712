"""The longest record a run can see, in tokens: what the processor makes of a screenshot
at `prepare.max_image_side`, plus the prompt's text.

Peak memory is set by the longest batch, so the plan sizes every record as the worst
case: a square screenshot at the largest side prepare keeps, which MiniCPM-V's slicing
cuts into the most slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUPPORTED_FAMILIES = ("minicpmv4_6",)


@dataclass(frozen=True)
class SampleShape:
    image_side: int
    slices: int
    image_tokens: int
    text_tokens: int
    # Image tokens that carry vision features (the rest are the processor's markers).
    placeholders: int
    # The processor's vision inputs for one record, as the family's collate packs them.
    patches: int
    target_sizes: list[tuple[int, int]]

    @property
    def tokens(self) -> int:
        return self.image_tokens + self.text_tokens


def worst_case_shape(
    family: str, preprocessor: dict[str, Any], image_side: int, text_tokens: int
) -> SampleShape:
    if family not in SUPPORTED_FAMILIES:
        raise NotImplementedError(
            f"the planner models {', '.join(SUPPORTED_FAMILIES)}; family {family!r} is not"
        )
    from PIL import Image
    from transformers.models.minicpmv4_6.image_processing_minicpmv4_6 import (
        MiniCPMV4_6ImageProcessor,
    )

    settings = {k: v for k, v in preprocessor.items() if not k.endswith(("_type", "_class"))}
    processor = MiniCPMV4_6ImageProcessor(**settings)
    out = processor(images=[Image.new("RGB", (image_side, image_side))], return_tensors="pt")
    sizes = [tuple(int(v) for v in row) for row in out["target_sizes"].tolist()]
    divisor = 4 if processor.downsample_mode == "4x" else 16
    rows = out["grids"][0][0]
    slices = len(sizes) - 1
    # Placeholders, as the processor writes them: <image>…</image>, then per slice
    # <slice>…</slice>, rows joined by newlines, and the image id <image_id>0</image_id>.
    markers = 2 + 2 * slices + max(int(rows) - 1, 0) + (3 if processor.use_image_id else 0)
    placeholders = sum(h * w // divisor for h, w in sizes)
    return SampleShape(
        image_side=image_side,
        slices=slices,
        image_tokens=placeholders + markers,
        text_tokens=text_tokens,
        placeholders=placeholders,
        patches=int(out["pixel_values"].shape[-1]),
        target_sizes=sizes,
    )
