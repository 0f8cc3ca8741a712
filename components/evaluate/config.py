"""The evaluate step's config: batching, caption length, bootstrap resamples and seed.

It travels to `evaluate_op` as one JSON parameter, and the pipeline settings compose it
as their `evaluate` group. The caption length defaults to the one the captioner
generates with (`GenerationConfig`), so training, evaluation and serving agree.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from components.captioner.generation import GenerationConfig
from components.evaluate.bootstrap import MIN_RESAMPLES
from components.step_config import StepConfig


class EvaluateConfig(StepConfig):
    """Scoring the candidate and the champion on the same records."""

    model_config = ConfigDict(frozen=True)

    # Records per generation batch.
    batch_size: int = Field(8, ge=1)
    # Upper bound on each caption's length in tokens.
    max_new_tokens: int = Field(GenerationConfig.model_fields["max_new_tokens"].default, ge=1)
    # Paired bootstrap resamples for confidence intervals of metric differences.
    bootstrap_resamples: int = Field(MIN_RESAMPLES, ge=MIN_RESAMPLES)
    # Seed of the bootstrap and of the report's random sample.
    seed: int = 0
