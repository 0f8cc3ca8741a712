"""Paired bootstrap: CIDEr recomputed per resample exactly as pycocoevalcap would, and CIs."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from bench.score_pairs import synthetic_pairs
from components.evaluate.bootstrap import (
    MIN_RESAMPLES,
    bootstrap_cider,
    bootstrap_mean,
    paired_bootstrap,
    resample_weights,
)
from components.evaluate.cider import ResampledCider
from components.evaluate.scoring import CaptionPairs, ScoredCaptions, score_captions

WORDS = (
    "opens", "the", "sign", "in", "form", "cart", "menu", "settings", "profile", "page",
    "closes", "dialog", "adds", "item", "to", "shopping", "saves", "changes", "search",
    "results", "for", "query", "account", "deletes", "row", "table", "next",
)  # fmt: skip


def _sentence(rng: random.Random, low: int = 0, high: int = 12) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))


@pytest.fixture(scope="module")
def tokenized() -> tuple[list[str], list[str], list[list[str]]]:
    """PTB-style (lower-case, no punctuation) candidates, baselines and references."""
    rng = random.Random(7)
    references = [[_sentence(rng, 1) for _ in range(rng.randint(1, 4))] for _ in range(60)]
    # The candidate says one of the references with a word changed; the baseline is random.
    candidate = []
    for refs in references:
        words = rng.choice(refs).split()
        words[rng.randrange(len(words))] = rng.choice(WORDS)
        candidate.append(" ".join(words))
    baseline = [_sentence(rng) for _ in references]
    return candidate, baseline, references


@pytest.mark.parametrize("system_name", ["candidate", "baseline"])
def test_resampled_cider_equals_pycocoevalcap(
    tokenized: tuple[list[str], list[str], list[list[str]]], system_name: str
) -> None:
    candidate, baseline, references = tokenized
    predictions = candidate if system_name == "candidate" else baseline
    cider = ResampledCider(references)
    system = cider.cook(predictions)
    full_score, full_items = Cider().compute_score(
        {i: refs for i, refs in enumerate(references)}, {i: [p] for i, p in enumerate(predictions)}
    )
    ones = np.ones(len(references))
    idf_squared = cider.idf_squared(ones)
    items = cider.item_scores(system, idf_squared, cider.reference_norms(idf_squared))
    np.testing.assert_allclose(items, full_items, rtol=0, atol=1e-9)
    assert cider.corpus_score(system) == pytest.approx(full_score, abs=1e-9)

    # A resample duplicates some items and drops others: its df and idf are its own.
    rng = np.random.default_rng(3)
    for _ in range(5):
        drawn = rng.integers(0, len(references), size=len(references))
        expected, _ = Cider().compute_score(
            {position: references[i] for position, i in enumerate(drawn)},
            {position: [predictions[i]] for position, i in enumerate(drawn)},
        )
        weights = np.bincount(drawn, minlength=len(references))
        assert cider.corpus_score(system, weights) == pytest.approx(expected, abs=1e-9)
        mean_of_items = float(weights @ np.asarray(full_items) / len(references))
        assert abs(expected - mean_of_items) > 1e-6  # so the recomputation matters


def test_resample_weights_are_paired_and_deterministic() -> None:
    weights = resample_weights(50, MIN_RESAMPLES, seed=1)
    assert weights.shape == (MIN_RESAMPLES, 50)
    assert (weights.sum(axis=1) == 50).all()
    assert np.array_equal(weights, resample_weights(50, MIN_RESAMPLES, seed=1))
    assert not np.array_equal(weights, resample_weights(50, MIN_RESAMPLES, seed=2))
    with pytest.raises(ValueError, match="at least 1000"):
        resample_weights(50, 999, seed=1)


def test_a_system_against_itself_has_zero_delta(
    tokenized: tuple[list[str], list[str], list[list[str]]],
) -> None:
    candidate, _, references = tokenized
    cider = bootstrap_cider(candidate, candidate, references, seed=0)
    assert cider.delta == 0.0
    assert cider.ci_low <= 0.0 <= cider.ci_high
    assert cider.share_better == 0.0 and cider.p_value == 1.0
    values = np.random.default_rng(0).random(len(candidate))
    mean = bootstrap_mean(values, values, metric="semantic_similarity")
    assert (mean.delta, mean.ci_low, mean.ci_high) == (0.0, 0.0, 0.0)


def test_a_clearly_better_system_has_a_ci_above_zero(
    tokenized: tuple[list[str], list[str], list[list[str]]],
) -> None:
    candidate, baseline, references = tokenized
    result = bootstrap_cider(candidate, baseline, references, resamples=2000, seed=5)
    assert result.delta > 0.5
    assert 0.0 < result.ci_low < result.delta < result.ci_high
    assert result.share_better == 1.0 and result.p_value == 0.0
    assert result.candidate == pytest.approx(
        Cider().compute_score(
            {i: refs for i, refs in enumerate(references)},
            {i: [c] for i, c in enumerate(candidate)},
        )[0],
        abs=1e-9,
    )
    swapped = bootstrap_cider(baseline, candidate, references, resamples=2000, seed=5)
    assert swapped.ci_high < 0.0
    assert swapped.delta == pytest.approx(-result.delta)


def test_the_bootstrap_is_deterministic_for_a_seed(
    tokenized: tuple[list[str], list[str], list[list[str]]],
) -> None:
    candidate, baseline, references = tokenized
    # Nearly equal systems, so the interval straddles zero and depends on the draws.
    mixed = [c if i % 2 else b for i, (c, b) in enumerate(zip(candidate, baseline, strict=True))]
    other = [b if i % 2 else c for i, (c, b) in enumerate(zip(candidate, baseline, strict=True))]
    first = bootstrap_cider(mixed, other, references, seed=11)
    assert first == bootstrap_cider(mixed, other, references, seed=11)
    assert first != bootstrap_cider(mixed, other, references, seed=12)
    assert first.ci_low < 0.0 < first.ci_high
    assert first.to_dict()["seed"] == 11 and first.to_dict()["resamples"] == MIN_RESAMPLES


def test_mean_metric_ci_matches_the_spread_of_the_difference() -> None:
    rng = np.random.default_rng(4)
    candidate = rng.normal(0.7, 0.1, size=400)
    baseline = candidate - 0.05 + rng.normal(0, 0.02, size=400)
    result = bootstrap_mean(candidate, baseline, metric="semantic_similarity", seed=3)
    assert result.delta == pytest.approx(float(np.mean(candidate - baseline)))
    half_width = 1.96 * np.std(candidate - baseline) / np.sqrt(400)
    assert result.ci_low == pytest.approx(result.delta - half_width, abs=half_width * 0.2)
    assert result.ci_high == pytest.approx(result.delta + half_width, abs=half_width * 0.2)


@pytest.fixture(scope="module")
def scored_systems() -> tuple[ScoredCaptions, ScoredCaptions]:
    """A good and a poor system, scored for real (PTB, METEOR, similarity)."""
    data = synthetic_pairs(40, references_per_item=2, seed=1)
    poor = synthetic_pairs(40, references_per_item=2, seed=2)
    good = CaptionPairs(data.ids, tuple(refs[0] for refs in data.references), data.references)
    poor_pairs = CaptionPairs(data.ids, poor.predictions, data.references)
    return score_captions(good), score_captions(poor_pairs)


def test_paired_bootstrap_on_scored_systems(
    scored_systems: tuple[ScoredCaptions, ScoredCaptions],
) -> None:
    good, poor = scored_systems
    cider = paired_bootstrap(good, poor, "CIDEr", seed=0)
    assert cider.candidate == pytest.approx(good.metrics["CIDEr"], abs=1e-9)
    assert cider.baseline == pytest.approx(poor.metrics["CIDEr"], abs=1e-9)
    assert cider.ci_low > 0.0
    similarity = paired_bootstrap(good, poor, "semantic_similarity", seed=0)
    assert similarity.delta == pytest.approx(
        good.metrics["semantic_similarity"] - poor.metrics["semantic_similarity"]
    )
    assert similarity.ci_low > 0.0
    for metric in ("CIDEr", "semantic_similarity", "format_compliance", "ROUGE_L"):
        itself = paired_bootstrap(good, good, metric, seed=0)
        assert itself.delta == 0.0 and itself.ci_low <= 0.0 <= itself.ci_high, metric


def test_paired_bootstrap_refuses_what_it_cannot_compare(
    scored_systems: tuple[ScoredCaptions, ScoredCaptions],
) -> None:
    good, _ = scored_systems
    with pytest.raises(ValueError, match="no paired bootstrap for 'METEOR'"):
        paired_bootstrap(good, good, "METEOR")
    reordered = ScoredCaptions(
        pairs=CaptionPairs(good.pairs.ids[::-1], good.pairs.predictions, good.pairs.references),
        metrics=good.metrics,
        per_item=good.per_item,
        format_checks=good.format_checks,
        tokenized_predictions=good.tokenized_predictions,
        tokenized_references=good.tokenized_references,
    )
    with pytest.raises(ValueError, match="different items"):
        paired_bootstrap(good, reordered, "CIDEr")
