"""Score predicted captions against references: the numbers behind `uicap score`.

Inputs are JSON lines: predictions ``{"id", "caption"}`` and references
``{"id", "references": [str, ...]}``. Both files must hold the same ids, each once; every
problem found is reported together, naming the file, the line and the id. The result
holds the COCO toolkit's corpus scores, semantic similarity, format compliance, and the
per-item values (CIDEr, similarity, format, ...) that the paired bootstrap resamples.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from components.evaluate.answer_format import DEFAULT_MAX_WORDS, FormatCheck, check_format
from components.evaluate.coco_metrics import COCO_METRICS, UNAVAILABLE_METRICS, coco_scores
from components.evaluate.semantic import (
    ModelSource,
    best_reference_similarity,
    resolve_model_source,
)

LISTED = 20  # how many offending ids or lines an error message shows


class ScoringInputError(ValueError):
    """The prediction or reference files cannot be scored; the message lists every problem."""


@dataclass(frozen=True)
class CaptionPairs:
    """Predictions aligned with their references, in the order of the references file."""

    ids: tuple[str, ...]
    predictions: tuple[str, ...]
    references: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if not len(self.ids) == len(self.predictions) == len(self.references):
            raise ValueError("ids, predictions and references must have the same length")


@dataclass(frozen=True)
class ScoredCaptions:
    """Everything scoring one system produced; `metrics` is what `uicap score` prints."""

    pairs: CaptionPairs
    metrics: dict[str, Any]
    per_item: dict[str, np.ndarray]
    format_checks: tuple[FormatCheck, ...]
    tokenized_predictions: tuple[str, ...]
    tokenized_references: tuple[tuple[str, ...], ...]
    timings: dict[str, float] = field(default_factory=dict)

    def item_rows(self) -> list[dict[str, Any]]:
        """One row per item (id, caption, references, per-item scores, format violations)."""
        rows = []
        for index, item_id in enumerate(self.pairs.ids):
            row: dict[str, Any] = {
                "id": item_id,
                "caption": self.pairs.predictions[index],
                "references": list(self.pairs.references[index]),
            }
            row.update({name: float(values[index]) for name, values in self.per_item.items()})
            row["format_violations"] = list(self.format_checks[index].violations)
            rows.append(row)
        return rows


def _listing(values: Sequence[str]) -> str:
    shown = ", ".join(values[:LISTED])
    more = len(values) - LISTED
    return f"{shown}, ... and {more} more" if more > 0 else shown


def _json_lines(path: Path, problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        # JSON lines end at "\n" only; str.splitlines would also cut at U+2028 inside a string.
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as error:
        problems.append(f"{path}: not UTF-8 text ({error})")
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{path}:{number}: malformed JSON ({error.msg})")
            continue
        if not isinstance(record, dict):
            problems.append(f"{path}:{number}: expected a JSON object, got {record!r:.60}")
            continue
        yield number, record


class _BadField(ValueError):
    """One record's field cannot be used; the message says why."""


def _read_records(
    path: Path, parse: Callable[[dict[str, Any]], Any], problems: list[str]
) -> tuple[dict[str, Any], set[str]]:
    """Map id -> parsed record for one file, and every id seen; problems go to `problems`."""
    records: dict[str, Any] = {}
    seen: dict[str, list[int]] = {}
    empty_lines: list[str] = []
    for number, record in _json_lines(path, problems):
        raw_id = record.get("id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int | None):
            problems.append(f"{path}:{number}: 'id' must be a string, got {raw_id!r:.60}")
            continue
        item_id = "" if raw_id is None else str(raw_id)
        if not item_id.strip():
            empty_lines.append(str(number))
            continue
        seen.setdefault(item_id, []).append(number)
        try:
            records[item_id] = parse(record)
        except _BadField as error:
            problems.append(f"{path}:{number}: id {item_id!r}: {error}")
    if empty_lines:
        problems.append(
            f"{path}: {len(empty_lines)} record(s) with a missing or empty 'id' "
            f"on line(s) {_listing(empty_lines)}"
        )
    duplicates = [
        f"{item_id!r} (lines {', '.join(map(str, lines))})"
        for item_id, lines in seen.items()
        if len(lines) > 1
    ]
    if duplicates:
        problems.append(f"{path}: {len(duplicates)} duplicated id(s): {_listing(duplicates)}")
    return records, set(seen)


def _is_text(value: Any) -> bool:
    """A str that UTF-8 can encode (JSON may carry lone surrogates such as "\\ud800")."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _caption(record: dict[str, Any]) -> str:
    if "caption" not in record:
        raise _BadField("missing field 'caption'")
    caption = record["caption"]
    if not _is_text(caption):
        raise _BadField(f"'caption' must be a UTF-8 string, got {caption!r:.60}")
    return caption


def _references(record: dict[str, Any]) -> tuple[str, ...]:
    if "references" not in record:
        raise _BadField("missing field 'references'")
    return _checked_references(record["references"])


def _checked_references(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise _BadField("'references' must be a non-empty list of strings")
    for position, text in enumerate(value):
        if not _is_text(text) or not text.strip():
            raise _BadField(f"references[{position}] must be a non-empty string, got {text!r:.60}")
    return tuple(value)


def pair_captions(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]
) -> CaptionPairs:
    """Align predictions with references by id; every id must be on both sides."""
    problems = _id_mismatch(set(predictions), set(references), "predictions", "references")
    for item_id in references:
        try:
            _checked_references(references[item_id])
        except _BadField as error:
            problems.append(f"id {item_id!r}: {error}")
    for item_id, caption in predictions.items():
        if not _is_text(caption):
            problems.append(f"id {item_id!r}: caption must be a UTF-8 string, got {caption!r:.60}")
    if problems:
        raise ScoringInputError("\n".join(problems))
    ids = tuple(references)
    return CaptionPairs(
        ids=ids,
        predictions=tuple(predictions[item_id] for item_id in ids),
        references=tuple(tuple(references[item_id]) for item_id in ids),
    )


def _id_mismatch(
    prediction_ids: set[str], reference_ids: set[str], predictions: str, references: str
) -> list[str]:
    problems = []
    unreferenced = sorted(prediction_ids - reference_ids)
    unpredicted = sorted(reference_ids - prediction_ids)
    if unreferenced:
        problems.append(
            f"{len(unreferenced)} id(s) in {predictions} have no references: "
            f"{_listing([repr(i) for i in unreferenced])}"
        )
    if unpredicted:
        problems.append(
            f"{len(unpredicted)} id(s) in {references} have no prediction: "
            f"{_listing([repr(i) for i in unpredicted])}"
        )
    if not prediction_ids and not reference_ids:
        problems.append(f"{predictions} and {references} hold no records")
    return problems


def load_caption_pairs(predictions_path: Path, references_path: Path) -> CaptionPairs:
    """Read and validate both JSON-lines files; raise one error listing every problem."""
    problems: list[str] = []
    predictions, predicted = _read_records(Path(predictions_path), _caption, problems)
    references, referenced = _read_records(Path(references_path), _references, problems)
    problems += _id_mismatch(predicted, referenced, str(predictions_path), str(references_path))
    if problems:
        raise ScoringInputError("\n".join(problems))
    return pair_captions(predictions, references)


def score_captions(
    pairs: CaptionPairs,
    max_words: int = DEFAULT_MAX_WORDS,
    similarity_model: str | ModelSource | None = None,
) -> ScoredCaptions:
    """COCO metrics, semantic similarity and format compliance for one system."""
    if not pairs.ids:
        raise ScoringInputError("nothing to score: no items")
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    coco = coco_scores(pairs.predictions, pairs.references)
    timings["coco_metrics_s"] = time.perf_counter() - started

    started = time.perf_counter()
    source = resolve_model_source(similarity_model)
    similarity = best_reference_similarity(pairs.predictions, pairs.references, source)
    timings["semantic_similarity_s"] = time.perf_counter() - started

    started = time.perf_counter()
    checks = tuple(check_format(caption, max_words) for caption in pairs.predictions)
    compliant = np.array([check.ok for check in checks], dtype=np.float64)
    words = np.array([check.words for check in checks], dtype=np.float64)
    timings["format_s"] = time.perf_counter() - started

    violations = Counter(rule for check in checks for rule in check.violations)
    metrics: dict[str, Any] = {name: coco.corpus[name] for name in COCO_METRICS}
    metrics.update(
        {
            "SPICE": None,
            "semantic_similarity": float(similarity.mean()),
            "format_compliance": float(compliant.mean()),
            "mean_words": float(words.mean()),
            "n": len(pairs.ids),
            "format_violations": dict(sorted(violations.items())),
            "max_words": max_words,
            "similarity_model": str(source),
            "unavailable": dict(UNAVAILABLE_METRICS),
        }
    )
    per_item = dict(coco.per_item)
    per_item["semantic_similarity"] = similarity
    per_item["format_compliance"] = compliant
    per_item["words"] = words
    return ScoredCaptions(
        pairs=pairs,
        metrics=metrics,
        per_item=per_item,
        format_checks=checks,
        tokenized_predictions=coco.tokenized_predictions,
        tokenized_references=coco.tokenized_references,
        timings=timings,
    )


def score_files(
    predictions_path: Path,
    references_path: Path,
    max_words: int = DEFAULT_MAX_WORDS,
    similarity_model: str | ModelSource | None = None,
) -> ScoredCaptions:
    """`uicap score` as a function: read, validate, score."""
    pairs = load_caption_pairs(predictions_path, references_path)
    return score_captions(pairs, max_words=max_words, similarity_model=similarity_model)
