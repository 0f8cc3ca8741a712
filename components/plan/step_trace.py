"""One optimizer step of the recipe's model, run on fake tensors: its memory and FLOPs.

The model is built from its config on the meta device, made trainable by the same code
the recipe uses (components/train/trainable.py), then every weight becomes a fake
tensor. The step runs for one record; activations and FLOPs grow with the batch, so
the plan scales them. Optimizer state exists before the step, as it does from the
second step on, and so do gradients when they accumulate over micro-batches.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from components.captioner.families import get_family
from components.plan.sample_shape import SampleShape
from components.train.config import TrainConfig

# Bump when the traced step changes, so cached traces of the old one are not reused.
TRACE_VERSION = 4


@dataclass(frozen=True)
class StepTrace:
    """Bytes and FLOPs of one traced step at `batch_size` records of `tokens` tokens."""

    batch_size: int
    tokens: int
    total_params: int
    trainable_params: int
    weight_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    # The high-water mark of what the step allocates beyond weights and optimizer state
    # (activations, temporaries, and the gradients when they do not persist).
    step_peak_bytes: int
    forward_flops: int
    step_flops: int
    gradient_checkpointing: bool
    bf16: bool
    # Whether gradients existed before the step (they accumulate over micro-batches); if
    # not, `step_peak_bytes` includes them.
    grads_persisted: bool


def trace_step(
    model_config: Any,
    config: TrainConfig,
    shape: SampleShape,
    *,
    on_gpu: bool,
    grads_persist: bool,
    batch_size: int = 1,
    cache_dir: Path | None = None,
) -> StepTrace:
    """The traced step, from the cache when the same step was traced before."""
    from components.train.trainable import checkpointing

    key = _cache_key(model_config, config, shape, on_gpu, grads_persist, batch_size)
    cache = (cache_dir or default_cache_dir()) / f"{key}.json"
    if cache.is_file():
        return StepTrace(**json.loads(cache.read_text()))
    trace = measure_step(
        model_config,
        config,
        shape,
        on_gpu=on_gpu,
        grads_persist=grads_persist,
        batch_size=batch_size,
        gradient_checkpointing=checkpointing(config, on_gpu=on_gpu),
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".tmp")
    partial.write_text(json.dumps(asdict(trace)))
    partial.replace(cache)
    return trace


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "uicap" / "plan"


def _cache_key(model_config: Any, config: TrainConfig, shape: SampleShape, *flags: Any) -> str:
    import torch
    import transformers

    recipe = config.model_dump(
        mode="json",
        include={"family", "full", "precision", "gradient_checkpointing", "deepspeed", "lora"},
    )
    recipe["towers"] = [config.tune_vision, config.tune_merger]
    payload = [
        TRACE_VERSION,
        torch.__version__,
        transformers.__version__,
        model_config.to_dict(),
        recipe,
        asdict(shape),
        flags,
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :24
    ]


def measure_step(
    model_config: Any,
    config: TrainConfig,
    shape: SampleShape,
    *,
    on_gpu: bool,
    grads_persist: bool,
    batch_size: int,
    gradient_checkpointing: bool,
    fake_tensors: bool = True,
    around_step: Any = None,
) -> StepTrace:
    """`fake_tensors=False` runs the same step for real, and `around_step` (a context
    manager) wraps only the step: bench/plan_accuracy.py measures it."""
    import contextlib
    import copy

    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForImageTextToText

    from components.plan.fake_step import RealWhereKnown, fakeify
    from components.plan.live_memory import LiveMemory, storage_bytes
    from components.train.trainable import adamw_groups, make_trainable, precision

    family = get_family(config.family)
    dtypes = precision(config, on_gpu=on_gpu)
    model_config = copy.deepcopy(model_config)
    if getattr(model_config, "image_token_id", None) is None:
        # Any id in the vocabulary: only the positions it marks matter here.
        model_config.image_token_id = model_config.text_config.vocab_size - 1
    with torch.device("meta") if fake_tensors else contextlib.nullcontext():
        model = AutoModelForImageTextToText.from_config(
            model_config, dtype=dtypes.load_dtype, attn_implementation="sdpa"
        )
    built = make_trainable(model, config, family, gradient_checkpointing=gradient_checkpointing)
    model = built.model
    model.train()
    device = torch.device("cpu")
    fake: Any = FakeTensorMode(allow_non_fake_inputs=True) if fake_tensors else None
    if fake is not None:
        fakeify(model, fake, device)
    real_where_known = RealWhereKnown() if fake is not None else contextlib.nullcontext()
    fake = fake or contextlib.nullcontext()
    weights = storage_bytes([*model.parameters(), *model.buffers()])
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(adamw_groups(model, config.optim.weight_decay), lr=1e-4)
    with fake:
        # The state AdamW keeps from the first step on.
        for parameter in trainable:
            parameter.grad = torch.zeros_like(parameter)
        optimizer.step()
        if not grads_persist:
            optimizer.zero_grad(set_to_none=True)
        pixel_values = torch.zeros(
            (1, 3, 14, shape.patches * batch_size), dtype=dtypes.input_dtype or torch.float32
        )
    optimizer_bytes = storage_bytes(_state_tensors(optimizer))
    gradient_bytes = storage_bytes(trainable)
    batch = _batch(model_config.image_token_id, shape, batch_size)
    batch["pixel_values"] = pixel_values
    existing = [*model.parameters(), *model.buffers(), *_state_tensors(optimizer)]
    existing += [p.grad for p in trainable if p.grad is not None]
    memory, flops = LiveMemory(existing), FlopCounterMode(display=False)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtypes.bf16)
    with fake, real_where_known, memory, flops, around_step or contextlib.nullcontext():
        with autocast:
            loss = model(**batch).loss
        forward_flops = flops.get_total_flops()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=not grads_persist)
    return StepTrace(
        batch_size=batch_size,
        tokens=shape.tokens,
        total_params=built.total,
        trainable_params=built.trainable,
        weight_bytes=weights,
        gradient_bytes=gradient_bytes,
        optimizer_bytes=optimizer_bytes,
        step_peak_bytes=memory.peak,
        forward_flops=forward_flops,
        step_flops=flops.get_total_flops(),
        gradient_checkpointing=gradient_checkpointing,
        bf16=dtypes.bf16,
        grads_persisted=grads_persist,
    )


def _state_tensors(optimizer: Any) -> list[Any]:
    import torch

    return [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]


def _batch(image_token_id: int, shape: SampleShape, batch_size: int) -> dict[str, Any]:
    """Real token ids, mask, labels and grid sizes: the parts of a batch the model reads."""
    import torch

    from components.captioner.families.base import IGNORE_INDEX

    ids = torch.zeros((batch_size, shape.tokens), dtype=torch.long)
    ids[:, 2 : 2 + shape.placeholders] = image_token_id
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, -32:] = 0
    sizes = torch.tensor(shape.target_sizes * batch_size, dtype=torch.int32)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "target_sizes": sizes,
    }
