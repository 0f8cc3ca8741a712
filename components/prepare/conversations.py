"""Records in the MiniCPM-V fine-tuning format, one JSON list per split.

Each item is {"id", "image" (path relative to the prepared folder), "conversations":
[user, assistant]} plus metadata the evaluation groups its scores by (external_id,
screen_id, element_type). The trainer reads only the first three keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.prepare.prompt import user_turn
from components.prepare.splits import SPLITS

IMAGES_DIR = "images"
UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
MAX_STEM = 96


def image_name(record_id: str) -> str:
    """images/<id>.png; ids that are not filename-safe get a hash suffix to stay unique."""
    stem = UNSAFE_FILENAME.sub("_", record_id)[:MAX_STEM].lstrip(".") or "record"
    if stem != record_id:
        stem += "-" + hashlib.sha256(record_id.encode()).hexdigest()[:10]
    return f"{IMAGES_DIR}/{stem}.png"


def conversation(
    record_id: str, image: str, prompt: str, answer: str, **metadata: str
) -> dict[str, Any]:
    return {
        "id": record_id,
        "image": image,
        "conversations": [
            {"role": "user", "content": user_turn(prompt)},
            {"role": "assistant", "content": answer},
        ],
        **metadata,
    }


def write_splits(folder: Path, items: Mapping[str, Sequence[dict[str, Any]]]) -> dict[str, int]:
    """Write <split>.json for every split (empty ones too); returns the counts."""
    counts: dict[str, int] = {}
    for split in SPLITS:
        records = list(items.get(split, ()))
        text = json.dumps(records, ensure_ascii=False, indent=1)
        (folder / f"{split}.json").write_text(text + "\n", encoding="utf-8")
        counts[split] = len(records)
    return counts


class SplitFingerprint:
    """sha256 over every split's items (canonical JSON) and the bytes of their image files."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def add(self, split: str, item: Mapping[str, Any], image_sha256: str) -> None:
        canonical = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        self._digest.update(f"{split}\0{canonical}\0{image_sha256}\n".encode())

    def hexdigest(self) -> str:
        return f"sha256:{self._digest.hexdigest()}"
