"""A screen under construction: its canvas, its random source, and the elements it records.

Screen builders draw a widget and register it in the same breath (`ScreenDraft.add`), so
the bbox, the html and the summary of an element cannot drift from what was drawn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image

from components.demo.samples import ui_html as h
from components.demo.samples.ui_draw import ACCENTS, Box, Canvas, make_theme
from components.demo.samples.ui_summaries import summarize
from components.demo.samples.ui_vocab import APPS

DEVICE_SIZES = {"desktop": (1024, 640), "mobile": (360, 720)}
ACTION_TYPES = ("click", "type", "select", "hover", "toggle", "scroll")
ELEMENT_TYPES = (
    "button",
    "link",
    "input",
    "checkbox",
    "radio",
    "select",
    "tab",
    "icon",
    "toggle",
    "menu item",
    "list item",
    "scrollbar",
)


@dataclass(frozen=True)
class UiElement:
    """One interactive element of a screen, as it becomes one dataset record."""

    element_type: str
    action_type: str
    text: str
    html: str
    summary: str
    template: str
    bbox: tuple[float, float, float, float]


@dataclass
class ScreenDraft:
    """Canvas plus the elements registered on it; builders fill it, `ui_screens` records it."""

    kind: str
    device: str
    rng: random.Random
    canvas: Canvas
    app: str
    elements: list[UiElement] = field(default_factory=list)

    @classmethod
    def start(cls, kind: str, device: str, rng: random.Random) -> ScreenDraft:
        width, height = DEVICE_SIZES[device]
        theme = make_theme(
            accent=rng.choice(ACCENTS), dark=rng.random() < 0.2, coloured_header=rng.random() < 0.4
        )
        return cls(kind, device, rng, Canvas(width, height, theme), rng.choice(APPS))

    @property
    def mobile(self) -> bool:
        return self.device == "mobile"

    @property
    def image(self) -> Image.Image:
        return self.canvas.image

    def add(
        self,
        box: Box,
        element_type: str,
        action_type: str,
        text: str,
        html: str,
        template: str,
        **slots: str,
    ) -> None:
        where = f"{self.kind} screen ({self.device}), {element_type} {text!r}"
        if element_type not in ELEMENT_TYPES:
            raise ValueError(f"{where}: element_type {element_type!r} is not a known type")
        if action_type not in ACTION_TYPES:
            raise ValueError(f"{where}: action_type {action_type!r} is not a known action")
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= self.canvas.width and 0 <= y0 < y1 <= self.canvas.height):
            raise ValueError(f"{where}: bbox {box} is empty or leaves the image")
        if text and text not in h.unescape(html):
            raise ValueError(f"{where}: the html does not contain the element's text")
        summary = summarize(template, **slots)
        bbox = (float(x0), float(y0), float(x1), float(y1))
        self.elements.append(
            UiElement(element_type, action_type, text, html, summary, template, bbox)
        )

    # --- chrome shared by many screens -------------------------------------------------
    def app_bar(self, height: int = 56) -> tuple[int, int]:
        """Header with the app's logo and name (a home link); returns (bottom, name_right)."""
        c, t = self.canvas, self.canvas.theme
        c.rect((0, 0, c.width, height), fill=t.header)
        if t.header == t.surface:
            c.hline(height - 1, 0, c.width)
        logo_colour = "#ffffff" if t.header == t.accent else t.accent
        cy = height // 2
        logo = c.icon((16, cy - 14, 44, cy + 14), "logo", logo_colour)
        name_box = c.text((54, cy), self.app, 18, t.header_text, "lm")
        box = (logo[0] - 4, logo[1] - 4, name_box[2] + 4, logo[3] + 4)
        html = h.tag(
            "header",
            {"class": "navbar navbar-expand"},
            h.tag(
                "a",
                {"class": "navbar-brand d-flex align-items-center", "href": "/"},
                h.tag("img", {"src": "/static/logo.svg", "alt": "", "width": "28"}),
                h.tag("span", {"class": "brand-name"}, h.text(self.app)),
            ),
        )
        if self.rng.random() < 0.3:
            self.add(box, "link", "click", self.app, html, "nav_home", app=self.app)
        return height, name_box[2]
