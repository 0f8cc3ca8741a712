"""The register step's configs: when a candidate may replace the champion, and which registry.

Both travel to their components as one JSON parameter each (`GateConfig`,
`RegistryConfig`), and the pipeline settings compose them as their `gate` and
`registry` groups, so a YAML key, a pipeline parameter and these fields are one thing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from components.step_config import StepConfig


class _Frozen(StepConfig):
    model_config = ConfigDict(frozen=True)


class GuardTolerances(_Frozen):
    """How far each guard metric may fall below the champion's (absolute, metric units).

    A fall beyond the tolerance rejects when the guard's interval lies below zero too,
    unless `GateConfig.require_guard_fall_significant` is off.
    """

    semantic_similarity: float = Field(0.01, ge=0)
    format_compliance: float = Field(0.02, ge=0)
    general_holdout: float = Field(0.05, ge=0)
    # Against the references, not the champion: how far the candidate's distinct-caption
    # share may fall below theirs, and its commonest caption's share rise above theirs.
    # 0.5 rejects a model that says one sentence for every record.
    caption_diversity: float = Field(0.5, ge=0, le=1)


class GateConfig(_Frozen):
    """When a candidate may replace the champion."""

    primary_metric: Literal["CIDEr"] = "CIDEr"
    # The candidate must beat the champion's CIDEr by at least this much, absolute...
    cider_min_abs_gain: float = Field(0.02, ge=0)
    # ...and by at least this fraction of the champion's CIDEr.
    cider_min_rel_gain: float = Field(0.02, ge=0)
    # The bootstrap interval of the CIDEr difference must lie above zero.
    require_ci_above_zero: bool = True
    ci_level: float = Field(0.95, gt=0.5, lt=1)
    tolerances: GuardTolerances = Field(default_factory=GuardTolerances)
    # A guard's fall beyond its tolerance rejects only when the guard's bootstrap interval
    # lies below zero: a fall that could be noise is no fall, as a gain that could be noise
    # is no gain. False: the point estimate alone decides, which on a small holdout (80
    # general scenes give a CIDEr interval about 0.7 wide) rejects a candidate that
    # neither forgets nor improves about as often as it passes it.
    require_guard_fall_significant: bool = True


class RegistryConfig(_Frozen):
    """MLflow: where runs are tracked and which registered model the pipeline serves.

    This is the one channel of the tracking URI to every step: a step uses the URI its
    config names, and `$MLFLOW_TRACKING_URI` only when the config names none.
    """

    # None: $MLFLOW_TRACKING_URI.
    tracking_uri: str | None = None
    # None: $MLFLOW_REGISTRY_URI when tracking_uri is None too, else the tracking URI.
    registry_uri: str | None = None
    experiment_name: str = "uicap-retraining"
    model_name: str = "ui-element-captioner"
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"

    @model_validator(mode="after")
    def _aliases_differ(self) -> RegistryConfig:
        if self.champion_alias == self.challenger_alias:
            raise ValueError("champion_alias and challenger_alias must differ")
        return self
