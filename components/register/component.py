"""The champion, register, gate and promote steps as KFP components: thin wrappers over `run.py`.

Wiring in the pipeline (`registry` is `RegistryConfig` JSON, `gate` is `GateConfig` JSON):

    champion = champion_op(registry=registry)
    evaluated = evaluate_op(..., champion=champion.output)   # "" -> against the base
    registered = register_op(model=train.outputs["model"], evaluation=..., data=...,
                             registry=registry, pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    gate = gate_op(evaluation=..., version=registered.output, registry=registry, gate=gate)
    with dsl.If(gate.outputs["Output"] == True):
        promote_op(evaluation=..., version=registered.output, registry=registry, gate=gate)

`promote_op` re-derives the decision from the same evaluation (the gate is a pure
function of it) and moves the champion by compare-and-set; a stale evaluation is
recorded there. The registry config names the tracking URI (a config without one uses
$MLFLOW_TRACKING_URI); credentials come from the environment the pipeline gives the task.
"""

# No `from __future__ import annotations` here: KFP reads the real annotation objects
# (Input[Model], ...) to build the component interface (kfp 2.17).

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Model, Output

from components.base_image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def champion_op(registry: str = "") -> str:
    """The champion to evaluate against, pinned to its version; "" when there is none.

    Args:
        registry: RegistryConfig as JSON ("" = defaults).

    Returns:
        models:/<name>/<version>, or "" (the evaluate step then compares with the base).
    """
    from components.register.config import RegistryConfig
    from components.register.run import champion_reference

    return champion_reference(RegistryConfig.from_parameter(registry))


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def register_op(
    model: Input[Model],
    evaluation: Input[Artifact],
    data: Input[Dataset],
    pipeline_run_id: str,
    registry: str = "",
    lineage_tags: str = "",
    records_root: str = "",
) -> str:
    """Register the evaluated candidate as a model version with alias `challenger`.

    Args:
        model: The model artifact (uicap_model.json + adapter/) from the train step.
        evaluation: The evaluate step's output (evaluation.json, or a folder holding it).
        data: The prepared data (its manifest.json gives lineage and the serving config).
        pipeline_run_id: Makes registering idempotent: a retry returns the same version.
        registry: RegistryConfig as JSON ("" = defaults).
        lineage_tags: The lineage check's tags (JSON), so the next run can tell what's new.
        records_root: Where step records go for the exit handler ("" = none).

    Returns:
        The model version number.
    """
    import json
    from pathlib import Path

    from components.outcome import record_step
    from components.register.config import RegistryConfig
    from components.register.run import register_step

    registered = register_step(
        Path(model.path),
        Path(evaluation.path),
        Path(data.path),
        pipeline_run_id,
        RegistryConfig.from_parameter(registry),
        lineage_tags=json.loads(lineage_tags) if lineage_tags else None,
    )
    record = {"model_version": registered.version, "created": registered.created}
    record_step(records_root, pipeline_run_id, "register", record)
    return registered.version


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def gate_op(
    evaluation: Input[Artifact],
    version: str,
    decision: Output[Artifact],
    registry: str = "",
    gate: str = "",
    report: Optional[Input[HTML]] = None,  # noqa: UP045 (KFP reads Optional[...])
    records_root: str = "",
    run_id: str = "",
) -> bool:
    """Decide from evaluation.json alone; record the decision on the version.

    Returns whether the gate passed (its single `Output`, for `dsl.If`; the outcome is in
    the decision artifact's metadata).

    Args:
        evaluation: The evaluate step's output.
        version: The registered version the evaluation is of.
        decision: decision.json (verdict, every check with its numbers).
        registry: RegistryConfig as JSON ("" = defaults).
        gate: GateConfig as JSON ("" = defaults).
        report: The evaluation report, linked from the run's outcome.
        records_root: Where step records go for the exit handler ("" = none).
        run_id: The pipeline run.
    """
    from pathlib import Path

    from components.register.config import GateConfig, RegistryConfig
    from components.register.run import PipelineRecords, gate_step

    result = gate_step(
        Path(evaluation.path),
        version,
        RegistryConfig.from_parameter(registry),
        GateConfig.from_parameter(gate),
        promote=False,
        decision_path=Path(decision.path),
        records=PipelineRecords(records_root, run_id, evaluation.uri, report and report.uri),
    )
    decision.metadata["outcome"] = result.outcome
    return result.decision is not None and result.decision.passed


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def promote_op(
    evaluation: Input[Artifact],
    version: str,
    decision: Output[Artifact],
    registry: str = "",
    gate: str = "",
    records_root: str = "",
    run_id: str = "",
) -> str:
    """Move `champion` to the version by compare-and-set (run under dsl.If on the gate).

    Args:
        evaluation: The evaluate step's output.
        version: The registered version to promote.
        decision: decision.json, final: promoted, or stale evaluation with the reason.
        registry: RegistryConfig as JSON ("" = defaults).
        gate: GateConfig as JSON ("" = defaults).
        records_root: Where step records go for the exit handler ("" = none).
        run_id: The pipeline run.

    Returns:
        The outcome: promoted, already champion, stale evaluation or rejected.
    """
    from pathlib import Path

    from components.register.config import GateConfig, RegistryConfig
    from components.register.run import PipelineRecords, gate_step

    result = gate_step(
        Path(evaluation.path),
        version,
        RegistryConfig.from_parameter(registry),
        GateConfig.from_parameter(gate),
        promote=True,
        decision_path=Path(decision.path),
        records=PipelineRecords(records_root, run_id, evaluation.uri),
    )
    decision.metadata["outcome"] = result.outcome
    return result.outcome
