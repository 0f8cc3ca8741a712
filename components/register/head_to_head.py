"""Compare two candidates that were each evaluated against the same baseline, without re-running.

When two pipeline runs race, both evaluate their candidate against the champion of the
moment (say v3). If the first promotes, the second finds the champion moved and its
evaluation stale. Refusing it outright would let whichever finished first win, even the
worse one, and the better one would never be looked at again. But both evaluations
scored every record of the same test split and general holdout, with the same baseline
and the same scoring, and evaluation.json keeps each record's scores. So the second
candidate can be compared with the new champion record by record, as if the new
champion had been its baseline: a paired bootstrap over the per-record differences gives
the comparisons and guards, `head_to_head` returns them as an `Evaluation` of the same
schema, and the gate decides on it as usual.

This reads evaluations only, like the gate. Where the two evaluations differ
in anything that makes their scores incomparable (baseline, data, scoring, decoding),
`head_to_head` says why, and the promotion records a stale evaluation instead.

The intervals here come from per-record CIDEr (whose mean is the corpus CIDEr-D);
evaluation.json's own CIDEr intervals also recompute document frequencies per resample,
so the two can differ slightly in width. The gate's guards read these intervals too: a
fall beyond a tolerance rejects only when its interval lies below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from components.evaluate.bootstrap import MIN_RESAMPLES, resample_weights
from components.evaluate.result import (
    COMPARED_METRICS,
    CONFIDENCE,
    GENERAL_HOLDOUT_METRIC,
    GENERAL_METRICS,
    TYPE_METRICS,
    Comparison,
    DerivedFrom,
    DiversitySection,
    Evaluation,
    GuardResult,
    Guards,
    PredictionRow,
    Predictions,
    RegistryRef,
    TypeRow,
)

METHOD = "paired bootstrap of per-record differences between two evaluations"


class NotComparableError(ValueError):
    """The two evaluations cannot be compared record by record; the message says why."""


def _baseline_identity(evaluation: Evaluation) -> tuple[str | None, ...]:
    identity = evaluation.baseline.identity
    registry = identity.registry
    return (
        evaluation.baseline_role,
        None if registry is None else registry.name,
        None if registry is None else registry.version,
        identity.location if registry is None else None,
        identity.revision if registry is None else None,
        identity.weights_sha256,
    )


def _split_ids(evaluation: Evaluation, split: str) -> list[str]:
    rows = getattr(evaluation.predictions, split)
    return [row.id for row in rows or []]


def comparability(ours: Evaluation, theirs: Evaluation) -> list[str]:
    """Why the two evaluations' per-record scores cannot be set side by side (empty: they can)."""
    problems = []
    if _baseline_identity(ours) != _baseline_identity(theirs):
        problems.append("they were compared with different baselines")
    for split in ("test", "general"):
        mine, other = getattr(ours.data, split), getattr(theirs.data, split)
        if (mine and mine.split_sha256) != (other and other.split_sha256):
            problems.append(f"they used different {split} data")
    for section, key in (
        ("scoring", "similarity_model"),
        ("scoring", "max_words"),
        ("generation", "max_new_tokens"),
        ("generation", "decoding"),
    ):
        if getattr(getattr(ours, section), key) != getattr(getattr(theirs, section), key):
            problems.append(f"their {section}.{key} differ")
    for split in ("test", "general"):
        mine, other = _split_ids(ours, split), _split_ids(theirs, split)
        if mine != other:
            problems.append(f"their {split} records differ")
        elif not mine:
            problems.append(f"neither has per-record {split} scores")
    return problems


def _per_record(rows: Sequence[PredictionRow], metric: str) -> np.ndarray:
    if metric == "format_compliance":
        return np.array([float(row.format_ok["candidate"]) for row in rows])
    return np.array([float(getattr(row, metric)["candidate"]) for row in rows])


def _compare(
    ours: np.ndarray,
    theirs: np.ndarray,
    metric: str,
    weights: np.ndarray,
    confidence: float,
    seed: int,
) -> Comparison:
    differences = ours - theirs
    resampled = weights @ differences / len(differences)
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return Comparison(
        metric=metric,
        candidate=float(ours.mean()),
        baseline=float(theirs.mean()),
        delta=float(differences.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        share_better=float((resampled > 0).mean()),
        p_value=float((resampled <= 0).mean()),
        resamples=int(weights.shape[0]),
        seed=seed,
        n=len(differences),
    )


def _side_by_side(ours: PredictionRow, theirs: PredictionRow) -> PredictionRow:
    """Our candidate's record next to theirs, theirs in the champion's place."""
    row = {
        "captions": (ours.captions, theirs.captions),
        "CIDEr": (ours.CIDEr, theirs.CIDEr),
        "semantic_similarity": (ours.semantic_similarity, theirs.semantic_similarity),
        "format_ok": (ours.format_ok, theirs.format_ok),
        "format_violations": (ours.format_violations, theirs.format_violations),
    }
    paired = {
        key: {"candidate": a["candidate"], "champion": b["candidate"]}
        for key, (a, b) in row.items()
    }
    return ours.model_copy(
        update={
            **paired,
            "delta": {
                metric: paired[metric]["candidate"] - paired[metric]["champion"]
                for metric in ("CIDEr", "semantic_similarity")
            },
        }
    )


def _per_type(ours: Evaluation, theirs: Evaluation) -> dict[str, TypeRow]:
    """Each type's figures of both candidates (each computed on the same records' subset)."""
    table: dict[str, TypeRow] = {}
    for element_type, row in ours.per_element_type.items():
        other = theirs.per_element_type.get(element_type)
        if other is None or other.n != row.n:
            continue
        mine, them = row.models["candidate"], other.models["candidate"]
        table[element_type] = TypeRow(
            n=row.n,
            models={"candidate": mine, "champion": them},
            delta={m: getattr(mine, m) - getattr(them, m) for m in TYPE_METRICS},
        )
    return table


def head_to_head(ours: Evaluation, theirs: Evaluation, theirs_registry: RegistryRef) -> Evaluation:
    """An evaluation of our candidate against theirs, as if theirs had been our baseline.

    `theirs_registry` names their (now champion) version. Their candidate takes the
    champion's place, with its own scores from their evaluation; comparisons and guards
    are recomputed record by record; the caption-diversity guard, which compares with the
    references and not with a baseline, is ours unchanged.
    """
    problems = comparability(ours, theirs)
    if problems:
        raise NotComparableError("; ".join(problems))
    confidence = ours.comparison["CIDEr"].confidence if "CIDEr" in ours.comparison else CONFIDENCE
    resamples = max(MIN_RESAMPLES, ours.scoring.resamples)
    seed = ours.scoring.seed
    ours_test, theirs_test = ours.predictions.test, theirs.predictions.test
    ours_general = ours.predictions.general or []
    theirs_general = theirs.predictions.general or []
    test_weights = resample_weights(len(ours_test), resamples, seed)
    general_weights = resample_weights(len(ours_general), resamples, seed)

    def compare(
        metric: str,
        mine: Sequence[PredictionRow],
        other: Sequence[PredictionRow],
        weights: np.ndarray,
    ) -> Comparison:
        return _compare(
            _per_record(mine, metric), _per_record(other, metric), metric, weights, confidence, seed
        )

    comparison = {m: compare(m, ours_test, theirs_test, test_weights) for m in COMPARED_METRICS}
    general = {
        m: compare(m, ours_general, theirs_general, general_weights) for m in GENERAL_METRICS
    }
    # Their candidate, in the champion's place, under the version it was registered as.
    champion = theirs.candidate.model_copy(
        update={
            "identity": theirs.candidate.identity.model_copy(update={"registry": theirs_registry})
        }
    )
    diversity = None
    if ours.diversity is not None and theirs.diversity is not None:
        diversity = DiversitySection(
            split=ours.diversity.split,
            references=ours.diversity.references,
            models={
                "candidate": ours.diversity.models["candidate"],
                "champion": theirs.diversity.models["candidate"],
            },
        )
    return Evaluation(
        schema_version=ours.schema_version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        uicap_version=ours.uicap_version,
        primary_metric=ours.primary_metric,
        baseline_role="champion",
        roles=["candidate", "champion"],
        models={"candidate": ours.candidate, "champion": champion},
        comparison=comparison,
        comparison_with_base=None,
        general_comparison=general,
        guards=Guards(
            semantic_similarity=GuardResult.of(comparison["semantic_similarity"], "test"),
            format_compliance=GuardResult.of(comparison["format_compliance"], "test"),
            general_holdout=GuardResult.of(general[GENERAL_HOLDOUT_METRIC], "general"),
            caption_diversity=ours.guards.caption_diversity,
        ),
        diversity=diversity,
        per_element_type=_per_type(ours, theirs),
        data=ours.data,
        generation=ours.generation,
        scoring=ours.scoring,
        predictions=Predictions(
            test=[_side_by_side(a, b) for a, b in zip(ours_test, theirs_test, strict=True)],
            general=[
                _side_by_side(a, b) for a, b in zip(ours_general, theirs_general, strict=True)
            ],
        ),
        warnings=list(ours.warnings),
        derived_from=DerivedFrom(shared_baseline=list(_baseline_identity(ours)), method=METHOD),
    )
