"""Captions for prepared records, through the one generation path every model shares.

The records come from the prepare package's one reader (`read_split`).

All models (candidate, champion, base) caption through `VLMFamily.generate`: batched
greedy decoding with left padding, the KV cache, a bounded `max_new_tokens` and a stop
at the end of turn. Records are batched longest prompt first, so a batch holds prompts of
similar length and little padding; captions come back in the split's order. Batch size
and order do not change a caption (the families check that batched generation equals
one-at-a-time generation), which is what `bench/eval_throughput.py` measures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from components.captioner.families import VLMFamily
from components.prepare.conversations import PreparedRecord


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


def batch_order(records: Sequence[PreparedRecord], batch_size: int) -> list[list[int]]:
    """Indexes of the records in batches, longest prompt first (ties keep split order)."""
    order = sorted(range(len(records)), key=lambda i: -len(records[i].prompt))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def generate_captions(
    captioning: Captioning,
    records: Sequence[PreparedRecord],
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
        turns = [records[index].turn(with_answer=False) for index in batch]
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
