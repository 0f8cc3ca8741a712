"""How long scoring takes, on synthetic caption pairs worded like the UI summaries.

The evaluation bench reports the time to score 5,000 pairs; this module makes those pairs
(deterministic for a seed) and times `score_captions` and the CIDEr bootstrap on them.
"""

from __future__ import annotations

import random
import string
import time
from typing import Any

from components.demo.samples import SUMMARY_TEMPLATES
from components.evaluate.bootstrap import MIN_RESAMPLES, bootstrap_cider
from components.evaluate.scoring import CaptionPairs, score_captions
from components.evaluate.semantic import load_model, resolve_model_source

_SLOT_WORDS = (
    "account", "billing", "calendar", "cart", "contact", "dashboard", "email address",
    "invoice", "orders", "password", "payment", "profile", "project", "reports", "search",
    "security", "team", "username", "wishlist", "notifications",
)  # fmt: skip
_SLOT_QUALIFIERS = (
    "new", "shared", "archived", "current", "monthly", "personal", "team", "recent",
    "blue", "saved", "default", "pending", "weekly", "public", "private", "old",
)  # fmt: skip


def _fill(template: str, rng: random.Random) -> str:
    slots = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return template.format(
        **{name: f"{rng.choice(_SLOT_QUALIFIERS)} {rng.choice(_SLOT_WORDS)}" for name in slots}
    )


def synthetic_pairs(pairs: int = 5000, references_per_item: int = 3, seed: int = 0) -> CaptionPairs:
    """Items whose references fill one template; the prediction often fills the same one."""
    rng = random.Random(seed)
    templates = sorted(SUMMARY_TEMPLATES.values())
    ids, predictions, references = [], [], []
    for index in range(pairs):
        template = rng.choice(templates)
        references.append(tuple(_fill(template, rng) for _ in range(references_per_item)))
        guess = template if rng.random() < 0.6 else rng.choice(templates)
        predictions.append(_fill(guess, rng))
        ids.append(f"item-{index:05d}")
    return CaptionPairs(tuple(ids), tuple(predictions), tuple(references))


def time_scoring(
    pairs: int = 5000, seed: int = 0, similarity_model: str | None = None
) -> dict[str, Any]:
    """Seconds to score `pairs` pairs (per stage) and to bootstrap CIDEr on them.

    The embedding model is loaded first and timed on its own: it is loaded once per process.
    """
    data = synthetic_pairs(pairs, seed=seed)
    started = time.perf_counter()
    load_model(resolve_model_source(similarity_model))
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scored = score_captions(data, similarity_model=similarity_model)
    score_seconds = time.perf_counter() - started
    baseline = synthetic_pairs(pairs, seed=seed + 1)
    baseline_scored = score_captions(
        CaptionPairs(data.ids, baseline.predictions, data.references),
        similarity_model=similarity_model,
    )
    started = time.perf_counter()
    bootstrap_cider(
        scored.tokenized_predictions,
        baseline_scored.tokenized_predictions,
        scored.tokenized_references,
        resamples=MIN_RESAMPLES,
        seed=seed,
    )
    bootstrap_seconds = time.perf_counter() - started
    return {
        "pairs": pairs,
        "score_seconds": round(score_seconds, 3),
        "pairs_per_second": round(pairs / score_seconds, 1),
        "similarity_model_load_seconds": round(load_seconds, 3),
        "stages_seconds": {name: round(value, 3) for name, value in scored.timings.items()},
        "cider_bootstrap_seconds": round(bootstrap_seconds, 3),
        "cider_bootstrap_resamples": MIN_RESAMPLES,
        "CIDEr": scored.metrics["CIDEr"],
    }
