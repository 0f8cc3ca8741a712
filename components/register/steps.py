"""The register, gate and promote steps as plain functions of paths and settings.

The KFP components and the CLI both call these, so the pipeline and an operator at a
terminal run the same code. Settings groups travel as JSON (`RegistrySettings`,
`GateSettings`) rather than as a dozen loose parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.outcome import record_step
from components.register.client import connect
from components.register.promotion import (
    PromotionResult,
    gate_and_promote,
    load_evaluation,
)
from components.register.registration import Registered, register_candidate
from pipelines.settings import GateSettings, RegistrySettings


def registry_settings(value: str | RegistrySettings | None) -> RegistrySettings:
    if isinstance(value, RegistrySettings):
        return value
    return RegistrySettings.model_validate_json(value) if value else RegistrySettings()


def gate_settings(value: str | GateSettings | None) -> GateSettings:
    if isinstance(value, GateSettings):
        return value
    return GateSettings.model_validate_json(value) if value else GateSettings()


def champion_reference(
    registry: str | RegistrySettings | None = None, tracking_uri: str | None = None
) -> str:
    """The current champion pinned to its version (`models:/<name>/<version>`), or "".

    The evaluate step compares against exactly this version, and the promotion later
    checks the champion is still it (compare-and-set); "" means evaluate against the base.
    """
    client = connect(registry_settings(registry), tracking_uri)
    version = client.champion()
    return "" if version is None else f"models:/{client.model_name}/{version}"


def register_step(
    model_dir: Path,
    evaluation_path: Path,
    data_dir: Path | None,
    pipeline_run_id: str,
    registry: str | RegistrySettings | None = None,
    tracking_uri: str | None = None,
    lineage_tags: dict[str, str] | None = None,
) -> Registered:
    """Register the evaluated model artifact; returns the (possibly existing) version."""
    client = connect(registry_settings(registry), tracking_uri)
    return register_candidate(
        client,
        Path(model_dir),
        load_evaluation(Path(evaluation_path)),
        pipeline_run_id,
        data_dir=None if data_dir is None else Path(data_dir),
        extra_tags=lineage_tags,
    )


@dataclass(frozen=True)
class PipelineRecords:
    """Where a pipeline step files what it decided, for the run's exit handler."""

    root: str
    run_id: str
    evaluation_uri: str | None = None
    report_uri: str | None = None


def _file_decision(
    records: PipelineRecords, result: PromotionResult, evaluation_path: Path, promote: bool
) -> None:
    if promote:
        record = {"decision": result.outcome, "reasons": result.reasons}
    else:
        passed = result.decision is not None and result.decision.passed
        record = {
            # A passing gate's last word belongs to the promotion (compare-and-set may refuse).
            "decision": None if passed else result.outcome,
            "reasons": result.reasons,
            "metrics": headline_metrics(evaluation_path),
            "report": records.report_uri,
            "evaluation": records.evaluation_uri,
            "gate": result.to_dict(),
        }
    record["model_version"] = result.version
    record_step(records.root, records.run_id, "promote" if promote else "gate", record)


def gate_step(
    evaluation_path: Path,
    version: str,
    registry: str | RegistrySettings | None = None,
    gate: str | GateSettings | None = None,
    *,
    promote: bool,
    decision_path: Path | None = None,
    tracking_uri: str | None = None,
    records: PipelineRecords | None = None,
) -> PromotionResult:
    """Decide on the evaluation, record it on `version`, promote when asked and it passed.

    `decision_path`: where decision.json goes (a KFP output artifact is that file itself).
    `records`: also file the decision for the pipeline run's outcome.
    """
    client = connect(registry_settings(registry), tracking_uri)
    result = gate_and_promote(
        client,
        str(version),
        load_evaluation(Path(evaluation_path)),
        gate_settings(gate),
        promote=promote,
    )
    if decision_path is not None:
        result.write(Path(decision_path))
    if records is not None:
        _file_decision(records, result, Path(evaluation_path), promote)
    return result


def headline_metrics(evaluation_path: Path) -> dict[str, float]:
    """Candidate and baseline on the primary metric and the guards, for the run's outcome."""
    evaluation = load_evaluation(Path(evaluation_path))
    baseline = evaluation.get("baseline_role", "baseline")
    found: dict[str, float] = {}
    for metric, row in (evaluation.get("comparison") or {}).items():
        found[f"candidate_{metric}"] = float(row["candidate"])
        found[f"{baseline}_{metric}"] = float(row["baseline"])
    general = (evaluation.get("guards") or {}).get("general_holdout")
    if general:
        found["candidate_general_holdout"] = float(general["candidate"])
        found[f"{baseline}_general_holdout"] = float(general["baseline"])
    return found


def summary(result: PromotionResult) -> dict[str, Any]:
    """The few fields a pipeline UI shows for a decision."""
    data = result.to_dict()
    return {key: data[key] for key in ("version", "outcome", "promoted", "reasons")}


def to_json(result: PromotionResult) -> str:
    return json.dumps(result.to_dict(), indent=1)
