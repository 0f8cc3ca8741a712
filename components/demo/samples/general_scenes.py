"""Non-UI captioning scenes: shapes and everyday objects with a caption true to the picture.

This is the general-skill holdout (a model that forgets how to describe ordinary pictures
fails it) and the warm-up set of the tiny base model. Each caption is built from the
same decisions that placed the objects, so counts, colours and positions always match.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from components.demo.samples.png import png_bytes

SCENE_SIZE = (320, 240)
DEFAULT_GENERAL_RECORDS = 200
GENERAL_COLUMNS = ("external_id", "image", "caption")

COLOURS = {
    "red": "#dc2626",
    "blue": "#2563eb",
    "green": "#16a34a",
    "yellow": "#facc15",
    "orange": "#f97316",
    "purple": "#9333ea",
    "pink": "#ec4899",
    "black": "#111111",
}
BACKGROUNDS = {"white": "#ffffff", "grey": "#d4d4d8", "light blue": "#dbeafe", "cream": "#fef3c7"}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "heart")
NUMBERS = {1: "a", 2: "two", 3: "three", 4: "four"}
SKIES = {
    "day": "under a yellow sun",
    "night": "at night under a crescent moon",
    "cloudy": "under grey clouds",
}
GROUND_OBJECTS = ("house", "tree", "car", "flower")
SCENE_KINDS = (
    "shapes",
    "shapes_above",
    "shapes_beside",
    "shape_inside",
    "street",
    "sea",
    "balloons",
)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Group:
    """`count` shapes of one colour; the unit that captions talk about."""

    count: int
    colour: str
    shape: str

    def phrase(self) -> str:
        if self.count == 1:
            return f"{_article(self.colour)} {self.colour} {self.shape}"
        return f"{NUMBERS[self.count]} {self.colour} {self.shape}s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


# --- drawing ---------------------------------------------------------------------------
def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Box, colour: str) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    outline = "#57534e" if colour == COLOURS["yellow"] else None  # not a caption colour
    if shape == "circle":
        draw.ellipse(box, fill=colour, outline=outline)
    elif shape == "square":
        draw.rectangle(box, fill=colour, outline=outline)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour, outline=outline)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour, outline=outline)
    elif shape == "star":
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + i * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=colour, outline=outline)
    elif shape == "heart":
        lobe = r * 0.55
        draw.ellipse((x0, y0 + r * 0.1, cx + 1, y0 + r * 0.1 + 2 * lobe), fill=colour)
        draw.ellipse((cx - 1, y0 + r * 0.1, x1, y0 + r * 0.1 + 2 * lobe), fill=colour)
        draw.polygon(
            [(x0 + 1, y0 + r * 0.1 + lobe + 2), (x1 - 1, y0 + r * 0.1 + lobe + 2), (cx, y1)],
            fill=colour,
        )
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _cells(region: Box, count: int) -> list[Box]:
    """Square cells laid out in a grid inside `region`, one per shape, never overlapping."""
    x0, y0, x1, y1 = region
    w, h = x1 - x0, y1 - y0
    cols = max(1, min(count, round(math.sqrt(count * w / h))))
    rows = math.ceil(count / cols)
    cw, ch = w / cols, h / rows
    side = min(cw, ch)
    cells = []
    for i in range(count):
        r, c = divmod(i, cols)
        cx, cy = x0 + (c + 0.5) * cw, y0 + (r + 0.5) * ch
        cells.append((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    return cells


def _draw_group(draw: ImageDraw.ImageDraw, rng: random.Random, group: Group, region: Box) -> None:
    for cell in _cells(region, group.count):
        side = cell[2] - cell[0]
        size = side * rng.uniform(0.55, 0.8)
        jitter = (side - size) / 2
        dx, dy = rng.uniform(-jitter, jitter), rng.uniform(-jitter, jitter)
        cx, cy = (cell[0] + cell[2]) / 2 + dx, (cell[1] + cell[3]) / 2 + dy
        draw_shape(
            draw,
            group.shape,
            (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2),
            COLOURS[group.colour],
        )


def _sky(draw: ImageDraw.ImageDraw, rng: random.Random, sky: str, horizon: int) -> None:
    width = SCENE_SIZE[0]
    colour = {"day": "#7dd3fc", "night": "#1e293b", "cloudy": "#cbd5e1"}[sky]
    draw.rectangle((0, 0, width, horizon), fill=colour)
    x = rng.choice((rng.uniform(30, 90), rng.uniform(230, 290)))
    if sky == "day":
        draw.ellipse((x - 22, 18, x + 22, 62), fill="#facc15")
        for i in range(8):
            angle = i * math.pi / 4
            draw.line(
                (
                    x + 28 * math.cos(angle),
                    40 + 28 * math.sin(angle),
                    x + 38 * math.cos(angle),
                    40 + 38 * math.sin(angle),
                ),
                fill="#facc15",
                width=3,
            )
    elif sky == "night":
        for _ in range(14):
            sx, sy = rng.uniform(5, width - 5), rng.uniform(5, horizon - 10)
            draw.ellipse((sx - 1, sy - 1, sx + 1, sy + 1), fill="#ffffff")
        draw.ellipse((x - 20, 20, x + 20, 60), fill="#f8fafc")
        draw.ellipse((x - 8, 14, x + 28, 54), fill=colour)
    else:
        for cx in (rng.uniform(40, 110), rng.uniform(180, 280)):
            for dx, dy, r in ((-22, 6, 16), (0, 0, 22), (22, 6, 16)):
                draw.ellipse((cx + dx - r, 40 + dy - r, cx + dx + r, 40 + dy + r), fill="#6b7280")


def _house(draw: ImageDraw.ImageDraw, x: float, ground: float, colour: str) -> None:
    draw.rectangle((x - 36, ground - 56, x + 36, ground), fill=colour, outline="#1f2937")
    draw.polygon([(x - 44, ground - 56), (x, ground - 92), (x + 44, ground - 56)], fill="#7c2d12")
    draw.rectangle((x - 8, ground - 28, x + 8, ground), fill="#78350f")
    draw.rectangle((x + 14, ground - 46, x + 30, ground - 32), fill="#e0f2fe", outline="#1f2937")


def _tree(draw: ImageDraw.ImageDraw, x: float, ground: float) -> None:
    draw.rectangle((x - 7, ground - 44, x + 7, ground), fill="#92400e")
    draw.ellipse((x - 32, ground - 104, x + 32, ground - 36), fill="#15803d")


def _car(draw: ImageDraw.ImageDraw, x: float, ground: float, colour: str) -> None:
    draw.rounded_rectangle((x - 44, ground - 34, x + 44, ground - 10), radius=6, fill=colour)
    draw.polygon(
        [
            (x - 26, ground - 34),
            (x - 16, ground - 52),
            (x + 18, ground - 52),
            (x + 30, ground - 34),
        ],
        fill=colour,
    )
    draw.polygon(
        [
            (x - 20, ground - 35),
            (x - 13, ground - 48),
            (x + 15, ground - 48),
            (x + 23, ground - 35),
        ],
        fill="#e0f2fe",
    )
    for wx in (x - 26, x + 26):
        draw.ellipse((wx - 11, ground - 22, wx + 11, ground), fill="#111111")


def _flower(draw: ImageDraw.ImageDraw, x: float, ground: float, colour: str) -> None:
    draw.line((x, ground, x, ground - 44), fill="#15803d", width=4)
    for i in range(6):
        angle = i * math.pi / 3
        px, py = x + 11 * math.cos(angle), ground - 56 + 11 * math.sin(angle)
        draw.ellipse((px - 8, py - 8, px + 8, py + 8), fill=colour)
    draw.ellipse((x - 6, ground - 62, x + 6, ground - 50), fill="#fde047")


# --- scenes: each returns the caption of what it drew ---------------------------------
def _random_group(rng: random.Random, background: str, max_count: int = 4) -> Group:
    colours = [c for c in COLOURS if not (c == "yellow" and background == "cream")]
    return Group(rng.randint(1, max_count), rng.choice(colours), rng.choice(SHAPES))


def _shapes_scene(image: Image.Image, rng: random.Random, kind: str) -> str:
    draw = ImageDraw.Draw(image)
    width, height = SCENE_SIZE
    background = rng.choice(tuple(BACKGROUNDS))
    draw.rectangle((0, 0, width, height), fill=BACKGROUNDS[background])
    pad = 14
    first = _random_group(rng, background)
    if kind == "shapes":
        _draw_group(draw, rng, first, (pad, pad, width - pad, height - pad))
        if background == "white":
            return _sentence(first.phrase())
        return _sentence(f"{first.phrase()} on a {background} background")
    second = _random_group(rng, background, max_count=3)
    while (second.colour, second.shape) == (first.colour, first.shape):
        second = _random_group(rng, background, max_count=3)
    if kind == "shapes_above":
        _draw_group(draw, rng, first, (pad, pad, width - pad, height / 2 - 6))
        _draw_group(draw, rng, second, (pad, height / 2 + 6, width - pad, height - pad))
        return _sentence(f"{first.phrase()} above {second.phrase()}")
    _draw_group(draw, rng, first, (pad, pad, width / 2 - 8, height - pad))
    _draw_group(draw, rng, second, (width / 2 + 8, pad, width - pad, height - pad))
    return _sentence(f"{first.phrase()} to the left of {second.phrase()}")


def _inside_scene(image: Image.Image, rng: random.Random) -> str:
    draw = ImageDraw.Draw(image)
    width, height = SCENE_SIZE
    draw.rectangle((0, 0, width, height), fill=BACKGROUNDS["white"])
    outer_colour, inner_colour = rng.sample(list(COLOURS), 2)
    outer = rng.choice(("circle", "square"))
    inner = rng.choice(
        ("star", "heart", "triangle", "diamond", "circle" if outer == "square" else "square")
    )
    cx, cy = width / 2 + rng.uniform(-40, 40), height / 2
    r = rng.uniform(80, 100)
    draw_shape(draw, outer, (cx - r, cy - r, cx + r, cy + r), COLOURS[outer_colour])
    s = r * 0.45
    draw_shape(draw, inner, (cx - s, cy - s, cx + s, cy + s), COLOURS[inner_colour])
    return _sentence(f"a small {inner_colour} {inner} inside a large {outer_colour} {outer}")


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _street_scene(image: Image.Image, rng: random.Random) -> str:
    draw = ImageDraw.Draw(image)
    width, height = SCENE_SIZE
    sky = rng.choice(tuple(SKIES))
    ground = height - 36
    _sky(draw, rng, sky, ground)
    draw.rectangle((0, ground, width, height), fill="#15803d" if sky == "night" else "#4ade80")
    objects = rng.sample(GROUND_OBJECTS, rng.randint(1, 3))
    slot = width / len(objects)
    phrases = []
    for i, name in enumerate(objects):
        x = slot * (i + 0.5) + rng.uniform(-slot * 0.1, slot * 0.1)
        base = ground + 10
        if name == "tree":
            _tree(draw, x, base)
            phrases.append("a tree")
            continue
        colour = rng.choice([c for c in COLOURS if c != "green"])
        {"house": _house, "car": _car, "flower": _flower}[name](draw, x, base, COLOURS[colour])
        phrases.append(f"{_article(colour)} {colour} {name}")
    return _sentence(f"{_listing(phrases)} {SKIES[sky]}")


def _sea_scene(image: Image.Image, rng: random.Random) -> str:
    draw = ImageDraw.Draw(image)
    width, height = SCENE_SIZE
    sky = rng.choice(tuple(SKIES))
    horizon = 140
    _sky(draw, rng, sky, horizon)
    draw.rectangle((0, horizon, width, height), fill="#1d4ed8")
    for wy in range(horizon + 20, height, 24):
        for wx in range(10, width, 60):
            draw.arc((wx, wy, wx + 30, wy + 10), 200, 340, fill="#93c5fd", width=2)
    colour = rng.choice([c for c in COLOURS if c != "blue"])
    x = rng.uniform(90, 230)
    draw.polygon(
        [
            (x - 50, horizon + 10),
            (x + 50, horizon + 10),
            (x + 36, horizon + 34),
            (x - 36, horizon + 34),
        ],
        fill=COLOURS[colour],
    )
    draw.line((x, horizon + 10, x, horizon - 66), fill="#422006", width=3)
    draw.polygon(
        [(x + 3, horizon - 62), (x + 3, horizon + 4), (x + 44, horizon + 4)], fill="#ffffff"
    )
    return _sentence(f"{_article(colour)} {colour} boat on the sea {SKIES[sky]}")


def _balloons_scene(image: Image.Image, rng: random.Random) -> str:
    draw = ImageDraw.Draw(image)
    width, height = SCENE_SIZE
    draw.rectangle((0, 0, width, height), fill="#7dd3fc")
    count = rng.randint(1, 4)
    colour = rng.choice([c for c in COLOURS if c != "blue"])
    for cell in _cells((20, 20, width - 20, height - 60), count):
        cx = (cell[0] + cell[2]) / 2 + rng.uniform(-8, 8)
        cy = (cell[1] + cell[3]) / 2
        r = min(30, (cell[2] - cell[0]) * 0.35)
        draw.ellipse((cx - r * 0.8, cy - r, cx + r * 0.8, cy + r), fill=COLOURS[colour])
        draw.line((cx, cy + r, cx + rng.uniform(-10, 10), height - 10), fill="#334155", width=1)
    group = Group(count, colour, "balloon")
    return _sentence(f"{group.phrase()} in a blue sky")


def draw_scene(kind: str, seed: int | str) -> tuple[Image.Image, str]:
    """One scene of `kind` and its caption; the same arguments give the same picture."""
    rng = random.Random(f"uicap-scene:{seed}")
    image = Image.new("RGB", SCENE_SIZE, "#ffffff")
    if kind in ("shapes", "shapes_above", "shapes_beside"):
        caption = _shapes_scene(image, rng, kind)
    elif kind == "shape_inside":
        caption = _inside_scene(image, rng)
    elif kind == "street":
        caption = _street_scene(image, rng)
    elif kind == "sea":
        caption = _sea_scene(image, rng)
    elif kind == "balloons":
        caption = _balloons_scene(image, rng)
    else:
        raise ValueError(f"unknown scene kind {kind!r}; expected one of {', '.join(SCENE_KINDS)}")
    return image, caption


def general_records(
    records: int = DEFAULT_GENERAL_RECORDS, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """Yield `records` captioned scenes (image as PNG bytes), kinds in a shuffled round-robin."""
    if records < 1:
        raise ValueError(f"records must be at least 1, got {records}")
    rng = random.Random(f"uicap-general:{seed}")
    kinds: list[str] = []
    for index in range(records):
        if not kinds:
            kinds = list(SCENE_KINDS)
            rng.shuffle(kinds)
        image, caption = draw_scene(kinds.pop(), f"{seed}:{index}")
        yield {
            "external_id": f"gen{seed}-{index:05d}",
            "image": png_bytes(image),
            "caption": caption,
        }
