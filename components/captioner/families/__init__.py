"""Model families: one object per VLM family, chosen by name from settings or metadata."""

from __future__ import annotations

from components.captioner.families.base import (
    IGNORE_INDEX,
    EncodedTurn,
    TooLongError,
    Turn,
    VLMFamily,
    split_image_marker,
)
from components.captioner.families.native import FAMILY_SPECS, NativeFamily

__all__ = [
    "IGNORE_INDEX",
    "EncodedTurn",
    "TooLongError",
    "Turn",
    "VLMFamily",
    "family_names",
    "get_family",
    "split_image_marker",
]


def family_names() -> list[str]:
    return sorted(FAMILY_SPECS)


def get_family(name: str) -> VLMFamily:
    if name not in FAMILY_SPECS:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(family_names())}")
    return NativeFamily(FAMILY_SPECS[name])
