"""Records in the MiniCPM-V fine-tuning format, one JSON list per split: written and read here.

Each item is {"id", "image" (path relative to the prepared folder), "conversations":
[user, assistant]} plus metadata the evaluation groups its scores by (external_id,
screen_id, element_type). `conversation` builds an item, `write_splits` writes the
files, and `read_split` is the one reader: training, evaluation and the benches all get
their records from it as `PreparedRecord`s, checked, with errors that name the record
and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.captioner.families import Turn
from components.prepare.prompt import prompt_of_user_turn, user_turn
from components.prepare.splits import SPLITS

IMAGES_DIR = "images"
# Keys of an item that say what the record is about; optional, strings when present.
METADATA_KEYS = ("external_id", "screen_id", "element_type")
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


@dataclass(frozen=True)
class PreparedRecord:
    """One prepared example: its image file, what the user asks, the answer, what it is about."""

    id: str
    image: Path  # the image file
    image_name: str  # as the split file writes it, relative to the prepared folder
    prompt: str  # the user text after the image marker
    answer: str  # the reference summary (or caption)
    external_id: str | None = None
    screen_id: str | None = None
    element_type: str | None = None

    def turn(self, with_answer: bool = True) -> Turn:
        """The record as a model turn; training wants the answer, captioning does not."""
        from PIL import Image

        with Image.open(self.image) as image:
            rgb = image.convert("RGB")
        return Turn(self.id, rgb, self.prompt, self.answer if with_answer else None)


def _field(item: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in item:
        raise ValueError(f"{where}: missing field {name!r}")
    return item[name]


def parse_item(item: Any, root: Path, where: str) -> PreparedRecord:
    """One split-file item as a record, or a ValueError naming the record and the field."""
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(item).__name__}")
    record_id = str(_field(item, "id", where))
    where = f"{where} (id {record_id})"
    conversations = _field(item, "conversations", where)
    if not isinstance(conversations, list) or len(conversations) != 2:
        raise ValueError(
            f"{where}: field 'conversations' must hold one user and one assistant turn"
        )
    user, assistant = conversations
    if not isinstance(user, dict) or not isinstance(assistant, dict):
        raise ValueError(f"{where}: field 'conversations' must hold two JSON objects")
    if user.get("role") != "user" or assistant.get("role") != "assistant":
        raise ValueError(f"{where}: field 'conversations' must be [user, assistant] in that order")
    try:
        prompt = prompt_of_user_turn(str(user.get("content", "")))
    except ValueError as error:
        raise ValueError(f"{where}: field 'conversations[0].content': {error}") from error
    answer = str(assistant.get("content", "")).strip()
    if not answer:
        raise ValueError(f"{where}: field 'conversations[1].content' (the answer) is empty")
    image_name = str(_field(item, "image", where))
    image = root / image_name
    if not image.is_file():
        raise ValueError(f"{where}: field 'image' points to a missing file {image}")
    metadata: dict[str, str] = {}
    for key in METADATA_KEYS:
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"{where}: field {key!r} must be a string")
        metadata[key] = value
    return PreparedRecord(record_id, image, image_name, prompt, answer, **metadata)


def read_split(folder: Path, split: str) -> list[PreparedRecord]:
    """Every record of `<folder>/<split>.json`, checked; ids are unique within the split."""
    folder = Path(folder)
    path = folder / f"{split}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {split}.json: is it a prepared directory?")
    items = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    records = [parse_item(item, folder, f"{path.name}[{i}]") for i, item in enumerate(items)]
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ValueError(f"{path.name}: id {record.id!r} appears twice")
        seen.add(record.id)
    return records
