"""The input contract of DESIGN.md: the columns every labelled-interaction record carries.

Ingest's output follows it exactly, whatever the source called its columns, so every later
step reads one schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Features

# Columns without which a record is not a training example.
REQUIRED_COLUMNS = ("external_id", "image", "bbox", "summary")
# Text columns that may be empty; a source without them gets empty strings.
OPTIONAL_TEXT_COLUMNS = ("action_type", "element_type", "text", "html", "screen_id")
CONTRACT_COLUMNS = (
    "external_id",
    "image",
    "bbox",
    "action_type",
    "element_type",
    "text",
    "html",
    "summary",
    "screen_id",
)
TEXT_COLUMNS = tuple(c for c in CONTRACT_COLUMNS if c not in ("image", "bbox"))


def contract_features() -> Features:
    """The contract as `datasets` features; bbox is float64 so clipped values stay exact."""
    from datasets import Features, Image, List, Value

    features = {name: Value("string") for name in TEXT_COLUMNS}
    features["image"] = Image()
    features["bbox"] = List(Value("float64"), length=4)
    return Features({name: features[name] for name in CONTRACT_COLUMNS})
