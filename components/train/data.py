"""Prepared splits as training batches: encoding in workers, length index, sampler.

The records come from the prepare package's one reader (`read_split`, `PreparedRecord`).

Image preprocessing is the slow part of feeding a VLM, so it runs in DataLoader workers
(`family.encode` inside `__getitem__`, `family.collate` as the collate function). One
indexing pass measures every record's token length once: it finds the records that do
not fit `max_length` (skipped and counted, never cut) and gives the length-grouped
sampler what it needs to keep padding small.
"""

from __future__ import annotations

import functools
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from components.captioner.families import EncodedTurn, TooLongError, VLMFamily
from components.prepare.conversations import PreparedRecord

TOO_LONG = "too_long"


@dataclass(frozen=True)
class Skipped:
    """A record the model cannot take whole, and why."""

    id: str
    reason: str
    detail: str


def _nbytes(value: Any) -> int:
    if isinstance(value, Coded):
        return value.nbytes
    if hasattr(value, "nelement"):
        return int(value.nelement() * value.element_size())
    return 0


@dataclass(frozen=True)
class Coded:
    """A float tensor with few distinct values, as integer codes into those values.

    A screenshot has 8-bit pixels, and the processors resize before they rescale and
    normalise, so its pixel tensor holds at most 256 distinct floats per channel: one
    byte a value where every channel is normalised alike (MiniCPM-V, SigLIP), two where
    the channels differ (CLIP's means), instead of four; decoding gives back the very
    same floats.
    """

    values: torch.Tensor
    codes: torch.Tensor

    @property
    def nbytes(self) -> int:
        codes = self.codes.nelement() * self.codes.element_size()
        return int(codes + self.values.nelement() * self.values.element_size())

    def decode(self) -> torch.Tensor:
        return torch.take(self.values, self.codes.long())


SAMPLE_STRIDE = 61


def encode_lossless(tensor: torch.Tensor) -> torch.Tensor | Coded:
    """`tensor` as Coded when its distinct values fit 8- or 16-bit codes, else unchanged."""
    if not tensor.is_floating_point() or tensor.nelement() < 1024:
        return tensor
    flat = tensor.reshape(-1)
    # Distinct values of a sample first (a full sort costs more than the processor);
    # they must then cover every value exactly, or the full set is taken.
    values = torch.unique(flat[::SAMPLE_STRIDE])
    if values.numel() <= 256:
        index = torch.searchsorted(values, flat).clamp_(max=values.numel() - 1)
        if not torch.equal(values[index], flat):
            values, index = torch.unique(flat, return_inverse=True)
    else:
        values, index = torch.unique(flat, return_inverse=True)
    if values.numel() > 2**15:
        return tensor
    dtype = torch.uint8 if values.numel() <= 256 else torch.int16
    return Coded(values, index.to(dtype).reshape(tensor.shape))


def _compact(turn: EncodedTurn) -> EncodedTurn:
    vision = {k: encode_lossless(v) if torch.is_tensor(v) else v for k, v in turn.vision.items()}
    return EncodedTurn(turn.id, turn.input_ids, turn.labels, vision)


def _expanded(turn: EncodedTurn) -> EncodedTurn:
    vision = {key: v.decode() if isinstance(v, Coded) else v for key, v in turn.vision.items()}
    return EncodedTurn(turn.id, turn.input_ids, turn.labels, vision)


class EncodingCache:
    """Encoded records kept for the next epoch and evaluation, up to a byte budget.

    Decoding a screenshot and running the processor costs more than the forward and
    backward pass of a small model, and every epoch (and every validation pass) asks for
    the same records again. Encodings are deterministic and stored losslessly (pixel
    tensors as byte codes, see Coded), so a cached record is the record a fresh encode
    would give; once the budget is spent, the rest are encoded each time. Entries made
    inside DataLoader workers stay in that worker (and so do their hit counts).
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.used = 0
        self.items: dict[tuple[str, str], EncodedTurn] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> EncodedTurn | None:
        found = self.items.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        return _expanded(found)

    def put(self, key: tuple[str, str], turn: EncodedTurn) -> None:
        if key in self.items or self.budget <= 0:
            return
        compact = _compact(turn)
        size = sum(_nbytes(v) for v in compact.vision.values()) + 16 * len(turn.input_ids)
        if self.used + size <= self.budget:
            self.items[key] = compact
            self.used += size

    def stats(self) -> dict[str, float]:
        """Records held, MiB used, and the share of lookups served from memory."""
        lookups = self.hits + self.misses
        return {
            "records": float(len(self.items)),
            "mib": round(self.used / 2**20, 1),
            "hit_rate": round(self.hits / lookups, 4) if lookups else 0.0,
        }


class TurnDataset(Dataset):
    """Loads and encodes one record per item; runs inside DataLoader workers."""

    def __init__(
        self,
        records: Sequence[PreparedRecord],
        family: VLMFamily,
        processor: Any,
        max_length: int,
        cache: EncodingCache | None = None,
    ) -> None:
        self.records = list(records)
        self.family = family
        self.processor = processor
        self.max_length = max_length
        self.cache = cache

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> EncodedTurn:
        record = self.records[index]
        key = (record.id, str(record.image))
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            return cached
        turn = self.family.encode(self.processor, record.turn(), self.max_length)
        if self.cache is not None:
            self.cache.put(key, turn)
        return turn

    def collate(self, batch: list[EncodedTurn]) -> dict[str, Any]:
        return self.family.collate(self.processor, batch)


class _Measure(Dataset):
    """The indexing pass: a record's length, or why it is skipped (no tensors kept)."""

    def __init__(self, dataset: TurnDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> int | Skipped:
        record = self.dataset.records[index]
        try:
            return len(self.dataset[index])
        except TooLongError as error:
            return Skipped(record.id, TOO_LONG, str(error))


@dataclass
class LengthIndex:
    """Which records fit and their token lengths; the others with their reasons."""

    kept: list[int]
    lengths: list[int]
    skipped: list[Skipped] = field(default_factory=list)

    def skipped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.skipped:
            counts[item.reason] = counts.get(item.reason, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "lengths": self.lengths,
            "skipped": [item.__dict__ for item in self.skipped],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LengthIndex:
        return cls(data["kept"], data["lengths"], [Skipped(**s) for s in data["skipped"]])


class TooManySkippedError(ValueError):
    """More of a split's records are too long than `train.batch.max_skip_fraction` allows."""


SKIPPED_NAMED = 5


def check_skipped(split: str, index: LengthIndex, max_fraction: float, max_length: int) -> None:
    """Fail, naming the records, when too many of `split` cannot fit `max_length`."""
    total = len(index.kept) + len(index.skipped)
    skipped = len(index.skipped)
    if index.kept and skipped / total <= max_fraction:
        return
    if not total:
        raise ValueError(f"the {split} split holds no records")
    named = "; ".join(item.detail for item in index.skipped[:SKIPPED_NAMED])
    more = f"; and {skipped - SKIPPED_NAMED} more" if skipped > SKIPPED_NAMED else ""
    raise TooManySkippedError(
        f"{skipped} of {total} {split} records ({skipped / total:.1%}) do not fit max_length "
        f"{max_length}, more than train.batch.max_skip_fraction={max_fraction:g} allows: "
        f"{named}{more}. Raise train.batch.max_length, or lower prepare.max_image_side or "
        "prepare.html_budget_tokens"
    )


def index_lengths(dataset: TurnDataset, num_workers: int) -> LengthIndex:
    """Encode every record once (in workers) to learn its length; nothing is kept but ints."""
    loader = DataLoader(
        _Measure(dataset),
        batch_size=16,
        num_workers=num_workers,
        collate_fn=list,
        generator=torch.Generator(),
    )
    index = LengthIndex(kept=[], lengths=[])
    position = 0
    for chunk in loader:
        for item in chunk:
            if isinstance(item, Skipped):
                index.skipped.append(item)
            else:
                index.kept.append(position)
                index.lengths.append(item)
            position += 1
    return index


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar length, the same on every rank, sharded by rank.

    Per epoch: a seeded shuffle, cut into mega-batches of `group_size` batches, each
    sorted by length and cut into batches, then the batch order is shuffled again (so
    long batches are not all at the start). Rank r takes batches r, r+W, ... of an
    epoch whose batch count is trimmed to a multiple of W. `start` skips the batches a
    resumed run has already consumed without loading them.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        group_by_length: bool = True,
        group_size: int = 32,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not lengths:
            raise ValueError("no records to sample from")
        if len(lengths) < batch_size * num_replicas:
            raise ValueError(
                f"{len(lengths)} records cannot fill one batch of {batch_size} on each of "
                f"{num_replicas} processes"
            )
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.group_size = group_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def epoch_batches(self) -> list[list[int]]:
        """Every rank's batches of the current epoch, in order (before sharding)."""
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if self.group_by_length:
            mega = self.batch_size * self.group_size
            order = [
                i
                for s in range(0, len(order), mega)
                for i in sorted(order[s : s + mega], key=lambda i: -self.lengths[i])
            ]
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        if self.group_by_length:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[:usable]

    def __len__(self) -> int:
        batches = math.ceil(len(self.lengths) / self.batch_size)
        return batches // self.num_replicas

    def __iter__(self) -> Iterator[list[int]]:
        mine = self.epoch_batches()[self.rank :: self.num_replicas]
        yield from mine[self.start :]


def eval_batches(
    lengths: Sequence[int], batch_size: int, num_replicas: int = 1, rank: int = 0
) -> tuple[list[list[int]], list[bool]]:
    """This rank's validation batches, sorted by length (least padding), and which count.

    Batches are dealt round-robin; ranks that come up one short repeat their first batch
    with `counted=False`, so every rank runs the same number of forward passes (ZeRO-3
    gathers parameters collectively and would otherwise hang).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    rounds = math.ceil(len(batches) / num_replicas)
    mine = batches[rank::num_replicas]
    counted = [True] * len(mine)
    while len(mine) < rounds:
        mine.append(batches[0])
        counted.append(False)
    return mine, counted


def resolve_workers(configured: int | None, on_gpu: bool, processes_per_node: int) -> int:
    """The DataLoader worker count: as configured, else 0 on the CPU, else a share of CPUs."""
    if configured is not None:
        return configured
    if not on_gpu:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(4, (cpus or 1) // max(1, processes_per_node) - 1))


def make_loader(
    dataset: TurnDataset, batch_sampler: Sampler[list[int]] | list[list[int]], num_workers: int
) -> DataLoader:
    """A DataLoader that encodes and collates in workers and never draws on the global RNG."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        collate_fn=functools.partial(TurnDataset.collate, dataset),
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        # A private generator: creating an iterator must not advance the global RNG that
        # a resumed run restores, or LoRA dropout would differ from the straight run.
        generator=torch.Generator(),
        persistent_workers=False,
    )
