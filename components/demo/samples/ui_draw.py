"""Flat-design UI widgets drawn with PIL, so synthetic screenshots look like real apps.

Every widget returns the integer box it covers; that box becomes the record's bbox, so the
outline a captioner sees always surrounds pixels that were actually drawn.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

Box = tuple[int, int, int, int]

ACCENTS = ("#2563eb", "#4f46e5", "#059669", "#e11d48", "#ea580c", "#7c3aed", "#0d9488", "#0284c7")


@dataclass(frozen=True)
class Theme:
    """The colours of one screen; light and dark variants share the same accent logic."""

    background: str
    surface: str
    header: str
    header_text: str
    text: str
    muted: str
    border: str
    subtle: str
    accent: str
    accent_text: str
    danger: str
    dark: bool


def make_theme(accent: str, dark: bool, coloured_header: bool) -> Theme:
    if dark:
        return Theme(
            background="#111827",
            surface="#1f2937",
            header=accent if coloured_header else "#0b1220",
            header_text="#ffffff" if coloured_header else "#f9fafb",
            text="#f3f4f6",
            muted="#9ca3af",
            border="#374151",
            subtle="#273244",
            accent=accent,
            accent_text="#ffffff",
            danger="#ef4444",
            dark=True,
        )
    return Theme(
        background="#f8fafc",
        surface="#ffffff",
        header=accent if coloured_header else "#ffffff",
        header_text="#ffffff" if coloured_header else "#111827",
        text="#111827",
        muted="#6b7280",
        border="#d1d5db",
        subtle="#eef2f7",
        accent=accent,
        accent_text="#ffffff",
        danger="#dc2626",
        dark=False,
    )


@functools.lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled font: available offline on every machine, so images are reproducible."""
    return ImageFont.load_default(size=size)


def text_width(text: str, size: int) -> int:
    return round(font(size).getlength(text))


def fit_text(text: str, size: int, width: int) -> str:
    """Cut `text` with an ellipsis so it fits in `width` pixels (long names in narrow cards)."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "…", size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def wrap(text: str, size: int, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels, for headlines and paragraphs."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(lines[-1] + " " + word, size) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


class Canvas:
    """One screenshot under construction: a PIL image plus the theme its widgets use."""

    def __init__(self, width: int, height: int, theme: Theme) -> None:
        self.width = width
        self.height = height
        self.theme = theme
        self.image = Image.new("RGB", (width, height), theme.background)
        self.draw = ImageDraw.Draw(self.image)

    # --- basic shapes -------------------------------------------------------------------
    def rect(
        self,
        box: Box,
        fill: str | None = None,
        outline: str | None = None,
        radius: int = 0,
        width: int = 1,
    ) -> Box:
        if radius:
            self.draw.rounded_rectangle(box, radius=radius, fill=fill, outline=outline, width=width)
        else:
            self.draw.rectangle(box, fill=fill, outline=outline, width=width)
        return box

    def text(
        self, xy: tuple[int, int], text: str, size: int = 14, fill: str | None = None, anchor="la"
    ) -> Box:
        fill = fill or self.theme.text
        self.draw.text(xy, text, font=font(size), fill=fill, anchor=anchor)
        left, top, right, bottom = self.draw.textbbox(xy, text, font=font(size), anchor=anchor)
        return (int(left), int(top), int(right), int(bottom))

    def hline(self, y: int, x0: int, x1: int, colour: str | None = None) -> None:
        self.draw.line((x0, y, x1, y), fill=colour or self.theme.border, width=1)

    def dim(self, opacity: int = 120) -> None:
        """Darken everything drawn so far, as the backdrop behind a modal dialog does."""
        overlay = Image.new("RGB", self.image.size, "#000000")
        self.image.paste(Image.blend(self.image, overlay, opacity / 255))
        self.draw = ImageDraw.Draw(self.image)

    # --- widgets ------------------------------------------------------------------------
    def button(
        self,
        box: Box,
        label: str,
        variant: str = "primary",
        size: int = 14,
        icon: str | None = None,
    ) -> Box:
        t = self.theme
        fill, outline, colour = {
            "primary": (t.accent, None, t.accent_text),
            "danger": (t.danger, None, "#ffffff"),
            "secondary": (t.surface, t.border, t.text),
            "ghost": (t.subtle, None, t.text),
            "dark": ("#111827" if not t.dark else "#f9fafb", None, t.surface),
        }[variant]
        radius = min(8, (box[3] - box[1]) // 2)
        self.rect(box, fill=fill, outline=outline, radius=radius)
        cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
        if icon:
            left = cx - (text_width(label, size) + 22) // 2
            self.icon((left, cy - 7, left + 14, cy + 7), icon, colour)
            self.text((left + 22, cy), label, size, colour, "lm")
        else:
            self.text((cx, cy), label, size, colour, "mm")
        return box

    def input(
        self, box: Box, text: str, placeholder: bool, icon: str | None = None, size: int = 14
    ) -> Box:
        t = self.theme
        self.rect(box, fill=t.surface, outline=t.border, radius=6)
        x = box[0] + 10
        if icon:
            cy = (box[1] + box[3]) // 2
            self.icon((x, cy - 7, x + 14, cy + 7), icon, t.muted)
            x += 22
        shown = fit_text(text, size, box[2] - x - 8)
        self.text(
            (x, (box[1] + box[3]) // 2), shown, size, t.muted if placeholder else t.text, "lm"
        )
        return box

    def masked_input(self, box: Box, length: int) -> Box:
        """A password field with a value typed in: dots, as browsers draw it."""
        t = self.theme
        self.rect(box, fill=t.surface, outline=t.border, radius=6)
        cy = (box[1] + box[3]) // 2
        for i in range(length):
            cx = box[0] + 14 + i * 11
            self.draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=t.text)
        return box

    def select(self, box: Box, text: str, size: int = 14) -> Box:
        t = self.theme
        self.rect(box, fill=t.surface, outline=t.border, radius=6)
        shown = fit_text(text, size, box[2] - box[0] - 36)
        self.text((box[0] + 10, (box[1] + box[3]) // 2), shown, size, t.text, "lm")
        cy = (box[1] + box[3]) // 2
        self.icon((box[2] - 24, cy - 7, box[2] - 10, cy + 7), "chevron", t.muted)
        return box

    def checkbox(self, x: int, y: int, checked: bool, label: str, size: int = 14) -> Box:
        t = self.theme
        side = size + 4
        if checked:
            self.rect((x, y, x + side, y + side), fill=t.accent, radius=4)
            self.draw.line(
                (x + 4, y + side // 2, x + side // 2 - 1, y + side - 5, x + side - 4, y + 4),
                fill="#ffffff",
                width=2,
            )
        else:
            self.rect((x, y, x + side, y + side), fill=t.surface, outline=t.muted, radius=4)
        right = x + side
        if label:
            right = self.text((x + side + 8, y + side // 2), label, size, t.text, "lm")[2]
        return (x, y, right, y + side)

    def radio(self, x: int, y: int, selected: bool, label: str, size: int = 14) -> Box:
        t = self.theme
        side = size + 4
        self.draw.ellipse((x, y, x + side, y + side), fill=t.surface, outline=t.muted, width=2)
        if selected:
            self.draw.ellipse((x + 5, y + 5, x + side - 5, y + side - 5), fill=t.accent)
        right = self.text((x + side + 8, y + side // 2), label, size, t.text, "lm")[2]
        return (x, y, right, y + side)

    def toggle(self, x: int, y: int, on: bool) -> Box:
        t = self.theme
        box = (x, y, x + 40, y + 22)
        self.rect(box, fill=t.accent if on else t.border, radius=11)
        knob_x = x + 20 if on else x + 2
        self.draw.ellipse((knob_x + 1, y + 3, knob_x + 17, y + 19), fill="#ffffff")
        return box

    def link(self, xy: tuple[int, int], label: str, size: int = 14, anchor="lm") -> Box:
        box = self.text(xy, label, size, self.theme.accent, anchor)
        return (box[0], box[1] - 2, box[2], box[3] + 2)

    def tab(self, box: Box, label: str, active: bool, size: int = 14) -> Box:
        t = self.theme
        colour = t.accent if active else t.muted
        self.text(((box[0] + box[2]) // 2, (box[1] + box[3]) // 2), label, size, colour, "mm")
        if active:
            self.rect((box[0], box[3] - 3, box[2], box[3]), fill=t.accent)
        return box

    def chip(self, box: Box, label: str, active: bool, size: int = 13) -> Box:
        t = self.theme
        radius = (box[3] - box[1]) // 2
        if active:
            self.rect(box, fill=t.accent, radius=radius)
            colour = t.accent_text
        else:
            self.rect(box, fill=t.surface, outline=t.border, radius=radius)
            colour = t.text
        self.text(((box[0] + box[2]) // 2, (box[1] + box[3]) // 2), label, size, colour, "mm")
        return box

    def badge(self, cx: int, cy: int, label: str, colour: str | None = None) -> None:
        r = 8
        self.draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour or self.theme.danger)
        self.text((cx, cy), label, 11, "#ffffff", "mm")

    def pill(self, xy: tuple[int, int], label: str, colour: str, size: int = 12) -> Box:
        width = text_width(label, size) + 16
        box = (xy[0], xy[1] - 10, xy[0] + width, xy[1] + 10)
        self.rect(box, fill=colour, radius=10)
        self.text(((box[0] + box[2]) // 2, xy[1]), label, size, "#ffffff", "mm")
        return box

    def avatar(self, box: Box, initials: str, colour: str) -> Box:
        self.draw.ellipse(box, fill=colour)
        size = max(10, (box[3] - box[1]) // 2 - 2)
        self.text(((box[0] + box[2]) // 2, (box[1] + box[3]) // 2), initials, size, "#ffffff", "mm")
        return box

    def icon_button(
        self, box: Box, name: str, colour: str | None = None, filled: bool = False
    ) -> Box:
        t = self.theme
        if filled:
            self.rect(box, fill=t.accent, radius=(box[3] - box[1]) // 2)
            colour = colour or t.accent_text
        pad = max(5, (box[3] - box[1]) // 4)
        self.icon((box[0] + pad, box[1] + pad, box[2] - pad, box[3] - pad), name, colour or t.text)
        return box

    def photo(self, box: Box, colour: str) -> Box:
        """A product/photo placeholder: tinted panel with a sun and hills, as mockups use."""
        x0, y0, x1, y1 = box
        self.rect(box, fill=colour, radius=6)
        w, h = x1 - x0, y1 - y0
        sun = min(w, h) // 8
        sx, sy = x0 + w * 2 // 5, y0 + h // 5
        self.draw.ellipse((sx, sy, sx + sun * 2, sy + sun * 2), fill="#ffffff")
        self.draw.polygon(
            [(x0 + 4, y1 - 4), (x0 + w // 4, y0 + h // 2), (x0 + w // 2, y1 - 4)], fill="#ffffff"
        )
        self.draw.polygon(
            [(x0 + w // 3, y1 - 4), (x0 + w * 2 // 3, y0 + h * 3 // 5), (x1 - 4, y1 - 4)],
            fill="#f1f5f9",
        )
        return box

    # --- glyphs -------------------------------------------------------------------------
    def icon(self, box: Box, name: str, colour: str) -> Box:
        """Line icons in the style of common icon sets, drawn inside `box`."""
        d = self.draw
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        lw = 2
        if name == "search":
            r = int(min(w, h) * 0.36)
            d.ellipse((x0, y0, x0 + 2 * r, y0 + 2 * r), outline=colour, width=lw)
            d.line((x0 + int(1.7 * r), y0 + int(1.7 * r), x1 - 1, y1 - 1), fill=colour, width=lw)
        elif name == "cart":
            d.line((x0, y0 + 2, x0 + w // 5, y0 + 2), fill=colour, width=lw)
            d.polygon(
                [
                    (x0 + w // 5, y0 + h // 5),
                    (x1, y0 + h // 5),
                    (x1 - w // 8, y0 + h * 3 // 5),
                    (x0 + w // 4, y0 + h * 3 // 5),
                ],
                outline=colour,
                width=lw,
            )
            for wx in (x0 + w // 3, x1 - w // 5):
                d.ellipse((wx - 2, y1 - 5, wx + 2, y1 - 1), fill=colour)
        elif name == "bell":
            d.chord(
                (x0 + w // 6, y0 + 1, x1 - w // 6, y0 + h * 4 // 3),
                180,
                360,
                outline=colour,
                width=lw,
            )
            d.line(
                (x0 + w // 6, y0 + h * 2 // 3, x1 - w // 6, y0 + h * 2 // 3), fill=colour, width=lw
            )
            d.rectangle(
                (x0 + w // 6, y0 + h * 2 // 5, x1 - w // 6, y0 + h * 2 // 3),
                outline=colour,
                width=lw,
            )
            d.ellipse((cx - 2, y1 - 4, cx + 2, y1), fill=colour)
        elif name == "menu":
            for fy in (y0 + h // 5, cy, y1 - h // 5):
                d.line((x0, fy, x1, fy), fill=colour, width=lw)
        elif name == "close":
            d.line((x0 + 2, y0 + 2, x1 - 2, y1 - 2), fill=colour, width=lw)
            d.line((x0 + 2, y1 - 2, x1 - 2, y0 + 2), fill=colour, width=lw)
        elif name == "heart":
            r = w // 4
            top = y0 + h // 8
            d.ellipse((x0, top, cx + 1, top + 2 * r + 1), fill=colour)
            d.ellipse((cx - 1, top, x1, top + 2 * r + 1), fill=colour)
            d.polygon([(x0 + 1, top + r + 2), (x1 - 1, top + r + 2), (cx, y1)], fill=colour)
        elif name == "eye":
            d.ellipse((x0, y0 + h // 4, x1, y1 - h // 4), outline=colour, width=lw)
            r = max(2, h // 6)
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        elif name == "edit":
            d.polygon(
                [
                    (x0 + 2, y1 - 2),
                    (x0 + 3, y1 - 7),
                    (x1 - 5, y0 + 1),
                    (x1 - 1, y0 + 5),
                    (x0 + 7, y1 - 3),
                ],
                outline=colour,
                width=lw,
            )
        elif name == "trash":
            d.line((x0 + 1, y0 + 4, x1 - 1, y0 + 4), fill=colour, width=lw)
            d.line((cx - 3, y0 + 1, cx + 3, y0 + 1), fill=colour, width=lw)
            d.rectangle((x0 + 3, y0 + 6, x1 - 3, y1), outline=colour, width=lw)
            d.line((cx, y0 + 9, cx, y1 - 3), fill=colour, width=1)
        elif name == "info":
            d.ellipse(box, outline=colour, width=lw)
            d.line((cx, cy - 1, cx, y1 - 4), fill=colour, width=lw)
            d.ellipse((cx - 1, y0 + 3, cx + 1, y0 + 5), fill=colour)
        elif name == "send":
            d.polygon([(x0, y0 + 1), (x1, cy), (x0, y1 - 1), (x0 + w // 4, cy)], fill=colour)
        elif name == "clip":
            d.rounded_rectangle(
                (x0 + w // 4, y0, x1 - w // 4, y1), radius=w // 4, outline=colour, width=lw
            )
            d.line((cx, y0 + h // 4, cx, y1 - h // 4), fill=colour, width=lw)
        elif name == "smile":
            d.ellipse(box, outline=colour, width=lw)
            d.ellipse(
                (cx - w // 4 - 1, cy - h // 5 - 1, cx - w // 4 + 2, cy - h // 5 + 2), fill=colour
            )
            d.ellipse(
                (cx + w // 4 - 2, cy - h // 5 - 1, cx + w // 4 + 1, cy - h // 5 + 2), fill=colour
            )
            d.arc(
                (x0 + w // 4, y0 + h // 3, x1 - w // 4, y1 - h // 5), 20, 160, fill=colour, width=lw
            )
        elif name == "phone":
            d.arc((x0, y0, x1 + w // 2, y1 + h // 2), 180, 270, fill=colour, width=lw + 2)
            d.rectangle((x0, y0 + h // 2, x0 + w // 4, y1 - h // 8), fill=colour)
            d.rectangle((x0 + w // 2, y0, x1 - w // 8, y0 + h // 4), fill=colour)
        elif name == "video":
            d.rounded_rectangle(
                (x0, y0 + h // 4, x0 + w * 2 // 3, y1 - h // 4), radius=3, outline=colour, width=lw
            )
            d.polygon([(x0 + w * 2 // 3, cy), (x1, y0 + h // 4), (x1, y1 - h // 4)], fill=colour)
        elif name == "chevron":
            d.line((x0, y0 + h // 3, cx, y1 - h // 3, x1, y0 + h // 3), fill=colour, width=lw)
        elif name == "plus":
            d.line((cx, y0, cx, y1), fill=colour, width=lw)
            d.line((x0, cy, x1, cy), fill=colour, width=lw)
        elif name == "download":
            d.line((cx, y0, cx, y1 - h // 3), fill=colour, width=lw)
            d.line(
                (x0 + w // 4, cy - 1, cx, y1 - h // 3, x1 - w // 4, cy - 1), fill=colour, width=lw
            )
            d.line((x0, y1, x1, y1), fill=colour, width=lw)
        elif name == "gear":
            d.ellipse((x0 + 2, y0 + 2, x1 - 2, y1 - 2), outline=colour, width=lw + 1)
            d.ellipse((cx - 2, cy - 2, cx + 2, cy + 2), fill=colour)
        elif name == "back":
            d.line((x1 - w // 3, y0, x0 + w // 4, cy, x1 - w // 3, y1), fill=colour, width=lw)
        elif name == "logo":
            d.rounded_rectangle(box, radius=w // 4, fill=colour)
            d.polygon(
                [(cx, y0 + h // 5), (x1 - w // 5, y1 - h // 5), (x0 + w // 5, y1 - h // 5)],
                fill="#ffffff",
            )
        else:
            raise ValueError(f"unknown icon {name!r}")
        return box
