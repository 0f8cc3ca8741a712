"""Synthetic UI-interaction records in the input contract: one record per (screen, element).

Screens come in a shuffled round-robin over the screen kinds, so every kind is present
even in small datasets. Each screen gets its own random source derived from the seed and
its index, so a screen's pixels and labels do not depend on how many records came before.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from components.demo.samples.png import png_bytes
from components.demo.samples.ui_screen import ScreenDraft
from components.demo.samples.ui_screens_account import login_screen, settings_screen, signup_screen
from components.demo.samples.ui_screens_dialogs import dialog_screen
from components.demo.samples.ui_screens_web import (
    checkout_screen,
    landing_screen,
    product_grid_screen,
)
from components.demo.samples.ui_screens_workspace import chat_screen, table_screen

ScreenBuilder = Callable[[ScreenDraft], None]

# kind -> (builder, devices it is drawn for)
SCREEN_KINDS: dict[str, tuple[ScreenBuilder, tuple[str, ...]]] = {
    "login": (login_screen, ("desktop", "mobile")),
    "signup": (signup_screen, ("desktop", "mobile")),
    "settings": (settings_screen, ("desktop", "mobile")),
    "landing": (landing_screen, ("desktop", "mobile")),
    "product_grid": (product_grid_screen, ("desktop", "mobile")),
    "checkout": (checkout_screen, ("desktop", "mobile")),
    "dialog": (dialog_screen, ("desktop", "mobile")),
    "table": (table_screen, ("desktop",)),
    "chat": (chat_screen, ("desktop", "mobile")),
}

MIN_ELEMENTS_PER_SCREEN = 3
MAX_ELEMENTS_PER_SCREEN = 10
DEFAULT_UI_RECORDS = 600

UI_COLUMNS = (
    "external_id",
    "image",
    "bbox",
    "action_type",
    "element_type",
    "text",
    "html",
    "summary",
    "screen_id",
)


def draw_screen(kind: str, device: str, seed: int | str) -> ScreenDraft:
    """Draw one screen of `kind` for `device`; the same arguments give the same pixels."""
    if kind not in SCREEN_KINDS:
        raise ValueError(f"unknown screen kind {kind!r}; expected one of {', '.join(SCREEN_KINDS)}")
    builder, devices = SCREEN_KINDS[kind]
    if device not in devices:
        raise ValueError(f"screen kind {kind!r} is drawn for {', '.join(devices)}, not {device!r}")
    draft = ScreenDraft.start(kind, device, random.Random(f"uicap-screen:{seed}"))
    builder(draft)
    return draft


def _screen_plan(rng: random.Random) -> Iterator[tuple[str, str]]:
    """Endless (kind, device) pairs: each round draws every kind once, in a random order."""
    while True:
        kinds = list(SCREEN_KINDS)
        rng.shuffle(kinds)
        for kind in kinds:
            devices = SCREEN_KINDS[kind][1]
            yield (
                kind,
                ("desktop" if rng.random() < 0.6 else "mobile") if len(devices) > 1 else devices[0],
            )


def _records_on_screen(rng: random.Random, available: int, remaining: int) -> int | None:
    """How many of a screen's elements to record so the total lands exactly on the target.

    Never leaves a remainder of 1 or 2, which no screen could take; None skips the screen.
    """
    high = min(MAX_ELEMENTS_PER_SCREEN, available, remaining)
    if high < MIN_ELEMENTS_PER_SCREEN:
        return None
    if remaining <= high:
        return remaining
    high = min(high, remaining - MIN_ELEMENTS_PER_SCREEN)
    if high < MIN_ELEMENTS_PER_SCREEN:
        return None
    return rng.randint(MIN_ELEMENTS_PER_SCREEN, high)


def ui_records(records: int = DEFAULT_UI_RECORDS, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Yield `records` contract records (image as PNG bytes), grouped by screen."""
    if records < MIN_ELEMENTS_PER_SCREEN:
        raise ValueError(
            f"records must be at least {MIN_ELEMENTS_PER_SCREEN} (one screen), got {records}"
        )
    rng = random.Random(f"uicap-ui:{seed}")
    plan = _screen_plan(rng)
    remaining = records
    index = 0
    while remaining:
        kind, device = next(plan)
        screen_seed = f"{seed}:{index}"
        index += 1
        draft = draw_screen(kind, device, screen_seed)
        count = _records_on_screen(rng, len(draft.elements), remaining)
        if count is None:
            continue
        screen_id = f"ui{seed}-{index - 1:05d}"
        image = png_bytes(draft.image)
        chosen = sorted(rng.sample(range(len(draft.elements)), count))
        for position in chosen:
            element = draft.elements[position]
            yield {
                "external_id": f"{screen_id}-e{position}",
                "image": image,
                "bbox": list(element.bbox),
                "action_type": element.action_type,
                "element_type": element.element_type,
                "text": element.text,
                "html": element.html,
                "summary": element.summary,
                "screen_id": screen_id,
            }
        remaining -= count
