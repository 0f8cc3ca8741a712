"""Labels: one JSON line per record, `{"flow": <flow file name>, "step": <index>, "summary"}`.

A label must name an element step of a given flow: a typo would otherwise leave a record
unlabelled and a label unused without anyone noticing, so it is an error naming the line.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.capture.flow import ELEMENT_STEP_TYPES, Flow


class LabelError(ValueError):
    """A labels file line that cannot be used; the message names the line and field."""


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow: str = Field(min_length=1)
    step: int = Field(ge=0)
    summary: str = Field(min_length=1)


def load_labels(path: Path, flows: list[Flow]) -> dict[tuple[str, int], str]:
    """(flow, step) -> summary, checked against the flows' element steps."""
    steps = {flow.name: flow.steps for flow in flows}
    labels: dict[tuple[str, int], str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise LabelError(f"{path}: cannot read: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{Path(path).name} line {number}"
        try:
            label = Label.model_validate(json.loads(line))
        except json.JSONDecodeError as error:
            raise LabelError(f"{where}: not JSON: {error}") from error
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "line"
            raise LabelError(f"{where}: field {field!r}: {first['msg']}") from None
        if label.flow not in steps:
            raise LabelError(
                f"{where}: field 'flow': {label.flow!r} is none of the flows given "
                f"({', '.join(sorted(steps))})"
            )
        flow_steps = steps[label.flow]
        if label.step >= len(flow_steps) or flow_steps[label.step].type not in ELEMENT_STEP_TYPES:
            raise LabelError(
                f"{where}: field 'step': step {label.step} of {label.flow} is not an element "
                f"step ({', '.join(ELEMENT_STEP_TYPES)})"
            )
        key = (label.flow, label.step)
        if key in labels:
            raise LabelError(f"{where}: a second label for {label.flow} step {label.step}")
        labels[key] = label.summary.strip()
    return labels
