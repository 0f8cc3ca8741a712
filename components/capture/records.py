"""What one replay produces: captured records, failures with reasons, and where time went."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class CaptureRecord:
    """One element step, captured before acting, with the evidence of what acting did."""

    flow: str
    step: int
    external_id: str
    image_png: bytes
    bbox: list[float]  # [x0, y0, x1, y1] in screenshot pixels
    action_type: str
    element_type: str
    text: str
    html: str
    page_url: str
    screen_id: str
    evidence: dict[str, Any]
    summary: str = ""


@dataclass(frozen=True)
class Failure:
    """An element step that gave no record, or a step that stopped its flow."""

    flow: str
    step: int
    type: str
    selectors: list[Any]
    reason: str

    def record(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "step": self.step,
            "type": self.type,
            "selectors": self.selectors,
            "reason": self.reason,
        }


@dataclass
class Timings:
    """Seconds spent per phase (screenshot, box, html, action, ...), summed over a run."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def rounded(self) -> dict[str, float]:
        return {name: round(s, 3) for name, s in sorted(self.seconds.items(), key=lambda i: -i[1])}


def screen_id(page_url: str) -> str:
    """Records on one page (host and path, no query or port) share a screen, across flows
    and scales: near-identical screenshots then never sit on both sides of a split."""
    parts = urlsplit(page_url)
    return f"{parts.hostname or parts.scheme}{parts.path or '/'}"


def external_id(flow: str, step: int, width: int, height: int, scale: float) -> str:
    """Stable per flow, step and rendering: `<flow stem>/<step>@<width>x<height>x<scale>`."""
    stem = flow.removesuffix(".json")
    return f"{stem}/{step}@{width}x{height}x{scale:g}"
