"""Which modules a LoRA run adapts or trains in full, and a count of them by kind.

The family names its text layers' linears (the default adapter targets), its vision
tower and its merger; the config says whether the last two stay frozen, get adapters,
or train in full. The counts go to the training log and the MLflow run, so a run that
adapted less than intended (an attention-only regex on a hybrid model) shows it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from components.captioner.families import VLMFamily
from components.train.config import TrainConfig

# What peft puts in front of the base model's module names.
_PEFT_PREFIX = re.compile(r"^(base_model\.model\.)+")


@dataclass(frozen=True)
class AdapterTargets:
    """peft's `target_modules` (one regex) and `modules_to_save` for one run."""

    target_regex: str
    modules_to_save: list[str]


def adapter_targets(config: TrainConfig, family: VLMFamily) -> AdapterTargets:
    """The text rule (the config's regex or the family's), plus the towers the config tunes."""
    patterns = [config.lora.target_regex or family.lora_target_regex]
    in_full = list(config.lora.modules_to_save)
    towers = (
        ("tune_vision", config.tune_vision, family.vision_lora_regex, family.vision_modules),
        ("tune_merger", config.tune_merger, family.merger_lora_regex, family.merger_modules),
    )
    for setting, mode, regex, modules in towers:
        if mode == "frozen":
            continue
        if not (regex if mode == "lora" else modules):
            raise ValueError(f"{setting}={mode}: family {family.name} names no such modules")
        if mode == "lora":
            patterns.append(regex)
        else:
            in_full.extend(module for module in modules if module not in in_full)
    regex = patterns[0] if len(patterns) == 1 else "|".join(f"(?:{p})" for p in patterns)
    return AdapterTargets(target_regex=regex, modules_to_save=in_full)


def frozen_towers(config: TrainConfig, family: VLMFamily) -> list[str]:
    """The vision/merger modules a full fine-tune leaves frozen (the settings' default)."""
    frozen = [] if config.tune_vision != "frozen" else list(family.vision_modules)
    if config.tune_merger == "frozen":
        frozen += list(family.merger_modules)
    return frozen


def module_kind(name: str, family: VLMFamily) -> str:
    """`vision`, `merger`, or the text block a module sits in (self_attn, linear_attn, mlp)."""
    name = _PEFT_PREFIX.sub("", name)
    for kind, modules in (("merger", family.merger_modules), ("vision", family.vision_modules)):
        if any(name == module or name.startswith(module + ".") for module in modules):
            return kind
    parts = name.split(".")
    return parts[-2] if len(parts) >= 2 else name


def adapted_modules(model: Any, family: VLMFamily) -> dict[str, int]:
    """How many modules carry LoRA adapters, by kind, e.g. {"linear_attn": 15, "mlp": 12}."""
    from peft.tuners.lora import LoraLayer

    counts = Counter(
        module_kind(name, family)
        for name, module in model.named_modules()
        if isinstance(module, LoraLayer)
    )
    return dict(sorted(counts.items()))


def trained_in_full(model: Any, family: VLMFamily) -> list[str]:
    """Modules peft trains in full next to the adapters (`modules_to_save`), by name."""
    from peft.utils import ModulesToSaveWrapper

    return sorted(
        _PEFT_PREFIX.sub("", name)
        for name, module in model.named_modules()
        if isinstance(module, ModulesToSaveWrapper)
    )
