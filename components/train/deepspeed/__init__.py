"""The ZeRO-2 and ZeRO-3 configs shipped with the package, with their "auto" fields filled.

The JSON files keep the sharding choices; the values that must agree with the training
config (micro-batch, accumulation, clipping, bf16) are "auto" there and filled here from
it, so the two can never disagree.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

Stage = Literal["zero2", "zero3"]
STAGES: tuple[str, ...] = ("zero2", "zero3")


def deepspeed_config(
    stage: str,
    *,
    micro_batch: int,
    grad_accum: int,
    max_grad_norm: float,
    bf16: bool,
    world_size: int,
) -> dict[str, Any]:
    if stage not in STAGES:
        raise ValueError(f"unknown DeepSpeed config {stage!r}; shipped: {', '.join(STAGES)}")
    config = json.loads(resources.files(__name__).joinpath(f"{stage}.json").read_text())
    filled = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": max_grad_norm,
    }
    for key, value in filled.items():
        if config.get(key) == "auto":
            config[key] = value
    config["train_batch_size"] = micro_batch * grad_accum * world_size
    if config.get("bf16", {}).get("enabled") == "auto":
        config["bf16"]["enabled"] = bf16
    leftovers = [key for key, value in config.items() if value == "auto"]
    if leftovers:
        raise ValueError(f"{stage}.json: no value for 'auto' fields {leftovers}")
    return config
