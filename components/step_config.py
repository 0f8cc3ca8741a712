"""What every step's config shares: strict fields, one JSON parameter, and speed-only marks.

A step's settings travel to its KFP component as one JSON string (never a dozen loose
parameters whose defaults drift from the model's), and the component reads them back
with `from_parameter`; an empty string means the defaults written in the model.

Some settings change how fast a step runs, never what it produces (worker counts, cache
sizes, how often progress is logged or a checkpoint written). They are marked once, on
the field, with `json_schema_extra=SPEED_ONLY`, and both judges of "is this the same
run?" read that mark: the lineage key (no new data, no retraining) and the resume check
of a training run (a checkpoint may be continued). So the two cannot disagree.
"""

from __future__ import annotations

import json
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict

SPEED_ONLY: dict[str, Any] = {"speed_only": True}


class StepConfig(BaseModel):
    """Base of the step configs: unknown keys are errors, not silently ignored values."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def from_parameter(cls, text: str) -> Self:
        """The config from a component parameter: JSON (or YAML) text; "" gives the defaults."""
        loaded = yaml.safe_load(text) if text.strip() else None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"a {cls.__name__} must be a mapping, not {type(loaded).__name__}")
        return cls.model_validate(loaded or {})

    def to_parameter(self) -> str:
        """One line of JSON with sorted keys (KFP copies defaults into the YAML, line by line)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def _is_speed_only(field: Any) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("speed_only"))


def _model_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def speed_only_keys(model: type[BaseModel]) -> frozenset[str]:
    """Dotted names of the fields marked SPEED_ONLY, in `model` and its nested groups."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        if _is_speed_only(field):
            found.add(name)
        elif (nested := _model_type(field.annotation)) is not None:
            found |= {f"{name}.{key}" for key in speed_only_keys(nested)}
    return frozenset(found)


def decisive(config: BaseModel) -> dict[str, Any]:
    """`config` as JSON-ready nested data without its speed-only fields: what decides a result."""
    data = config.model_dump(mode="json")
    for key in speed_only_keys(type(config)):
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
    return data


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys and plain values (as MLflow params and a readable diff want them)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            out.update(flatten(value, dotted))
        else:
            out[dotted] = value
    return out
