"""Compare two candidates that were each evaluated against the same baseline, without re-running.

When two pipeline runs race, both evaluate their candidate against the champion of the
moment (say v3). If the first promotes, the second finds the champion moved and its
evaluation stale. Refusing it outright would let whichever finished first win, even the
worse one, and the better one would never be looked at again. But both evaluations
scored every record of the same test split and general holdout, with the same baseline
and the same scoring, and evaluation.json keeps each record's scores. So the second
candidate can be compared with the new champion record by record, as if the new
champion had been its baseline: a paired bootstrap over the per-record differences gives
the comparison and guard entries the gate reads, and the gate decides as usual.

This reads evaluation.json files only, like the gate. Where the two evaluations differ
in anything that makes their scores incomparable (baseline, data, scoring, decoding),
`head_to_head` says why, and the promotion records a stale evaluation instead.

The intervals here come from per-record CIDEr (whose mean is the corpus CIDEr-D);
evaluation.json's own CIDEr intervals also recompute document frequencies per resample,
so the two can differ slightly in width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from components.evaluate.bootstrap import MIN_RESAMPLES, resample_weights

TEST_METRICS = ("CIDEr", "semantic_similarity", "format_compliance")
GENERAL_METRIC = "CIDEr"


class NotComparableError(ValueError):
    """The two evaluations cannot be compared record by record; the message says why."""


def _get(data: Mapping[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _baseline_identity(evaluation: Mapping[str, Any]) -> tuple[Any, ...]:
    role = evaluation.get("baseline_role")
    identity = _get(evaluation, "models", str(role), "identity") or {}
    registry = identity.get("registry") or {}
    return (
        role,
        registry.get("name"),
        registry.get("version"),
        identity.get("location") if not registry else None,
        identity.get("revision") if not registry else None,
        identity.get("weights_sha256"),
    )


def comparability(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """Why the two evaluations' per-record scores cannot be set side by side (empty: they can)."""
    problems = []
    if _baseline_identity(ours) != _baseline_identity(theirs):
        problems.append("they were compared with different baselines")
    for split in ("test", "general"):
        if _get(ours, "data", split, "split_sha256") != _get(theirs, "data", split, "split_sha256"):
            problems.append(f"they used different {split} data")
    for section, key in (
        ("scoring", "similarity_model"),
        ("scoring", "max_words"),
        ("generation", "max_new_tokens"),
        ("generation", "decoding"),
    ):
        if _get(ours, section, key) != _get(theirs, section, key):
            problems.append(f"their {section}.{key} differ")
    for split in ("test", "general"):
        mine = [row.get("id") for row in _get(ours, "predictions", split) or []]
        other = [row.get("id") for row in _get(theirs, "predictions", split) or []]
        if mine != other:
            problems.append(f"their {split} records differ")
        elif not mine:
            problems.append(f"neither has per-record {split} scores")
    return problems


def _per_record(rows: Sequence[Mapping[str, Any]], metric: str) -> np.ndarray:
    if metric == "format_compliance":
        return np.array([float(bool(row["format_ok"]["candidate"])) for row in rows])
    return np.array([float(row[metric]["candidate"]) for row in rows])


def _compare(
    ours: np.ndarray,
    theirs: np.ndarray,
    metric: str,
    weights: np.ndarray,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    differences = ours - theirs
    resampled = weights @ differences / len(differences)
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled, [tail, 1 - tail])
    return {
        "metric": metric,
        "candidate": float(ours.mean()),
        "baseline": float(theirs.mean()),
        "delta": float(differences.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "share_better": float((resampled > 0).mean()),
        "p_value": float((resampled <= 0).mean()),
        "resamples": int(weights.shape[0]),
        "seed": seed,
        "n": len(differences),
    }


def head_to_head(
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    theirs_registry: Mapping[str, str],
) -> dict[str, Any]:
    """An evaluation of our candidate against theirs, in the shape the gate reads.

    `theirs_registry` is `{"name", "version"}` of their (now champion) version.
    """
    problems = comparability(ours, theirs)
    if problems:
        raise NotComparableError("; ".join(problems))
    confidence = float(_get(ours, "comparison", "CIDEr", "confidence") or 0.95)
    resamples = max(MIN_RESAMPLES, int(_get(ours, "scoring", "resamples") or MIN_RESAMPLES))
    seed = int(_get(ours, "scoring", "seed") or 0)
    ours_test, theirs_test = ours["predictions"]["test"], theirs["predictions"]["test"]
    weights = resample_weights(len(ours_test), resamples, seed)
    comparison = {
        metric: _compare(
            _per_record(ours_test, metric),
            _per_record(theirs_test, metric),
            metric,
            weights,
            confidence,
            seed,
        )
        for metric in TEST_METRICS
    }
    ours_general, theirs_general = ours["predictions"]["general"], theirs["predictions"]["general"]
    general = _compare(
        _per_record(ours_general, GENERAL_METRIC),
        _per_record(theirs_general, GENERAL_METRIC),
        GENERAL_METRIC,
        resample_weights(len(ours_general), resamples, seed),
        confidence,
        seed,
    )

    def guard(result: dict[str, Any], split: str) -> dict[str, Any]:
        keys = ("metric", "candidate", "baseline", "delta", "ci_low", "ci_high")
        return {"split": split, **{key: result[key] for key in keys}}

    return {
        "schema_version": 1,
        "primary_metric": ours.get("primary_metric", "CIDEr"),
        "baseline_role": "champion",
        "roles": ["candidate", "champion"],
        "models": {
            "candidate": {"identity": _get(ours, "models", "candidate", "identity")},
            "champion": {
                "identity": {
                    "registry": dict(theirs_registry),
                    "weights_sha256": _get(
                        theirs, "models", "candidate", "identity", "weights_sha256"
                    ),
                }
            },
        },
        "comparison": comparison,
        "guards": {
            "semantic_similarity": guard(comparison["semantic_similarity"], "test"),
            "format_compliance": guard(comparison["format_compliance"], "test"),
            "general_holdout": guard(general, "general"),
        },
        "derived_from": {
            "shared_baseline": list(_baseline_identity(ours)),
            "method": "paired bootstrap of per-record differences between two evaluations",
        },
    }
