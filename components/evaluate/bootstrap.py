"""Paired bootstrap of a metric difference between two systems scored on the same items.

Each resample draws item indices with replacement (the same indices for both systems, so
the comparison stays paired) and recomputes the metric of each system on it. A
corpus-level metric is recomputed from scratch: CIDEr's document frequencies come from the
resampled references (see `components.evaluate.cider`). A metric that is a mean of
per-item values (semantic similarity, format compliance, ROUGE-L) is the weighted mean of
those values. All metrics drawn with the same seed and item count share their resamples.

The result gives the observed difference (candidate - baseline), a percentile confidence
interval of the resampled differences, the share of resamples in which the candidate is
better, and a one-sided p-value: the share in which it is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from components.evaluate.cider import ResampledCider
from components.evaluate.scoring import ScoredCaptions

MIN_RESAMPLES = 1000
CORPUS_METRICS = ("CIDEr",)
MEAN_METRICS = ("semantic_similarity", "format_compliance", "ROUGE_L")


@dataclass(frozen=True)
class BootstrapResult:
    """Candidate - baseline on one metric, with its bootstrap confidence interval."""

    metric: str
    candidate: float
    baseline: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    share_better: float
    p_value: float
    resamples: int
    seed: int
    n: int

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def resample_weights(items: int, resamples: int, seed: int) -> np.ndarray:
    """How often each item is drawn in each resample: an int array (resamples, items)."""
    if items < 1:
        raise ValueError("cannot resample zero items")
    if resamples < MIN_RESAMPLES:
        raise ValueError(f"use at least {MIN_RESAMPLES} resamples, got {resamples}")
    draws = np.random.default_rng(seed).integers(0, items, size=(resamples, items))
    flat = (draws + items * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * items).reshape(resamples, items)


def _result(
    metric: str,
    observed: tuple[float, float],
    resampled: np.ndarray,
    confidence: float,
    seed: int,
    items: int,
) -> BootstrapResult:
    deltas = resampled[:, 0] - resampled[:, 1]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(deltas, [tail, 1.0 - tail])
    return BootstrapResult(
        metric=metric,
        candidate=float(observed[0]),
        baseline=float(observed[1]),
        delta=float(observed[0] - observed[1]),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        share_better=float(np.mean(deltas > 0)),
        p_value=float(np.mean(deltas <= 0)),
        resamples=len(deltas),
        seed=seed,
        n=items,
    )


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def bootstrap_mean(
    candidate_values: Sequence[float] | np.ndarray,
    baseline_values: Sequence[float] | np.ndarray,
    metric: str,
    resamples: int = MIN_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Paired bootstrap of a metric that is the mean of per-item values."""
    _check_confidence(confidence)
    candidate = np.asarray(candidate_values, dtype=np.float64)
    baseline = np.asarray(baseline_values, dtype=np.float64)
    if candidate.shape != baseline.shape or candidate.ndim != 1:
        raise ValueError(
            f"{metric}: per-item values of shapes {candidate.shape} and {baseline.shape}"
        )
    weights = resample_weights(len(candidate), resamples, seed).astype(np.float64)
    resampled = weights @ np.stack([candidate, baseline], axis=1) / len(candidate)
    observed = (float(candidate.mean()), float(baseline.mean()))
    return _result(metric, observed, resampled, confidence, seed, len(candidate))


def bootstrap_cider(
    candidate_tokens: Sequence[str],
    baseline_tokens: Sequence[str],
    reference_tokens: Sequence[Sequence[str]],
    resamples: int = MIN_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Paired bootstrap of corpus CIDEr-D, recomputed on every resample.

    Takes PTB-tokenised text, as `ScoredCaptions.tokenized_*` holds it, so no resample
    runs the Java tokenizer.
    """
    _check_confidence(confidence)
    if not len(candidate_tokens) == len(baseline_tokens) == len(reference_tokens):
        raise ValueError(
            f"CIDEr: {len(candidate_tokens)} candidate, {len(baseline_tokens)} baseline and "
            f"{len(reference_tokens)} reference items; they must be aligned"
        )
    cider = ResampledCider(reference_tokens)
    systems = [cider.cook(candidate_tokens), cider.cook(baseline_tokens)]
    weights = resample_weights(len(reference_tokens), resamples, seed)
    observed = cider.paired_corpus_scores(systems, np.ones((1, len(reference_tokens))))[0]
    resampled = cider.paired_corpus_scores(systems, weights)
    return _result(
        "CIDEr", (observed[0], observed[1]), resampled, confidence, seed, len(reference_tokens)
    )


def paired_bootstrap(
    candidate: ScoredCaptions,
    baseline: ScoredCaptions,
    metric: str,
    resamples: int = MIN_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapResult:
    """Bootstrap candidate - baseline on `metric`; both were scored on the same items."""
    if candidate.pairs.ids != baseline.pairs.ids:
        differing = sorted(set(candidate.pairs.ids) ^ set(baseline.pairs.ids))[:20]
        raise ValueError(
            "the systems were scored on different items (ids or order differ); "
            f"ids on one side only: {differing}"
        )
    if candidate.pairs.references != baseline.pairs.references:
        raise ValueError("the systems were scored against different references")
    if metric in CORPUS_METRICS:
        return bootstrap_cider(
            candidate.tokenized_predictions,
            baseline.tokenized_predictions,
            candidate.tokenized_references,
            resamples=resamples,
            seed=seed,
            confidence=confidence,
        )
    if metric in MEAN_METRICS:
        return bootstrap_mean(
            candidate.per_item[metric],
            baseline.per_item[metric],
            metric=metric,
            resamples=resamples,
            seed=seed,
            confidence=confidence,
        )
    raise ValueError(
        f"no paired bootstrap for {metric!r}; supported: {', '.join(CORPUS_METRICS + MEAN_METRICS)}"
    )
