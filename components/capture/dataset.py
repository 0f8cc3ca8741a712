"""The output: a DatasetDict saved to DIR (`train` labelled, `unlabelled` the rest) and
DIR/capture.json with the counts and every failure, published all at once.

`uicap run --dataset DIR` and `uicap ingest` read DIR as it is: the contract's columns
plus flow, step, page_url and evidence (a JSON string).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.capture.records import CaptureRecord
from components.ingest import publish

if TYPE_CHECKING:
    from datasets import DatasetDict, Features

REPORT_NAME = "capture.json"
SPLITS = ("train", "unlabelled")
EXTRA_COLUMNS = ("flow", "step", "page_url", "evidence")


OutputError = publish.OutputExistsError


def capture_features() -> Features:
    from datasets import Value

    from components.ingest.contract import contract_features

    features = contract_features()
    features["flow"] = Value("string")
    features["step"] = Value("int32")
    features["page_url"] = Value("string")
    features["evidence"] = Value("string")
    return features


def row(record: CaptureRecord) -> dict[str, Any]:
    return {
        "external_id": record.external_id,
        "image": {"bytes": record.image_png, "path": None},
        "bbox": record.bbox,
        "action_type": record.action_type,
        "element_type": record.element_type,
        "text": record.text,
        "html": record.html,
        "summary": record.summary,
        "screen_id": record.screen_id,
        "flow": record.flow,
        "step": record.step,
        "page_url": record.page_url,
        "evidence": json.dumps(record.evidence, ensure_ascii=False, sort_keys=True),
    }


def build(records: list[CaptureRecord]) -> DatasetDict:
    """Labelled records in `train`, the others in `unlabelled` (both always present)."""
    from datasets import Dataset, DatasetDict

    features = capture_features()
    splits = {
        "train": [row(r) for r in records if r.summary],
        "unlabelled": [row(r) for r in records if not r.summary],
    }
    # from_dict of columns, not from_list of rows: a split may be empty.
    return DatasetDict(
        {
            name: Dataset.from_dict(
                {column: [r[column] for r in rows] for column in features}, features=features
            )
            for name, rows in splits.items()
        }
    )


def check_replaceable(target: Path) -> None:
    """Only an empty folder or an earlier capture (it holds capture.json) is replaced."""
    publish.check_replaceable(target, REPORT_NAME)


def write(records: list[CaptureRecord], report: dict[str, Any], output: Path) -> None:
    """The dataset and capture.json, replacing an earlier capture in one rename."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with publish.staged_output(Path(output), REPORT_NAME) as staging:
            splits = build(records)
            # One shard per split, even an empty one (zero shards would not load back).
            splits.save_to_disk(str(staging), num_shards={name: 1 for name in splits})
            (staging / REPORT_NAME).write_text(
                json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
    finally:
        if bars:
            datasets.enable_progress_bars()
