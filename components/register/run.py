"""The register, gate and promote steps as plain functions of paths and configs.

The KFP components and the CLI both call these, so the pipeline and an operator at a
terminal run the same code. The configs (`RegistryConfig`, `GateConfig`) reach a
component as one JSON parameter each rather than as a dozen loose parameters; the
registry config carries the tracking URI too, so there is one channel for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.evaluate.result import EvaluationError, load_evaluation
from components.outcome import record_step
from components.register.client import connect
from components.register.config import GateConfig, RegistryConfig
from components.register.promotion import PromotionResult, gate_and_promote, reject_unusable
from components.register.registration import Registered, register_candidate


def champion_reference(registry: RegistryConfig) -> str:
    """The current champion pinned to its version (`models:/<name>/<version>`), or "".

    The evaluate step compares against exactly this version, and the promotion later
    checks the champion is still it (compare-and-set); "" means evaluate against the base.
    """
    client = connect(registry)
    version = client.champion()
    return "" if version is None else f"models:/{client.model_name}/{version}"


def register_step(
    model_dir: Path,
    evaluation_path: Path,
    data_dir: Path | None,
    pipeline_run_id: str,
    registry: RegistryConfig,
    lineage_tags: dict[str, str] | None = None,
) -> Registered:
    """Register the evaluated model artifact; returns the (possibly existing) version."""
    client = connect(registry)
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
    records: PipelineRecords, result: PromotionResult, headline: dict[str, float], promote: bool
) -> None:
    if promote:
        record = {"decision": result.outcome, "reasons": result.reasons}
    else:
        passed = result.decision is not None and result.decision.passed
        record = {
            # A passing gate's last word belongs to the promotion (compare-and-set may refuse).
            "decision": None if passed else result.outcome,
            "reasons": result.reasons,
            "metrics": headline,
            "report": records.report_uri,
            "evaluation": records.evaluation_uri,
            "gate": result.to_dict(),
        }
    record["model_version"] = result.version
    record_step(records.root, records.run_id, "promote" if promote else "gate", record)


def gate_step(
    evaluation_path: Path,
    version: str,
    registry: RegistryConfig,
    gate: GateConfig,
    *,
    promote: bool,
    decision_path: Path | None = None,
    records: PipelineRecords | None = None,
) -> PromotionResult:
    """Decide on the evaluation, record it on `version`, promote when asked and it passed.

    `decision_path`: where decision.json goes (a KFP output artifact is that file itself).
    `records`: also file the decision for the pipeline run's outcome.
    """
    client = connect(registry)
    headline: dict[str, float] = {}
    try:
        evaluation = load_evaluation(Path(evaluation_path))
    except EvaluationError as error:
        result = reject_unusable(client, str(version), error)
    else:
        headline = evaluation.headline_metrics()
        result = gate_and_promote(client, str(version), evaluation, gate, promote=promote)
    if decision_path is not None:
        result.write(Path(decision_path))
    if records is not None:
        _file_decision(records, result, headline, promote)
    return result


def summary(result: PromotionResult) -> dict[str, Any]:
    """The few fields a pipeline UI shows for a decision."""
    data = result.to_dict()
    return {key: data[key] for key in ("version", "outcome", "promoted", "reasons")}


def to_json(result: PromotionResult) -> str:
    return json.dumps(result.to_dict(), indent=1)
