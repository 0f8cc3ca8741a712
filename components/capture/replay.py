"""Replay one flow in a fresh browser context and capture each element step before acting.

For an element step: resolve the element (selectors.resolve), scroll it into view, take its
box (CSS pixels times the device scale factor: the screenshot's pixels), refuse it when
another element covers it, read its type, text and HTML, take the unboxed viewport
screenshot, then act and record what the action did. A failed element step is recorded
with its reason and the flow goes on without that action; a failed navigate or wait stops
the flow, and its remaining element steps are failures that say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.capture.browser import DEFAULT_VIEWPORT, Rendering, new_context
from components.capture.describe import FOCUSED_JS, ElementFacts, covering_element, describe
from components.capture.evidence import PageEvents, observe_after, observe_before, settle
from components.capture.flow import (
    ChangeStep,
    ClickStep,
    DoubleClickStep,
    Flow,
    HoverStep,
    KeyStep,
    NavigateStep,
    ScrollStep,
    SetViewportStep,
    WaitForElementStep,
    WaitForExpressionStep,
)
from components.capture.privacy import Secrets
from components.capture.records import CaptureRecord, Failure, Timings, external_id, screen_id
from components.capture.selectors import StepFailure, describe_selector, resolve, to_locator

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ElementHandle, Frame, Page

DEFAULT_STEP_TIMEOUT_S = 5.0
ELEMENT_ACTIONS = (ClickStep, DoubleClickStep, HoverStep, ChangeStep)


@dataclass(frozen=True)
class ReplaySettings:
    """How flows are replayed; `viewport`/`scale` override the flows' setViewport steps."""

    viewport: tuple[int, int] | None = None
    scale: float | None = None
    redact: tuple[str, ...] = ()
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S


@dataclass
class FlowResult:
    records: list[CaptureRecord] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stopped: list[Failure] = field(default_factory=list)  # non-element steps that failed


def rendering_for(flow: Flow, settings: ReplaySettings) -> Rendering:
    """The flow's first setViewport, overridden by the settings where they say."""
    recorded = next((s for s in flow.steps if isinstance(s, SetViewportStep)), None)
    width, height = DEFAULT_VIEWPORT
    scale, mobile, touch = 1.0, False, False
    if recorded is not None:
        width, height = recorded.width, recorded.height
        scale, mobile, touch = recorded.device_scale_factor, recorded.is_mobile, recorded.has_touch
    if settings.viewport is not None:
        width, height = settings.viewport
    if settings.scale is not None:
        scale = settings.scale
    return Rendering(width, height, scale, mobile, touch)


def replay_flow(
    browser: Browser, flow: Flow, settings: ReplaySettings, secrets: Secrets, timings: Timings
) -> FlowResult:
    """Every element step of `flow` as a record or a failure."""
    rendering = rendering_for(flow, settings)
    context = new_context(browser, rendering)
    try:
        page = context.new_page()
        events = PageEvents()
        events.attach(page)
        return _replay(page, flow, rendering, settings, secrets, timings, events)
    finally:
        context.close()


def _selectors(step: Any) -> list[Any]:
    return list(getattr(step, "selectors", None) or [])


def _replay(
    page: Page,
    flow: Flow,
    rendering: Rendering,
    settings: ReplaySettings,
    secrets: Secrets,
    timings: Timings,
    events: PageEvents,
) -> FlowResult:
    result = FlowResult()
    stopped: str | None = None
    for index, step in enumerate(flow.steps):
        timeout_s = step.timeout / 1000 if step.timeout else settings.step_timeout_s
        is_element = isinstance(step, ELEMENT_ACTIONS)
        if stopped:
            if is_element:
                result.failures.append(
                    Failure(
                        flow.name, index, step.type, _selectors(step), f"not replayed: {stopped}"
                    )
                )
            continue
        counted = is_element  # an element step: it ends as a record or a failure

        def record_of(frame: Frame, element: ElementHandle) -> CaptureRecord:
            return capture(
                page,
                frame,
                element,
                flow,
                index,  # noqa: B023 (called within this iteration only)
                step,  # noqa: B023
                rendering,
                settings,
                secrets,
                timings,
                events,
                timeout_s,  # noqa: B023
            )

        try:
            if is_element:
                with timings.phase("locate"):
                    found = resolve(page, step.frame, step.selectors, timeout_s)
                result.records.append(record_of(found.frame, found.element))
            elif isinstance(step, KeyStep) and step.type == "keyDown":
                target = _focused(page)
                if target is None:
                    with timings.phase("action"):
                        page.keyboard.down(step.key)
                    continue
                frame, element = target
                counted = True
                try:
                    record = record_of(frame, element)
                except StepFailure as failure:
                    page.keyboard.down(step.key)  # the key still goes to the page
                    raise failure
                result.records.append(record)
            else:
                with timings.phase("other steps"):
                    if run_step(page, step, settings, timeout_s) == "close":
                        stopped = f"step {index} closed the page"
        except StepFailure as failure:
            entry = Failure(flow.name, index, step.type, _selectors(step), failure.reason)
            if counted:
                result.failures.append(entry)
            else:
                result.stopped.append(entry)
                stopped = f"step {index} ({step.type}) failed: {failure.reason}"
    return result


def _focused(page: Page) -> tuple[Frame, ElementHandle] | None:
    """The element a key step goes to: the focused one, into frames and shadow roots."""
    frame = page.main_frame
    while True:
        handle = frame.evaluate_handle(FOCUSED_JS).as_element()
        if handle is None:
            return None
        inner = handle.content_frame()
        if inner is None:
            return frame, handle
        frame = inner


def action_type(step: Any, facts: ElementFacts) -> str:
    if isinstance(step, ChangeStep):
        return "select" if facts.is_select else "type"
    return {"click": "click", "doubleClick": "double_click", "hover": "hover", "keyDown": "key"}[
        step.type
    ]


def capture(
    page: Page,
    frame: Frame,
    element: ElementHandle,
    flow: Flow,
    index: int,
    step: Any,
    rendering: Rendering,
    settings: ReplaySettings,
    secrets: Secrets,
    timings: Timings,
    events: PageEvents,
    timeout_s: float,
) -> CaptureRecord:
    """Screenshot, box, facts, then the action and its evidence."""
    from playwright.sync_api import Error

    timeout_ms = timeout_s * 1000
    with timings.phase("box"):
        try:
            element.scroll_into_view_if_needed(timeout=timeout_ms)
        except Error as error:
            raise StepFailure(
                f"not visible: cannot scroll it into view ({_first(error)})"
            ) from None
        box = element.bounding_box()
        if box is None or box["width"] <= 0 or box["height"] <= 0:
            raise StepFailure("not visible: the element has no box")
        covered = covering_element(element)
        if covered:
            raise StepFailure(f"covered by another element: {covered} is drawn over its centre")
    x0, y0 = box["x"], box["y"]
    x1, y1 = x0 + box["width"], y0 + box["height"]
    if x1 <= 0 or y1 <= 0 or x0 >= rendering.width or y0 >= rendering.height:
        raise StepFailure(f"not visible: its box {box} is outside the viewport after scrolling")
    with timings.phase("html"):
        facts = describe(element, list(settings.redact))
    if isinstance(step, ChangeStep) and facts.is_password:
        secrets.add(step.value)
    with timings.phase("screenshot"):
        masks = [f.locator(sel) for f in page.frames for sel in settings.redact]
        png = page.screenshot(
            type="png", animations="disabled", caret="hide", mask=masks, mask_color="#000000"
        )
    page_url = page.url
    with timings.phase("action"):
        before = observe_before(page, frame, events)
        act(page, element, step, facts, timeout_ms, box)
    with timings.phase("settle"):
        expected = next(
            (e.get("url") for e in step.asserted_events if e.get("type") == "navigation"), None
        )
        missed = settle(page, frame, before, events, expected, timeout_ms)
        evidence = observe_after(page, frame, before, events)
    if missed:
        evidence["missed"] = missed
    if isinstance(step, ChangeStep):
        evidence["value"] = "[password]" if facts.is_password else step.value
    if isinstance(step, KeyStep):
        evidence["key"] = step.key
    scale = rendering.scale
    return CaptureRecord(
        flow=flow.name,
        step=index,
        external_id=external_id(flow.name, index, rendering.width, rendering.height, scale),
        image_png=png,
        bbox=[x0 * scale, y0 * scale, x1 * scale, y1 * scale],
        action_type=action_type(step, facts),
        element_type=facts.element_type,
        text=facts.text,
        html=facts.html,
        page_url=page_url,
        screen_id=screen_id(page_url),
        evidence=evidence,
    )


def _first(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def act(
    page: Page,
    element: ElementHandle,
    step: Any,
    facts: ElementFacts,
    timeout_ms: float,
    box: dict[str, float],
) -> None:
    """Do what the step recorded; a Playwright error becomes a failure saying what happened."""
    from playwright.sync_api import Error
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    verb = {
        "click": "clicking",
        "doubleClick": "double-clicking",
        "hover": "hovering",
        "change": "changing the value",
        "keyDown": "pressing the key",
    }[step.type]
    try:
        if isinstance(step, ClickStep):  # doubleClick too
            position = None
            if (
                step.offset_x is not None
                and step.offset_y is not None
                and 0 <= step.offset_x < box["width"]
                and 0 <= step.offset_y < box["height"]
            ):
                position = {"x": step.offset_x, "y": step.offset_y}
            if step.type == "doubleClick":
                element.dblclick(position=position, timeout=timeout_ms)  # type: ignore[arg-type]
            else:
                element.click(position=position, timeout=timeout_ms)  # type: ignore[arg-type]
        elif isinstance(step, HoverStep):
            element.hover(timeout=timeout_ms)
        elif isinstance(step, ChangeStep):
            if facts.is_select:
                element.select_option(step.value, timeout=timeout_ms)
            else:
                element.fill(step.value, timeout=timeout_ms)
        elif isinstance(step, KeyStep):
            page.keyboard.down(step.key)
    except PlaywrightTimeout as error:
        raise StepFailure(
            f"timed out after {timeout_ms / 1000:g}s while {verb}: {_first(error)}"
        ) from None
    except Error as error:
        raise StepFailure(f"{verb} failed: {_first(error)}") from None


def run_step(page: Page, step: Any, settings: ReplaySettings, timeout_s: float) -> str | None:
    """A step that captures nothing: navigate, setViewport, scroll, keyUp, the waits."""
    from playwright.sync_api import Error
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    timeout_ms = timeout_s * 1000
    try:
        if isinstance(step, NavigateStep):
            page.goto(step.url, wait_until="load", timeout=timeout_ms)
        elif isinstance(step, SetViewportStep):
            if settings.viewport is None:
                page.set_viewport_size({"width": step.width, "height": step.height})
        elif isinstance(step, KeyStep):
            page.keyboard.up(step.key)
        elif isinstance(step, ScrollStep):
            if step.selectors:
                found = resolve(page, step.frame, step.selectors, timeout_s)
                found.element.evaluate("(el, [x, y]) => el.scrollTo(x, y)", [step.x, step.y])
            else:
                page.evaluate("([x, y]) => window.scrollTo(x, y)", [step.x, step.y])
        elif isinstance(step, WaitForElementStep):
            wait_for_element(page, step, timeout_s)
        elif isinstance(step, WaitForExpressionStep):
            page.main_frame.wait_for_function(step.expression, timeout=timeout_ms)
        elif step.type == "close":
            return "close"
    except PlaywrightTimeout as error:
        raise StepFailure(f"timed out after {timeout_s:g}s: {_first(error)}") from None
    except Error as error:
        raise StepFailure(f"{step.type} failed: {_first(error)}") from None
    return None


def wait_for_element(page: Page, step: WaitForElementStep, timeout_s: float) -> None:
    """Until some alternative matches `operator count` elements (visible ones if asked)."""
    import time

    compare = {">=": int.__ge__, "==": int.__eq__, "<=": int.__le__}[step.operator]
    deadline = time.monotonic() + timeout_s
    while True:
        from components.capture.selectors import find_frame

        frame = find_frame(page, step.frame)
        if frame is not None:
            for selector in step.selectors:
                locator = to_locator(frame, selector)
                if step.visible:
                    locator = locator.filter(visible=True)
                if compare(locator.count(), step.count):
                    return
        if time.monotonic() >= deadline:
            wanted = " or ".join(repr(describe_selector(s)) for s in step.selectors)
            raise StepFailure(
                f"timed out after {timeout_s:g}s waiting for {wanted} to match "
                f"{step.operator} {step.count}{' visible' if step.visible else ''} elements"
            )
        page.wait_for_timeout(50)
