"""How the recipe turns a loaded base into the model it trains: dtypes, checkpointing,
and adapters or full training with the towers the config freezes.

The training recipe and the run planner (components/plan) both call this, so the
memory a plan predicts is that of the model the recipe really builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from components.captioner.families import VLMFamily
from components.train.config import TrainConfig
from components.train.targets import (
    adapted_modules,
    adapter_targets,
    frozen_towers,
    trained_in_full,
)


@dataclass(frozen=True)
class Precision:
    """The dtype the base loads in and the dtype vision inputs are cast to (None: as is)."""

    bf16: bool
    load_dtype: torch.dtype
    input_dtype: torch.dtype | None


def precision(config: TrainConfig, *, on_gpu: bool) -> Precision:
    # LoRA trains small fp32 adapters over a bf16 base; full training keeps fp32 master
    # weights and computes in bf16 under autocast (or DeepSpeed's bf16 mode).
    bf16 = config.precision == "bf16" or (config.precision == "auto" and on_gpu)
    load = torch.bfloat16 if bf16 and not config.full else torch.float32
    inputs = torch.bfloat16 if bf16 and (not config.full or config.deepspeed) else None
    return Precision(bf16=bf16, load_dtype=load, input_dtype=inputs)


def checkpointing(config: TrainConfig, *, on_gpu: bool) -> bool:
    setting = config.gradient_checkpointing
    return setting if setting is not None else on_gpu


@dataclass
class TrainableModel:
    model: Any
    # LoRA: modules adapted, by kind, and modules trained in full next to the adapters.
    adapted: dict[str, int] = field(default_factory=dict)
    in_full: list[str] = field(default_factory=list)

    @property
    def trainable(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    @property
    def total(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def make_trainable(
    model: Any, config: TrainConfig, family: VLMFamily, *, gradient_checkpointing: bool
) -> TrainableModel:
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.full:
        model.requires_grad_(True)
        for module in frozen_towers(config, family):
            model.get_submodule(module).requires_grad_(False)
        return TrainableModel(model)
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = adapter_targets(config, family)
    model = get_peft_model(
        model,
        PeftLoraConfig(
            r=config.lora.rank,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=targets.target_regex,
            modules_to_save=targets.modules_to_save or None,
            bias="none",
        ),
    )
    return TrainableModel(model, adapted_modules(model, family), trained_in_full(model, family))


def adamw_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Decay for matrices, none for vectors; empty groups are dropped (ZeRO removes them and
    the scheduler would then disagree)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]
