"""Small prepared datasets and tiny bases for the training tests, written in the prepare format.

The summaries follow from the element type and text in the prompt, so a model can learn
them in a few dozen CPU steps; images differ in size and colour so lengths vary and the
length-grouped sampler has something to group.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from components.ingest.manifest import Gate, IngestCounts, IngestManifest, SourceInfo
from components.prepare.manifest import (
    GeneralCounts,
    GeneralManifest,
    PrepareCounts,
    PrepareManifest,
    PrepareSettings,
)

QUESTION = "In a short sentence, what does the action outlined with a magenta rectangle do?"
TEMPLATES = {
    "button": ("click", "Submits the {} form."),
    "link": ("click", "Opens the {} page."),
    "input": ("type", "Fills in the {} field."),
    "checkbox": ("click", "Toggles the {} option."),
}
WORDS = [
    "sign in",
    "billing",
    "profile",
    "search",
    "settings",
    "cart",
    "invoices",
    "password",
    "newsletter",
    "contact",
    "shipping",
    "team",
]
COLOURS = [(230, 230, 240), (40, 40, 60), (200, 230, 200), (250, 240, 210)]


def prompt_for(action: str, element: str, text: str, html: str) -> str:
    return (
        f"{QUESTION}\nAction data:\naction_type: {action}\nelement_type: {element}\n"
        f"text: {text}\nsurrounding_html: {html}"
    )


def _image(rng: random.Random, element: str, size: tuple[int, int] | None = None) -> Image.Image:
    width, height = size or rng.choice([(56, 42), (84, 56), (112, 70)])
    image = Image.new("RGB", (width, height), rng.choice(COLOURS))
    draw = ImageDraw.Draw(image)
    shade = 60 * list(TEMPLATES).index(element)
    box = (width // 5, height // 4, width * 4 // 5, height * 3 // 4)
    draw.rectangle(box, fill=(shade, 120, 255 - shade))
    draw.rectangle(box, outline=(255, 0, 255), width=2)
    return image


def _record(
    rng: random.Random,
    index: int,
    split: str,
    root: Path,
    padding: int,
    image_size: tuple[int, int] | None = None,
) -> dict:
    element = rng.choice(list(TEMPLATES))
    action, template = TEMPLATES[element]
    text = rng.choice(WORDS)
    html = f"<div class='row'><{element}>{text}</{element}></div>" + " <span>more</span>" * padding
    image_path = Path("images") / split / f"{split}-{index:03d}.png"
    (root / image_path).parent.mkdir(parents=True, exist_ok=True)
    _image(rng, element, image_size).save(root / image_path)
    return {
        "id": f"{split}-{index:03d}",
        "image": str(image_path),
        "conversations": [
            {"role": "user", "content": "<image>\n" + prompt_for(action, element, text, html)},
            {"role": "assistant", "content": template.format(text)},
        ],
        "external_id": f"ext-{split}-{index}",
        "screen_id": f"screen-{index // 3}",
        "element_type": element,
    }


def _source(dataset: str, revision: str) -> SourceInfo:
    return SourceInfo(
        dataset=dataset,
        kind="hub-layout folder",
        requested_revision=None,
        resolved_revision=revision,
        split="train",
        column_map={"name": "test"},
    )


def write_prepared(
    root: Path,
    train: int = 48,
    val: int = 16,
    test: int = 8,
    seed: int = 0,
    too_long: int = 0,
    *,
    max_image_side: int | None = 448,
    html_budget: int = 128,
    source: tuple[str, str] = ("tests/ui-records", "sha256:test-source"),
    image_size: tuple[int, int] | None = None,
) -> Path:
    """A prepared directory with the manifest prepare writes; `too_long` train records carry
    HTML far beyond any small budget. `source` is the (dataset, revision) it came from;
    every screenshot is `image_size` when given (else a few small sizes)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    counts = {"train": train + too_long, "val": val, "test": test}
    screens: dict[str, int] = {}
    for split, count in {"train": train, "val": val, "test": test}.items():
        records = [
            _record(rng, i, split, root, rng.randint(0, 6), image_size) for i in range(count)
        ]
        if split == "train":
            records += [_record(rng, count + i, split, root, padding=400) for i in range(too_long)]
        (root / f"{split}.json").write_text(json.dumps(records, indent=1))
        screens[split] = len({record["screen_id"] for record in records})
    kept = sum(counts.values())
    PrepareManifest(
        prompt_template_version="test-v1",
        fingerprint=f"sha256:test-{seed}-{train}-{val}-{too_long}",
        input_fingerprint=f"sha256:ingest-test-{seed}",
        settings=PrepareSettings(
            max_image_side=max_image_side,
            html_budget=html_budget,
            split_fractions=(0.8, 0.1, 0.1),
            seed=seed,
        ),
        counts=PrepareCounts(in_=kept, duplicates_removed=0, kept=kept, **counts),
        groups=screens,
        duplicates=[],
        ingest=IngestManifest(
            source=_source(*source),
            fingerprint=f"sha256:ingest-test-{seed}",
            counts=IngestCounts(in_=kept, kept=kept, quarantined=0),
            gate=Gate(max_quarantine_fraction=0.05, quarantined_fraction=0.0, passed=True),
            quarantine=[],
        ),
    ).write(root)
    return root


SHAPES = ("square", "circle", "bar")
NAMED = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 40),
}


def _scene(rng: random.Random, index: int, split: str, root: Path) -> dict:
    """A general (non-UI) captioning record: a coloured shape on a coloured background."""
    colour, background = rng.sample(list(NAMED), 2)
    shape = rng.choice(SHAPES)
    width, height = rng.choice([(56, 42), (84, 56)])
    image = Image.new("RGB", (width, height), NAMED[background])
    draw = ImageDraw.Draw(image)
    box = (width // 4, height // 4, width * 3 // 4, height * 3 // 4)
    if shape == "circle":
        draw.ellipse(box, fill=NAMED[colour])
    elif shape == "bar":
        draw.rectangle((2, height // 3, width - 2, height * 2 // 3), fill=NAMED[colour])
    else:
        draw.rectangle(box, fill=NAMED[colour])
    image_path = Path("images") / split / f"{split}-{index:03d}.png"
    (root / image_path).parent.mkdir(parents=True, exist_ok=True)
    image.save(root / image_path)
    return {
        "id": f"g-{split}-{index:03d}",
        "image": str(image_path),
        "conversations": [
            {"role": "user", "content": "<image>\nDescribe the picture in one short sentence."},
            {"role": "assistant", "content": f"A {colour} {shape} on a {background} background."},
        ],
    }


def write_general(root: Path, train: int = 48, val: int = 16, seed: int = 1) -> Path:
    """A prepared directory of general captions, for warming up a random base."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    counts = {"train": train, "val": val, "test": 4}
    for split, count in counts.items():
        records = [_scene(rng, i, split, root) for i in range(count)]
        (root / f"{split}.json").write_text(json.dumps(records, indent=1))
    kept = sum(counts.values())
    GeneralManifest(
        prompt_template_version="general-v1",
        fingerprint=f"sha256:general-{seed}",
        source=_source("tests/general-scenes", f"sha256:general-source-{seed}"),
        settings=PrepareSettings(
            max_image_side=448, html_budget=0, split_fractions=(0.8, 0.1, 0.1), seed=seed
        ),
        counts=GeneralCounts(in_=kept, kept=kept, quarantined=0, **counts),
        quarantine=[],
    ).write(root)
    return root


def corpus(prepared: Path) -> list[str]:
    """The prompts and answers of every split: what the tiny base's tokenizer must know."""
    texts: list[str] = []
    for split in ("train", "val", "test"):
        for record in json.loads((prepared / f"{split}.json").read_text()):
            texts.extend(turn["content"] for turn in record["conversations"])
    return texts


def tiny_base(root: Path, *prepared: Path, shape: str = "small") -> Path:
    """A tiny random MiniCPM-V 4.6 whose tokenizer knows the given sets, built once per folder."""
    from components.demo.tiny_model import SHAPES, build_tiny_model

    if not (root / "config.json").exists():
        texts = [text for folder in prepared for text in corpus(folder)]
        build_tiny_model(root, texts, family="minicpmv4_6", size=SHAPES[shape])
    return root


@pytest.fixture(scope="session")
def ui_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The training tests' prepared UI set (48 train, 16 val, 2 too long), built once."""
    root = tmp_path_factory.getbasetemp() / "train-ui-data"
    if not (root / "manifest.json").exists():
        write_prepared(root, train=48, val=16, too_long=2)
    return root


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory, ui_data: Path) -> Path:
    """A tiny MiniCPM-V 4.6 whose tokenizer knows `ui_data`."""
    return tiny_base(tmp_path_factory.getbasetemp() / "train-tiny-base", ui_data)
