"""Recorder selectors -> Playwright locators, and resolving a step's element with a reason.

A step lists alternatives; each is a CSS selector, an `aria/`, `text/`, `xpath/` or
`pierce/` selector, or a list of those (a path through open shadow roots). The first
alternative that matches exactly one visible element wins. When none does before the
timeout, the failure says what was seen: nothing matched, several matched, or the one
match was not visible; a reason a labeller and the recorder of the flow can act on.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.capture.flow import Selector

if TYPE_CHECKING:
    from playwright.sync_api import ElementHandle, Frame, Locator, Page

POLL_S = 0.05
# `aria/Name[role="button"]`: Puppeteer's ARIA query, accessible name plus optional role.
ARIA = re.compile(r'^(?P<name>.*?)(?:\[role=["\']?(?P<role>[\w-]+)["\']?\])?$', re.S)
# Roles tried for an `aria/Name` without a role (what the Recorder names most).
NAMED_ROLES = [
    "button",
    "link",
    "textbox",
    "checkbox",
    "radio",
    "combobox",
    "tab",
    "menuitem",
    "option",
    "switch",
    "searchbox",
]


class StepFailure(Exception):
    """An element step that could not be captured; `reason` says what happened."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe_selector(selector: Selector) -> str:
    """One alternative as text: a shadow path joined by ' >>> '."""
    return selector if isinstance(selector, str) else " >>> ".join(selector)


def _part(scope: Frame | Locator, part: str) -> Locator:
    if part.startswith("aria/"):
        match = ARIA.match(part[len("aria/") :])
        assert match is not None
        name, role = match["name"], match["role"]
        if role:
            return scope.get_by_role(role, name=name, exact=True)  # type: ignore[arg-type]
        found = scope.get_by_label(name, exact=True)
        for candidate in NAMED_ROLES:
            found = found.or_(scope.get_by_role(candidate, name=name, exact=True))  # type: ignore[arg-type]
        return found
    if part.startswith("text/"):
        return scope.get_by_text(part[len("text/") :])
    if part.startswith("xpath/"):
        return scope.locator("xpath=" + part[len("xpath/") :])
    if part.startswith("pierce/"):
        return scope.locator("css=" + part[len("pierce/") :])  # Playwright's CSS pierces
    return scope.locator("css=" + part)


def to_locator(frame: Frame, selector: Selector) -> Locator:
    """The Playwright locator of one Recorder alternative inside `frame`."""
    parts = [selector] if isinstance(selector, str) else list(selector)
    if not parts:
        raise StepFailure("an empty selector path")
    locator = _part(frame, parts[0])
    for part in parts[1:]:
        locator = _part(locator, part)
    return locator


@dataclass(frozen=True)
class Resolved:
    """The element a step acts on, and the alternative that found it."""

    frame: Frame
    element: ElementHandle
    selector: str


def find_frame(page: Page, path: list[int]) -> Frame | None:
    """The frame at a Recorder `frame` path (child indexes from the main frame), if loaded."""
    frame = page.main_frame
    for index in path:
        children = frame.child_frames
        if index >= len(children):
            return None
        frame = children[index]
    return frame


def resolve(
    page: Page, frame_path: list[int], selectors: list[Selector], timeout_s: float
) -> Resolved:
    """Poll the alternatives until one matches exactly one visible element, or say why not."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout_s
    while True:
        frame = find_frame(page, frame_path)
        hidden: str | None = None
        several: tuple[str, int] | None = None
        if frame is not None:
            for selector in selectors:
                text = describe_selector(selector)
                try:
                    locator = to_locator(frame, selector)
                    count = locator.count()
                    if count == 1:
                        if locator.is_visible():
                            handle = locator.element_handle(timeout=max(timeout_s * 1000, 1))
                            return Resolved(frame, handle, text)
                        hidden = hidden or text
                    elif count > 1:
                        several = several or (text, count)
                except Error as error:
                    message = str(error).splitlines()[0]
                    if "Execution context was destroyed" in message or "detached" in message:
                        continue  # a navigation is under way: poll again
                    raise StepFailure(f"invalid selector {text!r}: {message}") from None
        if time.monotonic() >= deadline:
            break
        page.wait_for_timeout(POLL_S * 1000)
    if frame is None:
        raise StepFailure(f"timed out after {timeout_s:g}s: no frame at path {frame_path}")
    if hidden:
        raise StepFailure(f"not visible: {hidden!r} matched one element, which is not visible")
    if several:
        raise StepFailure(f"several matched: {several[0]!r} matched {several[1]} elements")
    tried = ", ".join(repr(describe_selector(s)) for s in selectors)
    raise StepFailure(f"no element matched any of {len(selectors)} selectors ({tried})")
