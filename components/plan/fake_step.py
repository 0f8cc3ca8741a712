"""Run model code on fake tensors while the small integer inputs stay real.

Fake tensors carry shapes and dtypes but no data, so a training step of a model much
bigger than this machine costs nothing but dispatch. VLM code reads data in a few
places: image grid sizes become Python ints, and boolean masks pick the image-token
positions. Keeping token ids, masks, labels and grid sizes real answers those reads
exactly, as the real batch would; only tensors built from weights are fake.
"""

from __future__ import annotations

from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensor, unset_fake_temporarily
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

_aten = torch.ops.aten
# Integer and boolean tensors up to this many elements are built for real.
_REAL_INDEX_LIMIT = 2**24


def _is_real(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and not isinstance(value, FakeTensor)


class RealWhereKnown(TorchDispatchMode):
    """Ops on real tensors only run for real; a real boolean mask indexing a fake tensor
    becomes the integer positions it selects, so no output shape depends on fake data."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        tensors = [value for value in flat if isinstance(value, torch.Tensor)]
        if all(_is_real(value) for value in tensors):
            if tensors:
                with unset_fake_temporarily():
                    return func(*args, **kwargs)
            # A factory (arange, zeros, ...): index and mask tensors are built for real,
            # anything floating stays fake.
            out = func(*args, **kwargs)
            if _is_index_like(out):
                with unset_fake_temporarily():
                    return func(*args, **kwargs)
            return out
        if func is _aten.index.Tensor:
            source, indices = args
            return func(source, _positions(indices))
        if func is _aten.masked_select.default:
            source, mask = args
            if _is_real(mask):
                with unset_fake_temporarily():
                    mask = mask.expand(source.shape)
                return _aten.index.Tensor(source, _positions([mask]))
        return func(*args, **kwargs)


def _is_index_like(value: Any) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and not value.dtype.is_floating_point
        and not value.dtype.is_complex
        and value.numel() <= _REAL_INDEX_LIMIT
    )


def _positions(indices: list[Any]) -> list[Any]:
    positions: list[Any] = []
    for index in indices:
        if _is_real(index) and index.dtype == torch.bool:
            with unset_fake_temporarily():
                positions.extend(index.nonzero(as_tuple=True))
        else:
            positions.append(index)
    return positions


def fakeify(module: torch.nn.Module, mode: Any, device: torch.device) -> None:
    """Swap a meta-device module's parameters and buffers for fake tensors on `device`.

    Modules cannot be moved onto fake tensors with `.to()` (fake tensors hold weak
    references, which tensor swapping refuses), so the slots are replaced in place.
    """
    swapped: dict[int, torch.nn.Parameter] = {}  # tied weights stay tied
    for submodule in module.modules():
        for name, param in list(submodule._parameters.items()):
            if param is not None:
                if id(param) not in swapped:
                    swapped[id(param)] = torch.nn.Parameter(
                        FakeTensor(mode, param.data, device), requires_grad=param.requires_grad
                    )
                submodule._parameters[name] = swapped[id(param)]
        for name, buffer in list(submodule._buffers.items()):
            if buffer is not None:
                submodule._buffers[name] = FakeTensor(mode, buffer, device)


def to_fake(mode: Any, value: Any) -> Any:
    return tree_map(lambda t: mode.from_tensor(t) if isinstance(t, torch.Tensor) else t, value)
