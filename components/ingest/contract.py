"""The input contract of DESIGN.md: the columns every labelled-interaction record carries.

Ingest's output follows it exactly, whatever the source called its columns, so every later
step reads one schema. The columns are listed once, in `COLUMNS`; every other name list
(required, optional text, what the prompt shows, what prepare reads) is derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datasets import Features


@dataclass(frozen=True)
class Column:
    """One column of the contract: its name, what it holds, and its role."""

    name: str
    kind: Literal["text", "image", "box"]
    meaning: str
    # Without it a record is not a training example (else: may be empty, defaults to "").
    required: bool = False
    # Shown to the model in the prompt's "Action data:" block (and asked for by serving).
    in_prompt: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("external_id", "text", "stable id of the record", required=True),
    Column("image", "image", "full screenshot", required=True),
    Column("bbox", "box", "element box [x0, y0, x1, y1] in image pixels", required=True),
    Column("action_type", "text", "click, type, select, hover, ...", in_prompt=True),
    Column("element_type", "text", "button, link, input, ...", in_prompt=True),
    Column("text", "text", "visible text of the element (may be empty)", in_prompt=True),
    Column("html", "text", "the element's surrounding HTML (may be long)", in_prompt=True),
    Column("summary", "text", "target: one sentence saying what the action does", required=True),
    Column("screen_id", "text", "groups records of one screen; splits never cut a screen"),
)

CONTRACT_COLUMNS = tuple(column.name for column in COLUMNS)
# Columns without which a record is not a training example.
REQUIRED_COLUMNS = tuple(column.name for column in COLUMNS if column.required)
# Text columns that may be empty; a source without them gets empty strings.
OPTIONAL_TEXT_COLUMNS = tuple(
    column.name for column in COLUMNS if column.kind == "text" and not column.required
)
TEXT_COLUMNS = tuple(column.name for column in COLUMNS if column.kind == "text")
# What the prompt shows about the element, in the contract's order.
PROMPT_COLUMNS = tuple(column.name for column in COLUMNS if column.in_prompt)
IMAGE_COLUMN = next(column.name for column in COLUMNS if column.kind == "image")
BOX_COLUMN = next(column.name for column in COLUMNS if column.kind == "box")
# Everything but the image: what prepare reads for every record without decoding images.
METADATA_COLUMNS = tuple(column.name for column in COLUMNS if column.kind != "image")


def contract_features() -> Features:
    """The contract as `datasets` features; bbox is float64 so clipped values stay exact."""
    from datasets import Features, Image, List, Value

    def feature(kind: str) -> Value | Image | List:
        if kind == "image":
            return Image()
        if kind == "box":
            return List(Value("float64"), length=4)
        return Value("string")

    return Features({column.name: feature(column.kind) for column in COLUMNS})
