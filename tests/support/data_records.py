"""Small hand-built datasets for the ingest and prepare tests: good records and bad ones.

Every record is built in memory with Pillow and written with `datasets`, either with
`save_to_disk` or in the Hub repo layout (parquet under data/), so the tests exercise
the same loading paths as real sources.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

SIZE = (96, 64)
GOOD_BBOX = [10.0, 8.0, 50.0, 30.0]


def png(size: tuple[int, int] = SIZE, colour: Any = (40, 120, 200), mode: str = "RGB") -> bytes:
    """PNG bytes of a flat image with a darker square, so boxes have something to frame."""
    image = Image.new(mode, size, colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encoded(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def record(index: int, **overrides: Any) -> dict[str, Any]:
    """A valid contract record; `overrides` replace fields (image as raw bytes or None)."""
    fields: dict[str, Any] = {
        "external_id": f"rec-{index:03d}",
        "image": png(colour=(40 + index % 200, 120, 200)),
        "bbox": list(GOOD_BBOX),
        "action_type": "click",
        "element_type": "button",
        "text": f"Button {index}",
        "html": f"<div><button>Button {index}</button></div>",
        "summary": f"Opens page number {index}.",
        "screen_id": f"screen-{index // 2}",
    }
    fields.update(overrides)
    return fields


def loose_features(columns: dict[str, str]) -> Any:
    """Features that accept bad values: bbox of any length, nullable everything."""
    from datasets import Features, Image, List, Value

    kinds = {
        "string": Value("string"),
        "image": Image(),
        "floats": List(Value("float64")),
        "strings": List(Value("string")),
        "int": Value("int64"),
    }
    return Features({name: kinds[kind] for name, kind in columns.items()})


CONTRACT_LOOSE = {
    "external_id": "string",
    "image": "image",
    "bbox": "floats",
    "action_type": "string",
    "element_type": "string",
    "text": "string",
    "html": "string",
    "summary": "string",
    "screen_id": "string",
}


def _cells(rows: list[dict[str, Any]], features: Any) -> list[dict[str, Any]]:
    """Raw image bytes as `datasets` image cells, left undecoded (bad bytes stay bad)."""
    from datasets import Image

    cells = []
    for row in rows:
        cell = dict(row)
        for name, feature in features.items():
            if isinstance(feature, Image) and isinstance(cell.get(name), bytes):
                cell[name] = {"bytes": cell[name], "path": None}
        cells.append(cell)
    return cells


def save_dataset(
    folder: Path,
    rows: list[dict[str, Any]],
    columns: dict[str, str] | None = None,
    layout: str = "save_to_disk",
) -> Path:
    """Write `rows` as a save_to_disk folder or a Hub-layout folder; returns the folder."""
    from datasets import Dataset

    features = loose_features(columns or CONTRACT_LOOSE)
    dataset = Dataset.from_list(_cells(rows, features), features=features)
    if layout == "save_to_disk":
        dataset.save_to_disk(str(folder))
    else:
        (folder / "data").mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    return folder
