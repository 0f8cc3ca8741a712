"""Captions for a prepared split, through the one generation path every model shares.

All models (candidate, champion, base) caption through `VLMFamily.generate`: batched
greedy decoding with left padding, the KV cache, a bounded `max_new_tokens` and a stop
at the end of turn. Records are batched longest prompt first, so a batch holds prompts of
similar length and little padding; captions come back in the split's order. Batch size
and order do not change a caption (the families check that batched generation equals
one-at-a-time generation), which is what `bench/eval_throughput.py` measures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.captioner.families import Turn, VLMFamily
from components.train.data import parse_record

# Keys of a prepared record that say what it is about, kept next to its scores.
RECORD_METADATA_KEYS = ("element_type", "external_id", "screen_id")


@dataclass(frozen=True)
class EvalRecord:
    """One record to caption: its image, the prompt, the reference and what it is about."""

    id: str
    image: Path
    image_name: str  # as the split file writes it, relative to the prepared folder
    prompt: str
    reference: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def element_type(self) -> str | None:
        return self.metadata.get("element_type")

    def turn(self) -> Turn:
        from PIL import Image

        with Image.open(self.image) as image:
            return Turn(self.id, image.convert("RGB"), self.prompt)


@dataclass
class Captioning:
    """A loaded model and the family code that drives it."""

    family: VLMFamily
    model: Any
    processor: Any


@dataclass(frozen=True)
class GenerationRun:
    """Captions by record id, in the split's order, and how long they took."""

    captions: dict[str, str]
    seconds: float
    batches: int
    batch_size: int
    max_new_tokens: int

    @property
    def records_per_second(self) -> float:
        return len(self.captions) / self.seconds if self.seconds > 0 else float("inf")


def read_eval_split(folder: Path, split: str = "test") -> list[EvalRecord]:
    """Every record of `<folder>/<split>.json`, validated; errors name the record and field."""
    folder = Path(folder)
    path = folder / f"{split}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {split}.json: is it a prepared directory?")
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    records: list[EvalRecord] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"{path.name}[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(item).__name__}")
        parsed = parse_record(item, folder, where)
        if parsed.id in seen:
            raise ValueError(f"{path.name}: id {parsed.id!r} appears twice")
        seen.add(parsed.id)
        metadata = {}
        for key in RECORD_METADATA_KEYS:
            value = item.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValueError(f"{where} (id {parsed.id}): field {key!r} must be a string")
            metadata[key] = value
        records.append(
            EvalRecord(
                id=parsed.id,
                image=parsed.image,
                image_name=str(item["image"]),
                prompt=parsed.prompt,
                reference=parsed.answer,
                metadata=metadata,
            )
        )
    if not records:
        raise ValueError(f"{path}: no records to evaluate")
    return records


def batch_order(records: Sequence[EvalRecord], batch_size: int) -> list[list[int]]:
    """Indexes of the records in batches, longest prompt first (ties keep split order)."""
    order = sorted(range(len(records)), key=lambda i: -len(records[i].prompt))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def generate_captions(
    captioning: Captioning,
    records: Sequence[EvalRecord],
    batch_size: int = 16,
    max_new_tokens: int = 32,
    one_at_a_time: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> GenerationRun:
    """Greedy captions for `records`; `one_at_a_time` is the chat-loop baseline of the bench.

    `on_batch` is called with the number of records each finished batch held.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if one_at_a_time:
        batches = [[index] for index in range(len(records))]
    else:
        batches = batch_order(records, batch_size)
    captions: list[str | None] = [None] * len(records)
    started = time.perf_counter()
    for batch in batches:
        turns = [records[index].turn() for index in batch]
        texts = captioning.family.generate(
            captioning.model, captioning.processor, turns, max_new_tokens
        )
        if len(texts) != len(batch):
            raise RuntimeError(f"generation returned {len(texts)} captions for {len(batch)} turns")
        for index, text in zip(batch, texts, strict=True):
            captions[index] = text
        if on_batch is not None:
            on_batch(len(batch))
    seconds = time.perf_counter() - started
    return GenerationRun(
        captions={record.id: str(text) for record, text in zip(records, captions, strict=True)},
        seconds=seconds,
        batches=len(batches),
        batch_size=1 if one_at_a_time else batch_size,
        max_new_tokens=max_new_tokens,
    )
