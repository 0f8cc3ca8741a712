"""The promotion gate, rule by rule, on evaluations; and candidates compared head to head.

`decide` reads an `Evaluation` (the model of evaluation.json) and nothing else, so each
rule is checked on one that passes every other rule and breaks just that one. The
failure modes on real trained models are in tests/test_gate_failure_modes.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.evaluate.result import Evaluation, EvaluationError, RegistryRef
from components.register.config import GateConfig, GuardTolerances
from components.register.gate import decide
from components.register.head_to_head import NotComparableError, head_to_head
from tests.support.registry_support import evaluation_for

CHAMPION = RegistryRef(name="ui-element-captioner", version="2")


def passing(champion: bool = True) -> dict[str, Any]:
    """An evaluation (as evaluation.json holds it) that clears every rule with room to spare."""
    evaluation = evaluation_for(
        "sha256:cand",
        0.6,
        champion=("ui-element-captioner", "3") if champion else None,
        baseline_quality=0.5,
    ).to_dict()
    evaluation["comparison"]["CIDEr"].update(
        candidate=0.60, baseline=0.50, delta=0.10, ci_low=0.04, ci_high=0.16, confidence=0.95
    )
    for name, (candidate, baseline) in {
        "semantic_similarity": (0.70, 0.70),
        "format_compliance": (0.99, 1.0),
        "general_holdout": (0.80, 0.82),
    }.items():
        evaluation["guards"][name] = guard(name, candidate, baseline)
    return evaluation


def guard(name: str, candidate: float, baseline: float) -> dict[str, Any]:
    delta = candidate - baseline
    return {
        "metric": "CIDEr" if name == "general_holdout" else name,
        "split": "general" if name == "general_holdout" else "test",
        "candidate": candidate,
        "baseline": baseline,
        "delta": delta,
        "ci_low": delta - 0.01,
        "ci_high": delta + 0.01,
    }


def with_cider(**values: float) -> dict[str, Any]:
    evaluation = passing()
    evaluation["comparison"]["CIDEr"].update(values)
    return evaluation


def with_guard(name: str, candidate: float, baseline: float) -> dict[str, Any]:
    evaluation = passing()
    evaluation["guards"][name] = guard(name, candidate, baseline)
    return evaluation


def gated(evaluation: dict[str, Any], gate: GateConfig | None = None) -> Any:
    return decide(Evaluation.from_dict(evaluation), gate or GateConfig())


def failed(evaluation: dict[str, Any], gate: GateConfig | None = None) -> list[str]:
    decision = gated(evaluation, gate)
    assert not decision.passed, decision.reasons
    return [check.name for check in decision.checks if not check.passed]


def test_a_clear_gain_with_no_regression_passes() -> None:
    decision = gated(passing())
    assert decision.passed
    assert decision.verdict == "passed"
    assert decision.evaluated_champion == "3"
    assert any("CIDEr gain over the champion is +0.1000" in reason for reason in decision.reasons)
    assert all(check.passed for check in decision.checks)
    assert "semantic similarity did not change (0.7000 -> 0.7000), 95% CI [-0.0100, " in (
        " ".join(decision.reasons)
    )


def test_gain_below_the_absolute_margin_is_rejected() -> None:
    # +0.015 clears the relative margin (2% of 0.5 = 0.01) but not the absolute 0.02.
    names = failed(with_cider(candidate=0.515, delta=0.015, ci_low=0.005, ci_high=0.03))
    assert names == ["abs_gain"]


def test_gain_below_the_relative_margin_is_rejected() -> None:
    # Baseline 2.0: +0.03 clears the absolute 0.02 but not 2% of 2.0 = 0.04.
    evaluation = with_cider(candidate=2.03, baseline=2.0, delta=0.03, ci_low=0.01, ci_high=0.05)
    decision = gated(evaluation)
    assert [c.name for c in decision.checks if not c.passed] == ["rel_gain"]
    assert "2% of the champion's 2.0000 (+0.0400)" in decision.reasons[0]


@pytest.mark.parametrize(
    ("low", "high", "words"), [(-0.01, 0.2, "contains 0"), (-0.2, -0.05, "lies below 0")]
)
def test_a_confidence_interval_not_above_zero_is_rejected(
    low: float, high: float, words: str
) -> None:
    decision = gated(with_cider(ci_low=low, ci_high=high))
    assert not decision.passed
    assert [c.name for c in decision.checks if not c.passed] == ["ci_above_zero"]
    assert words in decision.reasons[0]


def test_the_ci_rule_can_be_switched_off() -> None:
    gate = GateConfig(require_ci_above_zero=False)
    assert gated(with_cider(ci_low=-0.01), gate).passed


def test_intervals_narrower_than_the_gate_asks_are_rejected() -> None:
    names = failed(with_cider(confidence=0.9), GateConfig(ci_level=0.95))
    assert names == ["ci_level"]


def test_a_different_primary_metric_is_rejected() -> None:
    evaluation = passing()
    evaluation["primary_metric"] = "BLEU_4"
    assert failed(evaluation) == ["primary_metric"]


@pytest.mark.parametrize(
    ("name", "tolerance"),
    [("semantic_similarity", 0.01), ("format_compliance", 0.02), ("general_holdout", 0.05)],
)
def test_each_guard_rejects_a_regression_beyond_its_tolerance(name: str, tolerance: float) -> None:
    at_limit = with_guard(name, 0.8 - tolerance, 0.8)
    assert gated(at_limit).passed, "a drop of exactly the tolerance is allowed"
    beyond = with_guard(name, 0.8 - tolerance - 0.001, 0.8)
    beyond["guards"][name].update(ci_low=-tolerance - 0.03, ci_high=-tolerance / 2)
    decision = gated(beyond)
    assert [c.name for c in decision.checks if not c.passed] == [f"guard.{name}"]
    assert decision.reasons[0].endswith(
        f"the tolerance is {tolerance:.4f}, and the CI lies below 0"
    )


def test_a_guard_fall_that_noise_could_explain_does_not_reject() -> None:
    # Measured on the local general holdout (80 scenes): CIDEr fell 0.093, beyond the 0.05
    # tolerance, with a 95% interval of [-0.62, +0.36] around the fall.
    noisy = with_guard("general_holdout", 0.839, 0.933)
    noisy["guards"]["general_holdout"].update(ci_low=-0.62, ci_high=0.36)
    decision = gated(noisy)
    assert decision.passed, decision.reasons
    (check,) = [c for c in decision.checks if c.name == "guard.general_holdout"]
    assert check.detail == (
        "general holdout (forgetting) fell by 0.0940 (0.9330 -> 0.8390), 95% CI [-0.6200, "
        "+0.3600]; the tolerance is 0.0500, but the CI contains 0: noise could explain the fall"
    )
    # The point rule, for teams that accept its false rejections.
    point_rule = GateConfig(require_guard_fall_significant=False)
    assert failed(noisy, point_rule) == ["guard.general_holdout"]
    assert "but the gate decides on the fall alone" in gated(noisy, point_rule).reasons[0]
    # The same fall with its interval below zero is forgetting, whichever rule.
    noisy["guards"]["general_holdout"].update(ci_low=-0.15, ci_high=-0.03)
    assert failed(noisy) == ["guard.general_holdout"]
    assert failed(noisy, point_rule) == ["guard.general_holdout"]


def test_tolerances_come_from_the_settings() -> None:
    evaluation = with_guard("general_holdout", 0.70, 0.80)
    assert not gated(evaluation).passed
    lenient = GateConfig(tolerances=GuardTolerances(general_holdout=0.2))
    assert gated(evaluation, lenient).passed


def test_a_guard_that_was_not_measured_fails() -> None:
    evaluation = passing()
    evaluation["guards"]["general_holdout"] = None
    decision = gated(evaluation)
    assert [c.name for c in decision.checks if not c.passed] == ["guard.general_holdout"]
    assert "not measured" in decision.reasons[0]


def test_every_failed_rule_is_reported_together() -> None:
    evaluation = with_cider(candidate=0.5, delta=0.0, ci_low=0.0, ci_high=0.0)
    evaluation["guards"]["format_compliance"] = guard("format_compliance", 0.5, 1.0)
    assert failed(evaluation) == [
        "abs_gain",
        "rel_gain",
        "ci_above_zero",
        "guard.format_compliance",
    ]


def test_captions_that_do_not_depend_on_the_input_are_rejected_whatever_cider_says() -> None:
    # One sentence for all 40 records, while every reference differs; CIDEr still rises.
    collapsed = evaluation_for("sha256:cand", 0.9, distinct_captions=1)
    decision = decide(collapsed, GateConfig())
    assert collapsed.comparison["CIDEr"].ci_low > 0
    assert [c.name for c in decision.checks if not c.passed] == ["guard.caption_diversity"]
    (reason,) = decision.reasons
    assert "1 distinct captions in 40 records (share 0.0250)" in reason
    assert "against the references' 1.0000 (-0.9750)" in reason
    assert "'Opens page 0 of sha256:cand.', takes 1.0000 of the records" in reason
    assert "against the references' 0.0250 (+0.9750); the tolerance is 0.5000" in reason


def test_caption_diversity_is_held_to_the_references_within_its_tolerance() -> None:
    # 20 distinct captions in 40 records: the references' 1.0 minus the tolerance 0.5.
    at_limit = evaluation_for("sha256:cand", 0.9, distinct_captions=20)
    assert decide(at_limit, GateConfig()).passed
    beyond = evaluation_for("sha256:cand", 0.9, distinct_captions=19)
    assert failed(beyond.to_dict()) == ["guard.caption_diversity"]
    lenient = GateConfig(tolerances=GuardTolerances(caption_diversity=0.6))
    assert decide(beyond, lenient).passed


def test_one_caption_taking_most_records_is_rejected_even_with_many_distinct_ones() -> None:
    evaluation = passing()
    evaluation["guards"]["caption_diversity"].update(
        candidate=0.9, delta=-0.1, candidate_top_share=0.6, references_top_share=0.05
    )
    assert failed(evaluation) == ["guard.caption_diversity"]
    evaluation["guards"]["caption_diversity"]["candidate_top_share"] = 0.55
    assert gated(evaluation).passed, "a rise of exactly the tolerance is allowed"


def test_an_evaluation_without_caption_diversity_fails_that_guard() -> None:
    evaluation = passing()  # as a file written before diversity was measured
    del evaluation["guards"]["caption_diversity"], evaluation["diversity"]
    decision = gated(evaluation)
    assert [c.name for c in decision.checks if not c.passed] == ["guard.caption_diversity"]
    assert "caption diversity was not measured" in decision.reasons[0]


def test_decide_is_a_pure_function_of_the_evaluation() -> None:
    evaluation = Evaluation.from_dict(passing())
    snapshot = copy.deepcopy(evaluation)
    first = decide(evaluation, GateConfig())
    assert decide(evaluation, GateConfig()) == first
    assert evaluation == snapshot


def test_against_the_base_there_is_no_evaluated_champion() -> None:
    evaluation = passing(champion=False)
    assert evaluation["baseline_role"] == "base" and "champion" not in evaluation["models"]
    decision = gated(evaluation)
    assert decision.passed and decision.evaluated_champion is None
    assert "gain over the base" in decision.reasons[0]


def test_a_champion_without_its_registry_identity_cannot_be_gated() -> None:
    evaluation = passing()
    evaluation["models"]["champion"]["identity"]["registry"] = None
    with pytest.raises(EvaluationError, match=r"models\.champion\.identity\.registry"):
        gated(evaluation)


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (("comparison", "CIDEr", "ci_low"), "comparison.CIDEr.ci_low"),
        (("schema_version",), "schema_version"),
        (("baseline_role",), "baseline_role"),
    ],
)
def test_a_malformed_evaluation_names_the_field(path: tuple[str, ...], named: str) -> None:
    evaluation = passing()
    node = evaluation
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    with pytest.raises(EvaluationError, match=named.replace(".", r"\.")):
        Evaluation.from_dict(evaluation)


# --- head to head ---------------------------------------------------------------------------


def test_head_to_head_ranks_two_candidates_that_shared_a_baseline() -> None:
    champion = ("ui-element-captioner", "1")
    better = evaluation_for("sha256:better", 0.9, champion=champion, baseline_quality=0.5)
    worse = evaluation_for("sha256:worse", 0.6, champion=champion, baseline_quality=0.5)
    assert decide(better, GateConfig()).passed and decide(worse, GateConfig()).passed

    over_worse = head_to_head(better, worse, CHAMPION)
    verdict = decide(over_worse, GateConfig())
    assert verdict.passed, verdict.reasons
    assert over_worse.comparison["CIDEr"].delta == pytest.approx(0.3)
    assert verdict.evaluated_champion == "2"
    # Their candidate stands in the champion's place, with its own scores.
    assert over_worse.models["champion"].identity.weights_sha256 == "sha256:worse"
    assert over_worse.models["champion"].test == worse.candidate.test
    assert over_worse.derived_from is not None
    row = over_worse.predictions.test[0]
    assert row.captions["champion"] == worse.predictions.test[0].captions["candidate"]

    over_better = decide(head_to_head(worse, better, CHAMPION), GateConfig())
    assert not over_better.passed
    assert any("CIDEr gain" in reason for reason in over_better.reasons)


def test_head_to_head_keeps_the_guards() -> None:
    champion = ("ui-element-captioner", "1")
    forgetful = evaluation_for("sha256:a", 0.9, champion=champion, general_drop=0.04)
    steady = evaluation_for("sha256:b", 0.6, champion=champion)
    # Each is within the general tolerance of the old champion; between them the drop
    # is the same 0.04, still within 0.05, but a stricter gate catches it.
    strict = GateConfig(tolerances=GuardTolerances(general_holdout=0.03))
    verdict = decide(head_to_head(forgetful, steady, CHAMPION), strict)
    assert [c.name for c in verdict.checks if not c.passed] == ["guard.general_holdout"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e["data"]["test"].update(split_sha256="sha256:other"), "different test data"),
        (
            lambda e: e["models"]["champion"]["identity"]["registry"].update(version="7"),
            "different baselines",
        ),
        (lambda e: e["generation"].update(max_new_tokens=64), "max_new_tokens"),
        (lambda e: e["predictions"]["test"].pop(), "test records differ"),
    ],
)
def test_head_to_head_refuses_evaluations_that_are_not_comparable(
    change: Any, problem: str
) -> None:
    champion = ("ui-element-captioner", "1")
    ours = evaluation_for("sha256:a", 0.9, champion=champion)
    theirs = evaluation_for("sha256:b", 0.6, champion=champion).to_dict()
    change(theirs)
    with pytest.raises(NotComparableError, match=problem):
        head_to_head(ours, Evaluation.from_dict(theirs), CHAMPION)
