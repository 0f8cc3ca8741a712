"""The training configuration: a few typed groups, loaded from YAML and patched with `key=value`.

A flat list of dozens of `training_*` flags is hard to read and easy to misspell; groups
with `extra="forbid"` make a typo in a YAML file or an override a clear error instead of
a silently ignored setting. Fields that only change speed or bookkeeping carry
`SPEED_ONLY` (components/step_config.py): the lineage key and the resume check both
ignore them, and nothing else decides that.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from components.captioner.generation import GenerationConfig
from components.config_overrides import apply_overrides
from components.step_config import SPEED_ONLY, StepConfig
from components.step_config import flatten as flatten_dict

# How a part outside the text model trains: not at all, with LoRA, or in full.
TuneMode = Literal["frozen", "lora", "full"]


class _Group(StepConfig):
    model_config = ConfigDict(validate_assignment=True)


class LoraConfig(_Group):
    """Low-rank adapters; the default targets are the family's LM attention projections."""

    rank: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    # Regex over module names; None means the family's `lora_target_regex`: every linear
    # projection of every text layer (attention, linear attention and MLP).
    target_regex: str | None = None
    # Modules trained in full next to the adapters, as MiniCPM-V's recipe does for the
    # resampler/merger and the embeddings (names as peft's `modules_to_save` takes them).
    modules_to_save: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _regex_compiles(self) -> LoraConfig:
        if self.target_regex is not None:
            try:
                re.compile(self.target_regex)
            except re.error as error:
                raise ValueError(f"target_regex does not compile: {error}") from None
        return self


class OptimConfig(_Group):
    """AdamW with a cosine schedule after a linear warm-up."""

    # 1e-4 for LoRA: the official MiniCPM-V scripts' 1e-6 under-trains adapters.
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    max_grad_norm: float = Field(1.0, gt=0)


class BatchConfig(_Group):
    """How records become batches: sizes, token budget, workers and length grouping."""

    # Per device; one optimizer step sees batch_size x grad_accum x processes records.
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(4, ge=1)
    # Records longer than this are skipped and counted (image tokens are never cut).
    max_length: int = Field(2048, ge=16)
    # The share of a split's records that may be skipped as too long before the run
    # fails: a run that silently trains on a fraction of its data is worse than none.
    max_skip_fraction: float = Field(0.01, ge=0, le=1)
    # DataLoader workers that load and encode images. None: none on a CPU-only machine
    # (there they would take the cores the training math runs on: measured slower on 2
    # cores), else up to 4 per process from the CPUs the node has.
    num_workers: int | None = Field(None, ge=0, json_schema_extra=SPEED_ONLY)
    # Batches of similar length waste little on padding; records are shuffled within
    # mega-batches of `group_size` batches, then sorted by length.
    group_by_length: bool = True
    group_size: int = Field(32, ge=1)
    # The validation loss is token-weighted, so its batch size changes only how fast it
    # is computed (and float rounding in the last digits).
    eval_batch_size: int = Field(8, ge=1, json_schema_extra=SPEED_ONLY)
    # Encoded records (token ids + image tensors) kept in memory for later epochs and
    # validation passes, in MiB; 0 encodes every record every time.
    encoding_cache_mb: int = Field(2048, ge=0, json_schema_extra=SPEED_ONLY)
    # Cap on validation records per evaluation (None: the whole split).
    eval_max_records: int | None = Field(None, ge=1)


class ScheduleConfig(_Group):
    """How long to train, when to evaluate and checkpoint, and when to give up."""

    epochs: float = Field(3.0, gt=0)
    # When set, the run is exactly this many optimizer steps (epochs is ignored).
    max_steps: int | None = Field(None, ge=1)
    eval_steps: int = Field(50, ge=1)
    eval_at_start: bool = True
    # Checkpoints hold the whole state, so when they are written (and how many are kept)
    # never changes the weights; the best adapter is saved at evaluations, not here.
    save_steps: int = Field(50, ge=1, json_schema_extra=SPEED_ONLY)
    keep_checkpoints: int = Field(2, ge=1, json_schema_extra=SPEED_ONLY)
    # Evaluations without improvement before stopping early (None: never stop early).
    patience: int | None = Field(3, ge=1)
    min_delta: float = Field(0.0, ge=0)
    log_steps: int = Field(1, ge=1, json_schema_extra=SPEED_ONLY)


class TrainConfig(_Group):
    """Everything that decides what a training run computes (paths and ids come from the CLI)."""

    family: str = "minicpmv4_6"
    base_revision: str | None = None
    full: bool = False
    seed: int = 0
    # auto: bf16 on a GPU, fp32 on the CPU.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # None: on for a GPU, off on the CPU (where memory is not the limit).
    gradient_checkpointing: bool | None = None
    deepspeed: Literal["zero2", "zero3"] | None = None
    # General (replay) records mixed into each epoch, as a share of the task's training
    # records: rehearsing what the base already knows keeps the fine-tune from erasing it
    # (the forgetting the evaluation's general holdout measures). Needs replay data.
    replay_fraction: float = Field(0.0, ge=0.0, le=4.0)
    # The vision tower and the merger that feeds its tokens to the text model stay frozen
    # by default (the base already sees; the task is in the text), with LoRA and with
    # full=true alike; `lora` adapts their linears, `full` trains them in full.
    tune_vision: TuneMode = "frozen"
    tune_merger: TuneMode = "frozen"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @model_validator(mode="after")
    def _full_has_no_adapters(self) -> TrainConfig:
        if self.full and self.lora.modules_to_save:
            raise ValueError("lora.modules_to_save has no meaning with full=true (all is trained)")
        towers = {"tune_vision": self.tune_vision, "tune_merger": self.tune_merger}
        adapted = [f"{key}=lora" for key, mode in towers.items() if mode == "lora"]
        if self.full and adapted:
            raise ValueError(
                f"{', '.join(adapted)} has no meaning with full=true (no adapters): "
                "use full or frozen"
            )
        return self


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """The config from an optional YAML file, then the overrides, validated as one."""
    text = Path(path).read_text() if path is not None else ""
    return parse_config(text, overrides, source=str(path) if path else "overrides")


def parse_config(
    text: str, overrides: list[str] | None = None, *, source: str = "config"
) -> TrainConfig:
    """The config from YAML (or JSON) text, as a pipeline parameter carries it, then the
    `key=value` overrides (the parser the pipeline settings use too)."""
    loaded = yaml.safe_load(text) if text.strip() else None
    if loaded is not None and not isinstance(loaded, dict):
        raise ValueError(f"{source}: a training config must be a mapping, not {type(loaded)}")
    data = apply_overrides(loaded or {}, list(overrides or []))
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"invalid training config ({source}):\n{error}") from error


def flatten(config: TrainConfig) -> dict[str, Any]:
    """Dotted keys and plain values, as MLflow params want them."""
    return flatten_dict(config.model_dump(mode="json"))


def from_settings(settings: Any) -> TrainConfig:
    """The training config of a pipeline run, from the pipeline settings (their `train`)."""
    return settings.train.config()
