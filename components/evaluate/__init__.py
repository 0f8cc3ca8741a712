"""Evaluation: score captions honestly and compare systems with a paired bootstrap.

Scoring (`score_captions`, `score_files`) gives the COCO toolkit's metrics, semantic
similarity and answer-format compliance with per-item values; `paired_bootstrap` turns two
scored systems into a difference with a confidence interval.
"""

from components.evaluate.answer_format import DEFAULT_MAX_WORDS, FormatCheck, check_format
from components.evaluate.bootstrap import (
    BootstrapResult,
    bootstrap_cider,
    bootstrap_mean,
    paired_bootstrap,
)
from components.evaluate.coco_metrics import COCO_METRICS, UNAVAILABLE_METRICS
from components.evaluate.scoring import (
    CaptionPairs,
    ScoredCaptions,
    ScoringInputError,
    load_caption_pairs,
    pair_captions,
    score_captions,
    score_files,
)

__all__ = [
    "COCO_METRICS",
    "DEFAULT_MAX_WORDS",
    "UNAVAILABLE_METRICS",
    "BootstrapResult",
    "CaptionPairs",
    "FormatCheck",
    "ScoredCaptions",
    "ScoringInputError",
    "bootstrap_cider",
    "bootstrap_mean",
    "check_format",
    "load_caption_pairs",
    "pair_captions",
    "paired_bootstrap",
    "score_captions",
    "score_files",
]
