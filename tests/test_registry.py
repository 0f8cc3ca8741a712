"""Registering candidates and applying the gate, against a real MLflow server and against SQLite.

Artifacts are real (PEFT adapter + processor + uicap_model.json over the tiny base) with
seeded random LoRA weights; the evaluations are evaluation.json dicts with per-record
scores (the gate's real-evaluation cases are in test_gate_failure_modes.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.evaluate.result import Evaluation, load_evaluation
from components.register import tags as T
from components.register.client import Registry, RegistryError, connect
from components.register.config import GateConfig, RegistryConfig
from components.register.promotion import STALE, gate_and_promote, promote_manually
from components.register.registration import register_candidate
from tests.support.registry_support import (
    SOURCE_REVISION,
    Tracking,
    evaluation_for,
    make_artifact,
    weights_sha,
    write_json,
)


@pytest.fixture
def registry(tracking: Tracking, registry_settings: RegistryConfig) -> Registry:
    return connect(registry_settings)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, registry_base: Path) -> list[Path]:
    root = tmp_path_factory.mktemp("registry-artifacts")
    return [make_artifact(root / f"candidate-{seed}", registry_base, seed) for seed in (1, 2, 3)]


@pytest.fixture
def register(registry_data: Path) -> Callable[[Registry, Path, str, Evaluation], str]:
    def register_one(registry: Registry, artifact: Path, run: str, evaluation: Evaluation) -> str:
        return register_candidate(
            registry, artifact, evaluation, run, data_dir=registry_data
        ).version

    return register_one


def test_a_candidate_is_registered_with_its_lineage_scores_and_challenger_alias(
    registry: Registry, artifacts: list[Path], registry_data: Path, tmp_path: Path
) -> None:
    evaluation = evaluation_for(weights_sha(artifacts[0]), 0.6)
    registered = register_candidate(
        registry, artifacts[0], evaluation, "pipeline-run-1", data_dir=registry_data
    )
    assert registered.created and registered.version == "1" and registered.challenger
    assert registry.aliases() == {"challenger": "1"}

    tags = registry.version("1").tags
    assert tags[T.PIPELINE_RUN_ID] == "pipeline-run-1"
    assert tags[T.CODE_VERSION].startswith(("git:", "uicap=="))
    assert tags[T.DATA_FINGERPRINT] == "sha256:data"
    assert tags[T.DATA_SOURCE] == "uicap/ui-interactions"
    assert tags[T.DATA_SOURCE_REVISION] == SOURCE_REVISION
    assert tags[T.BASE_ID].endswith("registry-tiny-base")
    assert tags[T.FAMILY] == "minicpmv4_6"
    assert tags[T.PROMPT_TEMPLATE_VERSION] == "ui-caption-v1"
    assert tags[T.WEIGHTS_SHA256] == weights_sha(artifacts[0])
    assert float(tags[T.eval_metric("CIDEr")]) == pytest.approx(0.6, abs=1e-4)
    assert float(tags[T.eval_metric("BLEU_4")]) == pytest.approx(0.12, abs=1e-4)
    assert float(tags[T.eval_metric("distinct_share")]) == 1.0
    assert float(tags[T.guard_delta("caption_diversity")]) == 0.0
    assert float(tags[T.EVAL_DELTA]) == pytest.approx(0.3, abs=1e-4)
    assert tags[T.EVAL_BASELINE] == "base"
    assert T.GATE_DECISION not in tags  # undecided until the gate runs

    # The version's files hold one model artifact that evaluation can resolve by URI.
    from components.evaluate.models import resolve_model

    resolved = resolve_model(f"models:/{registry.model_name}/1", download_dir=tmp_path / "download")
    assert resolved.kind == "artifact"
    assert resolved.weights_sha256 == weights_sha(artifacts[0])
    assert resolved.registry is not None and resolved.registry.version == "1"


def test_registering_the_same_pipeline_run_again_returns_the_same_version(
    registry: Registry, artifacts: list[Path], registry_data: Path
) -> None:
    data = registry_data
    evaluation = evaluation_for(weights_sha(artifacts[0]), 0.6)
    first = register_candidate(registry, artifacts[0], evaluation, "run-a", data_dir=data)
    again = register_candidate(registry, artifacts[0], evaluation, "run-a", data_dir=data)
    assert (first.version, first.created) == ("1", True)
    assert (again.version, again.created) == ("1", False)
    assert [str(v.version) for v in registry.versions()] == ["1"]
    other = register_candidate(
        registry,
        artifacts[1],
        evaluation_for(weights_sha(artifacts[1]), 0.6),
        "run-b",
        data_dir=data,
    )
    assert other.version == "2" and other.created
    assert registry.challenger() == "2"
    # Re-running the older pipeline run does not take `challenger` from the newer version.
    assert not register_candidate(
        registry, artifacts[0], evaluation, "run-a", data_dir=data
    ).challenger
    assert registry.challenger() == "2"


def test_an_evaluation_of_other_weights_is_refused_and_nothing_is_registered(
    registry: Registry, artifacts: list[Path]
) -> None:
    evaluation = evaluation_for(weights_sha(artifacts[1]), 0.6)
    with pytest.raises(RegistryError, match="register the model that was evaluated"):
        register_candidate(registry, artifacts[0], evaluation, "run-mismatch", data_dir=None)
    assert registry.versions() == []


def test_a_passing_candidate_is_promoted_and_the_decision_recorded(
    registry: Registry, artifacts: list[Path], register: Any, tmp_path: Path
) -> None:
    evaluation = evaluation_for(weights_sha(artifacts[0]), 0.6)
    version = register(registry, artifacts[0], "run-1", evaluation)
    result = gate_and_promote(registry, version, evaluation, GateConfig())
    result.write(tmp_path / "decision.json")

    assert result.outcome == "promoted"
    assert registry.aliases() == {"champion": "1"}  # challenger cleared
    tags = registry.version("1").tags
    assert tags[T.GATE_DECISION] == "passed"
    assert tags[T.GATE_OUTCOME] == "promoted"
    assert tags[T.PREVIOUS_CHAMPION] == ""
    assert tags[T.PROMOTION_KIND] == "gate"
    decision = json.loads((tmp_path / "decision.json").read_text())
    assert decision["outcome"] == "promoted" and decision["champion_after"] == "1"
    assert decision["decision"]["passed"] is True
    assert any("CIDEr gain over the base" in reason for reason in decision["reasons"])

    # Running the promote step again (a retried task) changes nothing.
    again = gate_and_promote(registry, version, evaluation, GateConfig())
    assert again.outcome == "already champion"
    assert registry.aliases() == {"champion": "1"}


def test_a_rejected_candidate_stays_registered_with_its_reasons(
    registry: Registry, artifacts: list[Path], register: Any
) -> None:
    first = evaluation_for(weights_sha(artifacts[0]), 0.6)
    champion = register(registry, artifacts[0], "run-1", first)
    gate_and_promote(registry, champion, first, GateConfig())

    forgetful = evaluation_for(
        weights_sha(artifacts[1]),
        0.8,
        champion=(registry.model_name, champion),
        baseline_quality=0.6,
        general_drop=0.2,
    )
    version = register(registry, artifacts[1], "run-2", forgetful)
    result = gate_and_promote(registry, version, forgetful, GateConfig())
    assert result.outcome == "rejected"
    assert registry.aliases() == {"champion": "1", "challenger": "2"}
    tags = registry.version("2").tags
    assert tags[T.GATE_DECISION] == "rejected"
    reasons = json.loads(tags[T.GATE_REASONS])
    assert len(reasons) == 1 and reasons[0].startswith("general holdout (forgetting) fell by 0.2")


def test_a_champion_moved_by_hand_makes_the_evaluation_stale(
    registry: Registry, artifacts: list[Path], register: Any
) -> None:
    first = evaluation_for(weights_sha(artifacts[0]), 0.6)
    v1 = register(registry, artifacts[0], "run-1", first)
    gate_and_promote(registry, v1, first, GateConfig())
    v2 = register(registry, artifacts[1], "run-2", evaluation_for(weights_sha(artifacts[1]), 0.5))
    candidate = evaluation_for(
        weights_sha(artifacts[2]), 0.9, champion=(registry.model_name, v1), baseline_quality=0.6
    )
    v3 = register(registry, artifacts[2], "run-3", candidate)
    promote_manually(registry, v2, "hotfix for a customer")  # champion moves under the gate

    result = gate_and_promote(registry, v3, candidate, GateConfig())
    assert result.outcome == STALE
    assert registry.champion() == v2
    assert result.reasons[0].startswith(
        f"{STALE}: evaluated against v{v1}, but the champion is now v{v2}"
    )
    tags = registry.version(v3).tags
    assert tags[T.GATE_DECISION] == "rejected" and tags[T.GATE_OUTCOME] == STALE


def test_gating_an_evaluation_of_another_version_is_refused(
    registry: Registry, artifacts: list[Path], register: Any
) -> None:
    evaluation = evaluation_for(weights_sha(artifacts[0]), 0.6)
    version = register(registry, artifacts[0], "run-1", evaluation)
    other = evaluation_for(weights_sha(artifacts[1]), 0.9)
    with pytest.raises(RegistryError, match=f"version {version} holds"):
        gate_and_promote(registry, version, other, GateConfig())
    assert registry.champion() is None


def test_the_evaluation_is_stored_with_the_version(
    registry: Registry, artifacts: list[Path], register: Any, tmp_path: Path
) -> None:
    from components.register.promotion import version_evaluation

    evaluation = evaluation_for(weights_sha(artifacts[0]), 0.6)
    version = register(registry, artifacts[0], "run-1", evaluation)
    assert version_evaluation(registry, version) == evaluation
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "evaluation.json").write_text(json.dumps(evaluation.to_dict()))
    assert load_evaluation(tmp_path / "eval") == load_evaluation(tmp_path / "eval/evaluation.json")
    assert load_evaluation(tmp_path / "eval") == evaluation


def test_an_evaluation_that_does_not_match_the_schema_is_recorded_as_a_rejection(
    registry: Registry,
    registry_settings: RegistryConfig,
    artifacts: list[Path],
    register: Any,
    tmp_path: Path,
) -> None:
    from components.register.run import gate_step

    evaluation = evaluation_for(weights_sha(artifacts[0]), 0.6)
    version = register(registry, artifacts[0], "run-1", evaluation)
    broken = evaluation.to_dict()
    del broken["guards"]
    path = write_json(tmp_path / "evaluation.json", broken)
    result = gate_step(path, version, registry_settings, GateConfig(), promote=True)
    assert result.outcome == "rejected" and registry.champion() is None
    assert "does not match schema 1: guards: Field required" in result.reasons[0]
    assert json.loads(registry.version(version).tags[T.GATE_REASONS]) == result.reasons
