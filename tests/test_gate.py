"""The promotion gate, rule by rule, on evaluation dicts; and candidates compared head to head.

`decide` reads evaluation.json and nothing else, so each rule is checked on a dict that
passes every other rule and breaks just that one. The four failure modes on real trained
models are in tests/test_gate_failure_modes.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.register.gate import EvaluationError, decide, read_evaluation
from components.register.head_to_head import NotComparableError, head_to_head
from pipelines.settings import GateSettings, GuardTolerances
from tests.support.registry_support import evaluation_for


def passing() -> dict[str, Any]:
    """An evaluation that clears every rule of the default gate with room to spare."""
    return {
        "schema_version": 1,
        "primary_metric": "CIDEr",
        "baseline_role": "champion",
        "models": {
            "candidate": {"identity": {"weights_sha256": "sha256:cand"}},
            "champion": {
                "identity": {"registry": {"name": "ui-element-captioner", "version": "3"}}
            },
        },
        "comparison": {
            "CIDEr": {
                "candidate": 0.60,
                "baseline": 0.50,
                "delta": 0.10,
                "ci_low": 0.04,
                "ci_high": 0.16,
                "confidence": 0.95,
            }
        },
        "guards": {
            "semantic_similarity": {"candidate": 0.70, "baseline": 0.70, "delta": 0.0},
            "format_compliance": {"candidate": 0.99, "baseline": 1.0, "delta": -0.01},
            "general_holdout": {"candidate": 0.80, "baseline": 0.82, "delta": -0.02},
        },
    }


def with_cider(**values: float) -> dict[str, Any]:
    evaluation = passing()
    evaluation["comparison"]["CIDEr"].update(values)
    return evaluation


def with_guard(name: str, candidate: float, baseline: float) -> dict[str, Any]:
    evaluation = passing()
    evaluation["guards"][name] = {
        "candidate": candidate,
        "baseline": baseline,
        "delta": candidate - baseline,
    }
    return evaluation


def failed(evaluation: dict[str, Any], gate: GateSettings | None = None) -> list[str]:
    decision = decide(evaluation, gate or GateSettings())
    assert not decision.passed, decision.reasons
    return [check.name for check in decision.checks if not check.passed]


def test_a_clear_gain_with_no_regression_passes() -> None:
    decision = decide(passing(), GateSettings())
    assert decision.passed
    assert decision.verdict == "passed"
    assert decision.evaluated_champion == "3"
    assert any("CIDEr gain over the champion is +0.1000" in reason for reason in decision.reasons)
    assert all(check.passed for check in decision.checks)


def test_gain_below_the_absolute_margin_is_rejected() -> None:
    # +0.015 clears the relative margin (2% of 0.5 = 0.01) but not the absolute 0.02.
    names = failed(with_cider(candidate=0.515, delta=0.015, ci_low=0.005, ci_high=0.03))
    assert names == ["abs_gain"]


def test_gain_below_the_relative_margin_is_rejected() -> None:
    # Baseline 2.0: +0.03 clears the absolute 0.02 but not 2% of 2.0 = 0.04.
    evaluation = with_cider(candidate=2.03, baseline=2.0, delta=0.03, ci_low=0.01, ci_high=0.05)
    decision = decide(evaluation, GateSettings())
    assert [c.name for c in decision.checks if not c.passed] == ["rel_gain"]
    assert "2% of the champion's 2.0000 (+0.0400)" in decision.reasons[0]


@pytest.mark.parametrize(
    ("low", "high", "words"), [(-0.01, 0.2, "contains 0"), (-0.2, -0.05, "lies below 0")]
)
def test_a_confidence_interval_not_above_zero_is_rejected(
    low: float, high: float, words: str
) -> None:
    decision = decide(with_cider(ci_low=low, ci_high=high), GateSettings())
    assert not decision.passed
    assert [c.name for c in decision.checks if not c.passed] == ["ci_above_zero"]
    assert words in decision.reasons[0]


def test_the_ci_rule_can_be_switched_off() -> None:
    gate = GateSettings(require_ci_above_zero=False)
    assert decide(with_cider(ci_low=-0.01), gate).passed


def test_intervals_narrower_than_the_gate_asks_are_rejected() -> None:
    names = failed(with_cider(confidence=0.9), GateSettings(ci_level=0.95))
    assert names == ["ci_level"]


def test_a_different_primary_metric_is_rejected() -> None:
    evaluation = passing()
    evaluation["primary_metric"] = "BLEU_4"
    assert failed(evaluation) == ["primary_metric"]


@pytest.mark.parametrize(
    ("guard", "tolerance"),
    [("semantic_similarity", 0.01), ("format_compliance", 0.02), ("general_holdout", 0.05)],
)
def test_each_guard_rejects_a_regression_beyond_its_tolerance(guard: str, tolerance: float) -> None:
    at_limit = with_guard(guard, 0.8 - tolerance, 0.8)
    assert decide(at_limit, GateSettings()).passed, "a drop of exactly the tolerance is allowed"
    beyond = with_guard(guard, 0.8 - tolerance - 0.001, 0.8)
    decision = decide(beyond, GateSettings())
    assert [c.name for c in decision.checks if not c.passed] == [f"guard.{guard}"]
    assert f"the tolerance is {tolerance:.4f}" in decision.reasons[0]


def test_tolerances_come_from_the_settings() -> None:
    evaluation = with_guard("general_holdout", 0.70, 0.80)
    assert not decide(evaluation, GateSettings()).passed
    lenient = GateSettings(tolerances=GuardTolerances(general_holdout=0.2))
    assert decide(evaluation, lenient).passed


def test_a_guard_that_was_not_measured_fails() -> None:
    evaluation = passing()
    evaluation["guards"]["general_holdout"] = None
    decision = decide(evaluation, GateSettings())
    assert [c.name for c in decision.checks if not c.passed] == ["guard.general_holdout"]
    assert "not measured" in decision.reasons[0]


def test_every_failed_rule_is_reported_together() -> None:
    evaluation = with_cider(candidate=0.5, delta=0.0, ci_low=0.0, ci_high=0.0)
    evaluation["guards"]["format_compliance"] = {"candidate": 0.5, "baseline": 1.0, "delta": -0.5}
    assert failed(evaluation) == [
        "abs_gain",
        "rel_gain",
        "ci_above_zero",
        "guard.format_compliance",
    ]


def test_decide_is_a_pure_function_of_the_evaluation() -> None:
    evaluation = passing()
    snapshot = copy.deepcopy(evaluation)
    first = decide(evaluation, GateSettings())
    assert decide(evaluation, GateSettings()) == first
    assert evaluation == snapshot


def test_against_the_base_there_is_no_evaluated_champion() -> None:
    evaluation = passing()
    evaluation["baseline_role"] = "base"
    del evaluation["models"]["champion"]
    decision = decide(evaluation, GateSettings())
    assert decision.passed and decision.evaluated_champion is None
    assert "gain over the base" in decision.reasons[0]


def test_a_champion_without_its_registry_identity_cannot_be_gated() -> None:
    evaluation = passing()
    evaluation["models"]["champion"]["identity"]["registry"] = None
    with pytest.raises(EvaluationError, match=r"models\.champion\.identity\.registry"):
        decide(evaluation, GateSettings())


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
        read_evaluation(evaluation)


# --- head to head ---------------------------------------------------------------------------


def test_head_to_head_ranks_two_candidates_that_shared_a_baseline() -> None:
    champion = ("ui-element-captioner", "1")
    better = evaluation_for("sha256:better", 0.9, champion=champion, baseline_quality=0.5)
    worse = evaluation_for("sha256:worse", 0.6, champion=champion, baseline_quality=0.5)
    assert decide(better, GateSettings()).passed and decide(worse, GateSettings()).passed

    over_worse = head_to_head(better, worse, {"name": champion[0], "version": "2"})
    verdict = decide(over_worse, GateSettings())
    assert verdict.passed, verdict.reasons
    assert over_worse["comparison"]["CIDEr"]["delta"] == pytest.approx(0.3)
    assert verdict.evaluated_champion == "2"

    over_better = decide(
        head_to_head(worse, better, {"name": champion[0], "version": "2"}), GateSettings()
    )
    assert not over_better.passed
    assert any("CIDEr gain" in reason for reason in over_better.reasons)


def test_head_to_head_keeps_the_guards() -> None:
    champion = ("ui-element-captioner", "1")
    forgetful = evaluation_for("sha256:a", 0.9, champion=champion, general_drop=0.04)
    steady = evaluation_for("sha256:b", 0.6, champion=champion)
    # Each is within the general tolerance of the old champion; between them the drop
    # is the same 0.04, still within 0.05, but a stricter gate catches it.
    strict = GateSettings(tolerances=GuardTolerances(general_holdout=0.03))
    verdict = decide(head_to_head(forgetful, steady, {"name": champion[0], "version": "2"}), strict)
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
    theirs = evaluation_for("sha256:b", 0.6, champion=champion)
    change(theirs)
    with pytest.raises(NotComparableError, match=problem):
        head_to_head(ours, theirs, {"name": champion[0], "version": "2"})
