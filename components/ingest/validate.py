"""Record-by-record checks: a record is either kept (normalised) or rejected with a reason.

Checks run in a fixed order (image, bbox, summary, text fields, external_id, duplicate
id) and the first failure is the one reported, so the same bad record always gets the
same quarantine line. Duplicate ids are judged against kept records only: the first
*valid* record with an id keeps it, so a broken first copy cannot take a good second one
down with it.

Normalisation of valid-but-extreme records:
- a box partly outside the image is clipped to it (counted in the manifest);
- bbox in relative units (a column map says so) is scaled to pixels first;
- text fields: None becomes "", numbers become their decimal text, summary and text are
  stripped of surrounding whitespace; html is kept as it is (prepare cleans and cuts it).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.ingest.column_maps import ResolvedColumnMap
from components.ingest.contract import OPTIONAL_TEXT_COLUMNS
from components.ingest.images import ImageDecodeError, NormalisedImage, normalise_image

IMAGE_CACHE_SIZE = 64  # records of one screen share an image: decode it once


class Rejected(Exception):
    """A record fails a check; `field` and `reason` go to the quarantine line."""

    def __init__(self, field: str, reason: str, detail: str = "") -> None:
        super().__init__(f"{field}: {reason}" + (f" ({detail})" if detail else ""))
        self.field = field
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class KeptRecord:
    """A record that passed every check, in the contract's shape."""

    row: int
    fields: dict[str, Any]  # every contract column except image
    image: NormalisedImage
    image_sha256: str  # of the source bytes
    bbox_clipped: bool


def check_bbox(
    value: Any, width: int, height: int, relative: bool = False
) -> tuple[list[float], bool]:
    """The box as 4 finite pixel floats clipped to the image, and whether it was clipped."""
    if value is None:
        raise Rejected("bbox", "missing")
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise Rejected("bbox", "not a list", f"got {type(value).__name__}")
    if len(value) != 4:
        raise Rejected("bbox", "wrong length", f"expected 4 numbers, got {len(value)}")
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError) as error:
        raise Rejected("bbox", "not numbers", str(error)) from error
    if not all(math.isfinite(v) for v in numbers):
        raise Rejected("bbox", "non-finite", str(numbers))
    if relative:
        numbers = [v * s for v, s in zip(numbers, (width, height, width, height), strict=True)]
    x0, y0, x1, y1 = numbers
    if x1 <= x0 or y1 <= y0:
        raise Rejected("bbox", "empty or inverted", f"{numbers} (expected x0 < x1 and y0 < y1)")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise Rejected("bbox", "outside the image", f"{numbers} vs image {width}x{height}")
    clipped = [max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))]
    return clipped, clipped != numbers


def text_value(value: Any, field_name: str) -> str:
    """A text field as a string: None -> "", numbers -> decimal text, else a rejection."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise Rejected(field_name, "not text", f"got a boolean {value}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    raise Rejected(field_name, "not text", f"got {type(value).__name__}")


def derived_external_id(split: str, row: int, revision: str) -> str:
    """`<split>-<row>@<first 12 hex digits of the revision>`: stable at a pinned revision."""
    return f"{split}-{row}@{revision.removeprefix('sha256:')[:12]}"


@dataclass
class RecordValidator:
    """Turns source rows into kept records or rejections; remembers ids already kept."""

    columns: ResolvedColumnMap
    split: str
    revision: str
    kept_ids: dict[str, int] = field(default_factory=dict)
    _images: OrderedDict[str, NormalisedImage | ImageDecodeError] = field(
        default_factory=OrderedDict
    )

    def external_id(self, row: Mapping[str, Any], index: int) -> str | None:
        """The record's id as far as it can be read (used for quarantine lines too)."""
        if self.columns.column_map.derive_external_id and not self.columns.sources["external_id"]:
            return derived_external_id(self.split, index, self.revision)
        value = self.columns.pick(row, "external_id")
        try:
            text = text_value(value, "external_id").strip()
        except Rejected:
            return None
        return text or None

    def validate(self, row: Mapping[str, Any], index: int) -> KeptRecord:
        """A kept record, or Rejected naming the first failed check."""
        image, image_sha256 = self._image(row.get(self.columns.image_column))
        relative = self.columns.column_map.bbox_units == "relative"
        bbox, clipped = check_bbox(
            self.columns.pick(row, "bbox"), image.width, image.height, relative
        )
        summary = text_value(self.columns.pick(row, "summary"), "summary").strip()
        if not summary:
            raise Rejected("summary", "missing or blank")
        fields: dict[str, Any] = {"summary": summary, "bbox": bbox}
        for column in OPTIONAL_TEXT_COLUMNS:
            if column in self.columns.column_map.derived:
                continue
            fields[column] = text_value(self.columns.pick(row, column), column)
        fields["text"] = fields["text"].strip()
        for column, derive in self.columns.column_map.derived.items():
            fields[column] = derive(fields)
        external_id = self.external_id(row, index)
        if external_id is None:
            raw = self.columns.pick(row, "external_id")
            reason = "missing or blank" if raw is None or isinstance(raw, str) else "not text"
            raise Rejected("external_id", reason)
        if external_id in self.kept_ids:
            raise Rejected(
                "external_id", "duplicate", f"already kept at row {self.kept_ids[external_id]}"
            )
        fields["external_id"] = external_id
        self.kept_ids[external_id] = index
        return KeptRecord(index, fields, image, image_sha256, clipped)

    def _image(self, value: Any) -> tuple[NormalisedImage, str]:
        data = image_cell_bytes(value)
        digest = hashlib.sha256(data).hexdigest()
        cached = self._images.get(digest)
        if cached is None:
            try:
                cached = normalise_image(data)
            except ImageDecodeError as error:
                cached = error
            self._images[digest] = cached
            if len(self._images) > IMAGE_CACHE_SIZE:
                self._images.popitem(last=False)
        else:
            self._images.move_to_end(digest)
        if isinstance(cached, ImageDecodeError):
            raise Rejected("image", "undecodable", str(cached))
        return cached, digest


def image_cell_bytes(value: Any) -> bytes:
    """The encoded image of an `Image(decode=False)` cell: its bytes, or its file's bytes."""
    if value is None:
        raise Rejected("image", "missing")
    if not isinstance(value, Mapping):
        raise Rejected("image", "missing", f"unexpected cell of type {type(value).__name__}")
    data, path = value.get("bytes"), value.get("path")
    if data:
        return bytes(data)
    if path:
        try:
            return Path(path).read_bytes()
        except OSError as error:
            raise Rejected("image", "unreadable file", f"{path}: {error}") from error
    raise Rejected("image", "missing", "no bytes and no path")
