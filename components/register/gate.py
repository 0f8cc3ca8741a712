"""The promotion gate: may this candidate replace the baseline? Decided from evaluation.json alone.

`decide` is a pure function of the `Evaluation` (components/evaluate/result.py, the one
model of evaluation.json) and the gate settings, so a decision can be re-derived from the
stored evaluation at any time. The candidate passes only if every check holds:

- the evaluation's primary metric is the gate's, and its intervals are at least as wide
  (confidence level) as the gate requires;
- CIDEr gain over the baseline (the champion, or the base when there is none) is at least
  the absolute margin AND at least the relative margin of the baseline's CIDEr;
- the lower bound of the bootstrap CI of that gain is above 0 (when required): a gain
  that could be noise is no gain;
- no guard falls below the baseline by more than its tolerance: semantic similarity and
  answer-format compliance on the test split, and the general holdout (forgetting). With
  `require_guard_fall_significant` (the default) such a fall rejects only when the
  guard's bootstrap interval lies below zero too, so noise alone never decides; the
  check's detail says when a fall was let through as noise, and with which interval;
- the candidate's captions depend on its input: their distinct share is not more than
  the tolerance below the references' on the same records, and no caption takes more
  than the tolerance above the references' commonest share. This guard compares with
  the references, not the baseline, because the baseline may be collapsed too (an
  untuned base often says one sentence everywhere).

A guard missing from the evaluation fails: what was not measured cannot be vouched for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from components.evaluate.result import DiversityGuard, Evaluation, GuardResult
from components.register.config import GateConfig

GUARDS = ("semantic_similarity", "format_compliance", "general_holdout", "caption_diversity")
GUARD_LABELS = {
    "semantic_similarity": "semantic similarity",
    "format_compliance": "format compliance",
    "general_holdout": "general holdout (forgetting)",
    "caption_diversity": "caption diversity",
}
# Checks that only say the evaluation is usable; a passing decision's reasons skip them.
_BOOKKEEPING = ("primary_metric", "ci_level")
# Float noise in a JSON round trip must not flip a decision at the boundary.
EPSILON = 1e-9


@dataclass(frozen=True)
class Check:
    """One rule of the gate: whether it held, and a sentence with the numbers."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    """The gate's verdict; `reasons` are the failed checks, or every check when it passed."""

    passed: bool
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)
    baseline_role: str = "base"
    evaluated_champion: str | None = None

    @property
    def verdict(self) -> Literal["passed", "rejected"]:
        return "passed" if self.passed else "rejected"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "checks": [asdict(check) for check in self.checks],
            "baseline_role": self.baseline_role,
            "evaluated_champion": self.evaluated_champion,
        }


def _position_of_zero(low: float, high: float) -> str:
    """Where an interval lies against zero, as a check's detail says it."""
    if low > 0:
        return "lies above 0"
    return "contains 0" if high >= 0 else "lies below 0"


def _primary_checks(view: Evaluation, gate: GateConfig) -> list[Check]:
    metric = gate.primary_metric
    checks = [
        Check(
            "primary_metric",
            view.primary_metric == metric,
            f"the evaluation ranks by {view.primary_metric}; the gate by {metric}",
        )
    ]
    result = view.comparison.get(metric)
    if result is None:
        return [*checks, Check(metric, False, f"evaluation.json has no comparison.{metric}")]
    baseline = view.baseline_role
    relative_need = gate.cider_min_rel_gain * max(result.baseline, 0.0)
    checks += [
        Check(
            "ci_level",
            result.confidence + EPSILON >= gate.ci_level,
            f"the evaluation's intervals are at {result.confidence:.0%}; the gate needs "
            f"{gate.ci_level:.0%}",
        ),
        Check(
            "abs_gain",
            result.delta + EPSILON >= gate.cider_min_abs_gain,
            f"{metric} gain over the {baseline} is {result.delta:+.4f} "
            f"({result.baseline:.4f} -> {result.candidate:.4f}); the gate needs at least "
            f"+{gate.cider_min_abs_gain:.4f}",
        ),
        Check(
            "rel_gain",
            result.delta + EPSILON >= relative_need,
            f"{metric} gain over the {baseline} is {result.delta:+.4f}; the gate needs at least "
            f"{gate.cider_min_rel_gain:.0%} of the {baseline}'s {result.baseline:.4f} "
            f"(+{relative_need:.4f})",
        ),
    ]
    if gate.require_ci_above_zero:
        where = _position_of_zero(result.ci_low, result.ci_high)
        checks.append(
            Check(
                "ci_above_zero",
                result.ci_low > 0,
                f"the {result.confidence:.0%} bootstrap CI of the {metric} gain "
                f"[{result.ci_low:+.4f}, {result.ci_high:+.4f}] {where}",
            )
        )
    return checks


def _baseline_guard(
    name: str, result: GuardResult, tolerance: float, gate: GateConfig, level: float
) -> Check:
    within = result.delta + tolerance + EPSILON >= 0
    significant = result.ci_high < 0
    if abs(result.delta) <= EPSILON:
        change = "did not change"
    else:
        change = f"{'fell' if result.delta < 0 else 'rose'} by {abs(result.delta):.4f}"
    where = _position_of_zero(result.ci_low, result.ci_high)
    if within:
        verdict = ""
    elif significant:
        verdict = f", and the CI {where}"
    elif gate.require_guard_fall_significant:
        verdict = f", but the CI {where}: noise could explain the fall"
    else:
        verdict = f"; the CI {where}, but the gate decides on the fall alone"
    held = within or (gate.require_guard_fall_significant and not significant)
    return Check(
        f"guard.{name}",
        held,
        f"{GUARD_LABELS[name]} {change} ({result.baseline:.4f} -> {result.candidate:.4f}), "
        f"{level:.0%} CI [{result.ci_low:+.4f}, {result.ci_high:+.4f}]; the tolerance is "
        f"{tolerance:.4f}{verdict}",
    )


def _diversity_guard(result: DiversityGuard, tolerance: float) -> Check:
    distinct_held = result.delta + tolerance + EPSILON >= 0
    top_rise = result.candidate_top_share - result.references_top_share
    top_held = top_rise <= tolerance + EPSILON
    return Check(
        "guard.caption_diversity",
        distinct_held and top_held,
        f"caption diversity on the {result.split} split: {result.candidate_distinct} distinct "
        f"captions in {result.n} records (share {result.candidate:.4f}) against the "
        f"references' {result.references:.4f} ({result.delta:+.4f}); the commonest, "
        f"{result.candidate_top_caption!r}, takes {result.candidate_top_share:.4f} of the "
        f"records against the references' {result.references_top_share:.4f} "
        f"({top_rise:+.4f}); the tolerance is {tolerance:.4f}",
    )


def _guard_checks(view: Evaluation, gate: GateConfig) -> list[Check]:
    primary = view.comparison.get(gate.primary_metric)
    level = gate.ci_level if primary is None else primary.confidence
    checks = []
    for name in GUARDS:
        tolerance = float(getattr(gate.tolerances, name))
        result = getattr(view.guards, name)
        if result is None:
            checks.append(
                Check(
                    f"guard.{name}",
                    False,
                    f"{GUARD_LABELS[name]} was not measured (guards.{name} is missing), so it "
                    "cannot be shown not to regress",
                )
            )
        elif isinstance(result, DiversityGuard):
            checks.append(_diversity_guard(result, tolerance))
        else:
            checks.append(_baseline_guard(name, result, tolerance, gate, level))
    return checks


def decide(evaluation: Evaluation, gate: GateConfig) -> Decision:
    """The verdict on one evaluation; `EvaluationError` if it cannot name its champion."""
    checks = _primary_checks(evaluation, gate) + _guard_checks(evaluation, gate)
    passed = all(check.passed for check in checks)
    failed = [check.detail for check in checks if not check.passed]
    held = [check.detail for check in checks if check.name not in _BOOKKEEPING]
    return Decision(
        passed=passed,
        reasons=held if passed else failed,
        checks=checks,
        baseline_role=evaluation.baseline_role,
        evaluated_champion=evaluation.evaluated_champion,
    )
