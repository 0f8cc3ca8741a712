"""Every rank's part of a checkpoint, brought to the process that seals it.

`Accelerator.save_state` has each process write its own files (its RNG states, and under
DeepSpeed its optimizer partition) into the staging folder on its own node's disk. On one
node, or on a shared file system, the main process sees them all; on a TrainJob's nodes it
sees only its node's. The checkpoint is sealed only once the main process holds every
rank's files: the others send what it lacks, and a rank that wrote nothing fails the save.
The parts are small for LoRA (RNG states, and optimizer states of the trained tensors only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def listing(directory: Path) -> list[str]:
    """Relative paths of the files under `directory` on this node (none if it is absent)."""
    if not directory.is_dir():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def plan_transfers(listings: list[list[str]]) -> dict[str, int]:
    """File -> the rank that sends it: files the main process (rank 0) does not see, each
    from the first rank that has it."""
    seen_by_main = set(listings[0])
    owners: dict[str, int] = {}
    for rank, files in enumerate(listings[1:], start=1):
        for name in files:
            if name not in seen_by_main:
                owners.setdefault(name, rank)
    return owners


def gather_to_main(accelerator: Any, staging: Path) -> list[str]:
    """Copy every rank's files in `staging` into the main process's `staging`; returns the
    names that moved. Every process calls it (it holds two collectives)."""
    from accelerate.utils import gather_object

    if accelerator.num_processes == 1:
        return []
    listings: list[list[str]] = gather_object([listing(staging)])
    empty = [rank for rank, files in enumerate(listings) if not files]
    if empty:
        raise RuntimeError(
            f"ranks {empty} wrote nothing into {staging.name}: the checkpoint is incomplete"
        )
    owners = plan_transfers(listings)
    rank = accelerator.process_index
    mine = {name: (staging / name).read_bytes() for name, owner in owners.items() if owner == rank}
    parts: list[dict[str, bytes]] = gather_object([mine])
    if accelerator.is_main_process:
        for part in parts:
            for name, payload in part.items():
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(payload)
    return sorted(owners)
