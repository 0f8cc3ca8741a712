"""Recorder flows: the JSON "user flow" the Chrome DevTools Recorder exports.

The schema is @puppeteer/replay's (`src/Schema.ts`): `{"title", "steps": [...]}`, each step
tagged by `type`. Only what replay needs is modelled; unknown extra fields (`button`,
`deviceType`, ...) are kept, while unknown step types are refused, so that no recorded
action is skipped silently. Every error names the flow, the step index and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# One alternative: a CSS/aria/text/xpath/pierce selector, or a path through shadow roots.
Selector = str | list[str]


class FlowError(ValueError):
    """A flow file that cannot be replayed; the message names the flow, step and field."""


class _Step(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    target: str = "main"
    frame: list[int] = Field(default_factory=list)
    timeout: int | None = Field(default=None, gt=0)  # milliseconds, as the Recorder writes
    asserted_events: list[dict[str, Any]] = Field(default_factory=list, alias="assertedEvents")


class _ElementStep(_Step):
    selectors: list[Selector] = Field(min_length=1)


class ClickStep(_ElementStep):
    type: Literal["click"]
    offset_x: float | None = Field(default=None, alias="offsetX")
    offset_y: float | None = Field(default=None, alias="offsetY")


class DoubleClickStep(ClickStep):
    type: Literal["doubleClick"]  # type: ignore[assignment]


class HoverStep(_ElementStep):
    type: Literal["hover"]


class ChangeStep(_ElementStep):
    type: Literal["change"]
    value: str


class KeyStep(_Step):
    type: Literal["keyDown", "keyUp"]
    key: str = Field(min_length=1)


class NavigateStep(_Step):
    type: Literal["navigate"]
    url: str = Field(min_length=1)


class ScrollStep(_Step):
    type: Literal["scroll"]
    selectors: list[Selector] | None = None
    x: float = 0
    y: float = 0


class SetViewportStep(_Step):
    type: Literal["setViewport"]
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    device_scale_factor: float = Field(default=1, gt=0, alias="deviceScaleFactor")
    is_mobile: bool = Field(default=False, alias="isMobile")
    has_touch: bool = Field(default=False, alias="hasTouch")


class WaitForElementStep(_ElementStep):
    type: Literal["waitForElement"]
    operator: Literal[">=", "==", "<="] = ">="
    count: int = Field(default=1, ge=0)
    visible: bool = True


class WaitForExpressionStep(_Step):
    type: Literal["waitForExpression"]
    expression: str = Field(min_length=1)


class CloseStep(_Step):
    type: Literal["close"]


Step = Annotated[
    ClickStep
    | DoubleClickStep
    | HoverStep
    | ChangeStep
    | KeyStep
    | NavigateStep
    | ScrollStep
    | SetViewportStep
    | WaitForElementStep
    | WaitForExpressionStep
    | CloseStep,
    Field(discriminator="type"),
]
STEP_TYPES = [
    "click",
    "doubleClick",
    "hover",
    "change",
    "keyDown",
    "keyUp",
    "navigate",
    "scroll",
    "setViewport",
    "waitForElement",
    "waitForExpression",
    "close",
]
_STEP = TypeAdapter(Step)
# Steps that act on one element the capture can box (key steps: the focused element).
ELEMENT_STEP_TYPES = ("click", "doubleClick", "hover", "change", "keyDown")


class Flow(BaseModel):
    """A parsed flow; `name` is the file's name, which labels and records refer to."""

    name: str
    title: str
    steps: list[Any]


def parse_flow(data: Any, name: str) -> Flow:
    """A Flow from the Recorder's JSON, or FlowError naming the first bad step and field."""
    if not isinstance(data, dict):
        raise FlowError(f"{name}: a Recorder flow is a JSON object, got {type(data).__name__}")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise FlowError(f"{name}: field 'steps' must be a non-empty list")
    parsed: list[Any] = []
    for index, raw in enumerate(steps):
        where = f"{name} step {index}"
        if not isinstance(raw, dict):
            raise FlowError(f"{where}: a step is a JSON object, got {type(raw).__name__}")
        kind = raw.get("type")
        if kind not in STEP_TYPES:
            raise FlowError(
                f"{where}: field 'type': {kind!r} is not a step type capture replays "
                f"({', '.join(STEP_TYPES)})"
            )
        try:
            step = _STEP.validate_python(raw)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"][1:]) or "step"
            raise FlowError(f"{where} ({kind}): field {field!r}: {first['msg']}") from None
        if step.target != "main":
            raise FlowError(
                f"{where} ({kind}): field 'target': {step.target!r}; only the main page "
                "('main') is replayed, not popups"
            )
        parsed.append(step)
    title = data.get("title")
    return Flow(name=name, title=title if isinstance(title, str) else name, steps=parsed)


def load_flow(path: Path) -> Flow:
    """Read and parse one exported flow file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise FlowError(f"{path}: cannot read: {error}") from error
    except json.JSONDecodeError as error:
        raise FlowError(f"{path.name}: not JSON: {error}") from error
    return parse_flow(data, Path(path).name)


def load_flows(paths: list[Path]) -> list[Flow]:
    """All flows; two files with the same name would make labels ambiguous, so refused."""
    flows = [load_flow(path) for path in paths]
    names = [flow.name for flow in flows]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise FlowError(f"flow file names must be unique (labels refer to them): {twice}")
    return flows


def rewrite_origin(flow: Flow, rewrites: dict[str, str]) -> Flow:
    """The flow with recorded origins replaced (record on staging, replay on a local build)."""
    if not rewrites:
        return flow

    def moved(url: str) -> str:
        for old, new in rewrites.items():
            if url == old or url.startswith(old.rstrip("/") + "/"):
                return new.rstrip("/") + url[len(old.rstrip("/")) :]
        return url

    steps = []
    for step in flow.steps:
        update: dict[str, Any] = {}
        if isinstance(step, NavigateStep):
            update["url"] = moved(step.url)
        if step.asserted_events:
            update["asserted_events"] = [
                {**event, "url": moved(event["url"])} if "url" in event else event
                for event in step.asserted_events
            ]
        steps.append(step.model_copy(update=update) if update else step)
    return flow.model_copy(update={"steps": steps})
