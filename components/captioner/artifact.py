"""The model artifact: trained weights plus `uicap_model.json`, enough to rebuild the captioner.

LoRA runs write `adapter/` (PEFT format, with the processor files next to it); full runs
write `model/`, a complete model folder that can itself serve as a base. The metadata
names the base model and revision, the family, the prompt template version, the data
fingerprint, the generation settings and the training config, so evaluation and serving
need nothing from the training run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from components.captioner.families import Turn, VLMFamily, get_family
from components.captioner.generation import GenerationConfig
from components.content_hash import check_pinned

METADATA_FILE = "uicap_model.json"
ADAPTER_DIR = "adapter"
FULL_DIR = "model"


class TrainMetrics(BaseModel):
    """What the run achieved; `loss_curve` rows are (step, mean train loss, val loss)."""

    model_config = ConfigDict(extra="allow")

    initial_val_loss: float | None = None
    best_val_loss: float | None = None
    best_step: int | None = None
    final_step: int = 0
    stopped_early: bool = False
    loss_curve: list[tuple[int, float | None, float]] = Field(default_factory=list)
    # Per split, per reason: records that could not be trained on whole.
    skipped: dict[str, dict[str, int]] = Field(default_factory=dict)
    skipped_ids: dict[str, list[str]] = Field(default_factory=dict)
    records: dict[str, int] = Field(default_factory=dict)
    samples_seen: int = 0
    tokens_seen: int = 0
    train_runtime_s: float = 0.0
    peak_memory_mb: float = 0.0


class ModelMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    kind: Literal["lora", "full"]
    weights: str
    base_model: str
    base_revision: str | None = None
    family: str
    prompt_template_version: str | None = None
    data_fingerprint: str | None = None
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    train_config: dict[str, Any] = Field(default_factory=dict)
    metrics: TrainMetrics = Field(default_factory=TrainMetrics)
    pipeline_run_id: str | None = None
    mlflow_run_id: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def write_metadata(output: Path, metadata: ModelMetadata) -> Path:
    path = output / METADATA_FILE
    path.write_text(metadata.model_dump_json(indent=2) + "\n")
    return path


def read_metadata(artifact: Path) -> ModelMetadata:
    path = Path(artifact) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{artifact} is not a uicap model artifact: no {METADATA_FILE}")
    return ModelMetadata.model_validate(json.loads(path.read_text()))


@dataclass
class Captioner:
    """A loaded captioner: the family's code path plus the model's own generation settings."""

    family: VLMFamily
    model: Any
    processor: Any
    metadata: ModelMetadata

    def caption(self, turns: list[Turn], max_new_tokens: int | None = None) -> list[str]:
        limit = max_new_tokens or self.metadata.generation.max_new_tokens
        return self.family.generate(self.model, self.processor, turns, limit)


def load_captioner(
    artifact: Path,
    base_model: str | Path | None = None,
    *,
    device: str | None = None,
    dtype: Any = None,
    merge: bool = False,
) -> Captioner:
    """Rebuild the captioner: the base (or `base_model`, where it lives here) plus the adapter."""
    artifact = Path(artifact)
    metadata = read_metadata(artifact)
    family = get_family(metadata.family)
    weights = artifact / metadata.weights
    if metadata.kind == "full":
        model, processor = family.load(weights, dtype=dtype, device=device)
    else:
        from peft import PeftModel

        base = base_model or metadata.base_model
        if Path(base).is_dir():
            # A local base is pinned by its content hash: an adapter on other weights
            # would caption, wrongly, without a word.
            check_pinned(Path(base), metadata.base_revision, "base model")
        model, processor = family.load(base, metadata.base_revision, dtype=dtype, device=device)
        model = PeftModel.from_pretrained(model, str(weights), is_trainable=False)
        if merge:
            model = model.merge_and_unload()
    return Captioner(family, model.eval(), processor, metadata)
