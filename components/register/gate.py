"""The promotion gate: may this candidate replace the baseline? Decided from evaluation.json alone.

`decide` is a pure function of the evaluation and the gate settings, so a decision can be
re-derived from the stored evaluation at any time, and tested on hand-written dicts.
The candidate passes only if every check holds:

- the evaluation's primary metric is the gate's, and its intervals are at least as wide
  (confidence level) as the gate requires;
- CIDEr gain over the baseline (the champion, or the base when there is none) is at least
  the absolute margin AND at least the relative margin of the baseline's CIDEr;
- the lower bound of the bootstrap CI of that gain is above 0 (when required): a gain
  that could be noise is no gain;
- no guard falls below the baseline by more than its tolerance: semantic similarity and
  answer-format compliance on the test split, and the general holdout (forgetting). A
  guard missing from the evaluation fails: what was not measured cannot be vouched for.

The part of evaluation.json read here is `EvaluationView` (schema_version 1 of
components/evaluate/evaluation.py); everything else in the file is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.settings import GateSettings

GUARDS = ("semantic_similarity", "format_compliance", "general_holdout")
GUARD_LABELS = {
    "semantic_similarity": "semantic similarity",
    "format_compliance": "format compliance",
    "general_holdout": "general holdout (forgetting)",
}
# Checks that only say the evaluation is usable; a passing decision's reasons skip them.
_BOOKKEEPING = ("primary_metric", "ci_level")
# Float noise in a JSON round trip must not flip a decision at the boundary.
EPSILON = 1e-9


class EvaluationError(ValueError):
    """evaluation.json lacks what the gate reads; the message names the field."""


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class MetricComparison(_View):
    candidate: float
    baseline: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float


class GuardResult(_View):
    candidate: float
    baseline: float
    delta: float


class RegistryRef(_View):
    name: str
    version: str


class Identity(_View):
    weights_sha256: str | None = None
    registry: RegistryRef | None = None


class RoleEntry(_View):
    identity: Identity


class EvaluationView(_View):
    """What the gate and the compare-and-set read from evaluation.json."""

    schema_version: Literal[1]
    primary_metric: str
    baseline_role: Literal["champion", "base"]
    comparison: dict[str, MetricComparison]
    guards: dict[str, GuardResult | None]
    models: dict[str, RoleEntry]

    @property
    def evaluated_champion(self) -> str | None:
        """The registry version the candidate was compared with; None when it was the base."""
        if self.baseline_role != "champion":
            return None
        champion = self.models.get("champion")
        if champion is None or champion.identity.registry is None:
            raise EvaluationError(
                "evaluation.json: baseline_role is 'champion' but models.champion.identity."
                "registry is missing: evaluate the champion by its models:/ URI so the "
                "promotion can check it is still the champion"
            )
        return champion.identity.registry.version

    @property
    def evaluated_champion_model(self) -> str | None:
        """The registered model name of the evaluated champion (None against the base)."""
        if self.evaluated_champion is None:
            return None
        champion = self.models["champion"].identity.registry
        return None if champion is None else champion.name

    @property
    def candidate_weights(self) -> str | None:
        candidate = self.models.get("candidate")
        return None if candidate is None else candidate.identity.weights_sha256


def read_evaluation(evaluation: Mapping[str, Any] | EvaluationView) -> EvaluationView:
    """The gate's view of an evaluation dict; a clear error names the first missing field."""
    if isinstance(evaluation, EvaluationView):
        return evaluation
    try:
        view = EvaluationView.model_validate(dict(evaluation))
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors(include_url=False)
        ]
        raise EvaluationError("evaluation.json cannot be gated: " + "; ".join(problems)) from None
    if "candidate" not in view.models:
        raise EvaluationError("evaluation.json cannot be gated: models.candidate is missing")
    return view


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


def _primary_checks(view: EvaluationView, gate: GateSettings) -> list[Check]:
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
        if result.ci_low > 0:
            where = "lies above 0"
        elif result.ci_high >= 0:
            where = "contains 0"
        else:
            where = "lies below 0"
        checks.append(
            Check(
                "ci_above_zero",
                result.ci_low > 0,
                f"the {result.confidence:.0%} bootstrap CI of the {metric} gain "
                f"[{result.ci_low:+.4f}, {result.ci_high:+.4f}] {where}",
            )
        )
    return checks


def _guard_checks(view: EvaluationView, gate: GateSettings) -> list[Check]:
    checks = []
    for name in GUARDS:
        label = GUARD_LABELS[name]
        tolerance = float(getattr(gate.tolerances, name))
        result = view.guards.get(name)
        if result is None:
            checks.append(
                Check(
                    f"guard.{name}",
                    False,
                    f"{label} was not measured (guards.{name} is missing), so it cannot be "
                    "shown not to regress",
                )
            )
            continue
        held = result.delta + tolerance + EPSILON >= 0
        change = "fell" if result.delta < 0 else "rose"
        checks.append(
            Check(
                f"guard.{name}",
                held,
                f"{label} {change} by {abs(result.delta):.4f} ({result.baseline:.4f} -> "
                f"{result.candidate:.4f}); the tolerance is {tolerance:.4f}",
            )
        )
    return checks


def decide(evaluation: Mapping[str, Any] | EvaluationView, gate: GateSettings) -> Decision:
    """The verdict on one evaluation; `EvaluationError` if it lacks what the gate reads."""
    view = read_evaluation(evaluation)
    checks = _primary_checks(view, gate) + _guard_checks(view, gate)
    passed = all(check.passed for check in checks)
    failed = [check.detail for check in checks if not check.passed]
    held = [check.detail for check in checks if check.name not in _BOOKKEEPING]
    return Decision(
        passed=passed,
        reasons=held if passed else failed,
        checks=checks,
        baseline_role=view.baseline_role,
        evaluated_champion=view.evaluated_champion,
    )
