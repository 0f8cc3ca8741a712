"""The prepare step's config: image size, prompt budget, splits, seed, workers.

It travels to `prepare_op` as one JSON parameter, the pipeline settings compose it as
their `prepare` group, and the lineage check reads it from the same JSON, so the YAML
keys, the component and the lineage key cannot drift apart. The defaults are the
constants of the modules that use them (boxing, prompt, splits), written there once.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from components.prepare.boxing import DEFAULT_MAX_SIDE
from components.prepare.prompt import DEFAULT_HTML_BUDGET
from components.prepare.splits import DEFAULT_FRACTIONS
from components.prepare.token_count import HtmlTokens
from components.step_config import SPEED_ONLY, StepConfig

Fraction = Annotated[float, Field(ge=0, le=1)]


class _Frozen(StepConfig):
    model_config = ConfigDict(frozen=True)


class SplitFractions(_Frozen):
    """Shares of screens per split; a screen never straddles two splits."""

    train: Fraction = DEFAULT_FRACTIONS[0]
    validation: Fraction = DEFAULT_FRACTIONS[1]
    test: Fraction = DEFAULT_FRACTIONS[2]

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.validation + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + validation + test must sum to 1, not {total:g}")
        if self.train == 0 or self.test == 0:
            raise ValueError("train and test must each get a share above 0")
        return self

    def as_tuple(self) -> tuple[float, float, float]:
        return self.train, self.validation, self.test


class PrepareConfig(_Frozen):
    """Turning ingested records into boxed screenshots and conversations."""

    # Longest image side in pixels after resizing (the box is drawn after resizing).
    max_image_side: int = Field(DEFAULT_MAX_SIDE, ge=16)
    # Tokens of surrounding HTML kept in the prompt; longer HTML is cut to this budget.
    html_budget_tokens: int = Field(DEFAULT_HTML_BUDGET, ge=0)
    # What the budget counts: the base model's tokenizer tokens ("model"), or a model-free
    # count ("pattern", as prepared data from before this setting was counted).
    html_tokens: HtmlTokens = "model"
    splits: SplitFractions = Field(default_factory=SplitFractions)
    seed: int = 0
    # Worker processes drawing and encoding images: the output is the same for any count.
    workers: int = Field(1, ge=1, json_schema_extra=SPEED_ONLY)
