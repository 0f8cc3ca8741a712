"""Peak tensor memory of code run under a dispatch mode: every storage an op creates counts
until it is freed.

torch's MemTracker assumes every parameter trains (it hooks gradients on all of them), so
it cannot follow a LoRA step over a frozen base; this counter needs no hooks. It works on
fake tensors, so a step of a model too big for this machine is measured without memory.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary


def storage_bytes(tensors: Any) -> int:
    """Bytes of the distinct storages behind `tensors` (tied and viewed tensors count once)."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr() if storage.device.type != "meta" else id(storage)] = (
            storage.nbytes()
        )
    return sum(seen.values())


class LiveMemory(TorchDispatchMode):
    """Counts bytes of storages created inside the context; `peak` is the high-water mark."""

    def __init__(self, existing: Any = ()) -> None:
        """`existing`: tensors allocated before (weights, optimizer state); a view of one
        (a transposed weight) shares its storage and must not count again."""
        super().__init__()
        self.live = 0
        self.peak = 0
        self._tracked: WeakIdKeyDictionary = WeakIdKeyDictionary()
        for tensor in existing:
            self._tracked[tensor.untyped_storage()] = 0

    def reset_peak(self) -> None:
        self.peak = self.live

    def _release(self, nbytes: int) -> None:
        self.live -= nbytes

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        if storage in self._tracked:
            return
        nbytes = storage.nbytes()
        self._tracked[storage] = nbytes
        weakref.finalize(storage, self._release, nbytes)
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._track(leaf)
        return out
