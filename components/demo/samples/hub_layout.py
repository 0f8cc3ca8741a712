"""Write records as a Hugging Face Hub dataset repo: parquet shards under data/ + README card.

The parquet files carry the `datasets` features in their schema metadata (written by
`datasets` itself), so `load_dataset(folder)` decodes `image` as a PIL image with or
without the card.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Features

SHARD_PATTERN = "train-*-of-*.parquet"


@dataclass(frozen=True)
class CardText:
    """The human part of a dataset card: what the data is and what each column means."""

    title: str
    description: str
    columns: dict[str, str]
    usage: str
    tags: tuple[str, ...] = ()


def shard_bounds(count: int, shard_size: int) -> list[tuple[int, int]]:
    """Near-equal contiguous [start, end) ranges of at most `shard_size` rows."""
    if count < 1:
        raise ValueError("cannot write a dataset with no records")
    shards = math.ceil(count / shard_size)
    edges = [round(i * count / shards) for i in range(shards + 1)]
    return list(itertools.pairwise(edges))


def write_hub_dataset(
    rows: Sequence[dict[str, Any]],
    features: Features,
    output: Path,
    card: CardText,
    shard_size: int = 200,
) -> list[Path]:
    """Write `rows` as data/train-0000i-of-0000K.parquet plus README.md; returns the shards.

    Shards left by an earlier run under the same name pattern are removed first: a stale
    shard would silently join the new split.
    """
    import datasets

    for index, row in enumerate(rows):
        if set(row) != set(features):
            raise ValueError(
                f"record {index} ({row.get('external_id', 'no external_id')}) has columns "
                f"{sorted(row)}, expected {sorted(features)}"
            )
    data_dir = output / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in data_dir.glob(SHARD_PATTERN):
        stale.unlink()
    bounds = shard_bounds(len(rows), shard_size)
    paths: list[Path] = []
    num_bytes = 0
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one bar per shard is noise in a CLI summary
    try:
        for index, (start, end) in enumerate(bounds):
            shard = datasets.Dataset.from_list(list(rows[start:end]), features=features)
            path = data_dir / f"train-{index:05d}-of-{len(bounds):05d}.parquet"
            shard.to_parquet(str(path))
            num_bytes += shard.data.nbytes
            paths.append(path)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    download_size = sum(p.stat().st_size for p in paths)
    (output / "README.md").write_text(
        render_card(card, features, len(rows), num_bytes, download_size), encoding="utf-8"
    )
    return paths


def render_card(
    card: CardText, features: Features, num_examples: int, num_bytes: int, download_size: int
) -> str:
    """README.md with the YAML header the Hub and `load_dataset` read (configs, features)."""
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    splits = SplitDict()
    splits.add(SplitInfo(name="train", num_bytes=num_bytes, num_examples=num_examples))
    info = DatasetInfo(
        features=features, splits=splits, download_size=download_size, dataset_size=num_bytes
    )
    data = DatasetCardData(
        license="apache-2.0",
        language=["en"],
        pretty_name=card.title,
        size_categories=["n<1K" if num_examples < 1000 else "1K<n<10K"],
        task_categories=["image-to-text"],
        tags=list(card.tags),
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    files = {"data_files": [{"split": "train", "path": "data/train-*"}]}
    MetadataConfigs({"default": files}).to_dataset_card_data(data)
    rows = "\n".join(f"| `{name}` | {text} |" for name, text in card.columns.items())
    return (
        f"---\n{data.to_yaml()}\n---\n\n"
        f"# {card.title}\n\n{card.description}\n\n"
        f"## Columns\n\n| column | meaning |\n|---|---|\n{rows}\n\n"
        f"## Usage\n\n```python\n{card.usage}\n```\n"
    )
