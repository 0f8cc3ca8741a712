"""Evidence of what an action did: URL change, navigation, DOM changes, dialogs, modals.

Labellers read it to write the summary, and checks read it to catch a label that claims
something the replay never saw ("Opens the settings page" on a click that changed nothing).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Frame, Page

OPEN_MODALS_JS = r"""
() => [...document.querySelectorAll("dialog[open], [role=dialog], [aria-modal=true]")]
  .filter((d) => d.checkVisibility()).length
"""
# Two animation frames: the page has run the handlers the action triggered and painted.
SETTLE_JS = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"


@dataclass
class PageEvents:
    """Main-frame navigations and JavaScript dialogs, counted by page listeners."""

    navigations: int = 0
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def navigated(frame: Frame) -> None:
            if frame == page.main_frame:
                self.navigations += 1

        def dialog(event: Any) -> None:
            self.dialogs.append(f"{event.type}: {event.message}")
            event.accept()  # the recorded flow went on past it

        page.on("framenavigated", navigated)
        page.on("dialog", dialog)


def _count(frame: Frame, script: str) -> int | None:
    from playwright.sync_api import Error

    try:
        return int(frame.evaluate(script))
    except Error:
        return None  # the document went away: a navigation


@dataclass
class Before:
    url: str
    navigations: int
    dialogs: int
    mutations: int | None
    modals: int | None


def observe_before(page: Page, frame: Frame, events: PageEvents) -> Before:
    return Before(
        url=page.url,
        navigations=events.navigations,
        dialogs=len(events.dialogs),
        mutations=_count(frame, "() => window.__uicapMutations || 0"),
        modals=_count(page.main_frame, OPEN_MODALS_JS),
    )


def settle(
    page: Page,
    frame: Frame,
    before: Before,
    events: PageEvents,
    expect_url: str | None,
    timeout_ms: float,
) -> str | None:
    """Wait until the action's effects are in; a missed asserted navigation is returned."""
    from playwright.sync_api import Error

    with contextlib.suppress(Error):
        frame.evaluate(SETTLE_JS)
    if events.navigations != before.navigations or expect_url:
        try:
            if expect_url:
                page.wait_for_url(expect_url, timeout=timeout_ms)
            page.wait_for_load_state("load", timeout=timeout_ms)
        except Error:
            return f"the recorded navigation to {expect_url} did not happen" if expect_url else None
    return None


def observe_after(page: Page, frame: Frame, before: Before, events: PageEvents) -> dict[str, Any]:
    """The evidence column: what changed between before and after the action."""
    navigated = events.navigations != before.navigations
    mutations = None if navigated else _count(frame, "() => window.__uicapMutations || 0")
    modals = _count(page.main_frame, OPEN_MODALS_JS)
    evidence: dict[str, Any] = {
        "url_before": before.url,
        "url_after": page.url,
        "url_changed": page.url != before.url,
        "navigated": navigated,
        "dom_changes": (
            mutations - before.mutations
            if mutations is not None and before.mutations is not None
            else None
        ),
        "dialogs": events.dialogs[before.dialogs :],
    }
    if modals is not None and before.modals is not None and not navigated:
        evidence["modal_opened"] = modals > before.modals
        evidence["modal_closed"] = modals < before.modals
    return evidence
