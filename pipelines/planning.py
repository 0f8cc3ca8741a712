"""The plan of a profile's training run: its model, recipe and data, on its target GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.plan.estimate import RunPlan, build_plan
from components.plan.model_source import load_model_source
from components.plan.sample_shape import worst_case_shape
from components.plan.step_trace import trace_step


def plan_training(settings: Any, dataset: Path | None = None) -> RunPlan:
    """`dataset`: a prepared folder whose manifest gives the record counts."""
    plan = settings.plan
    config = settings.train.config()
    source = load_model_source(settings.model.base, settings.model.revision, plan.model_config_path)
    shape = worst_case_shape(
        settings.model.family,
        source.preprocessor,
        settings.prepare.max_image_side,
        plan.text_tokens,
    )
    train_records, val_records = plan.train_records, plan.val_records
    if dataset is not None:
        train_records, val_records = _split_counts(dataset)
    processes, nodes, gpus = training_placement(settings)
    trace = trace_step(
        source.config, config, shape, on_gpu=True, grads_persist=config.batch.grad_accum > 1
    )
    return build_plan(
        trace,
        shape,
        config,
        plan,
        model=settings.model.base,
        source=source.described,
        processes=processes,
        nodes=nodes,
        gpus=gpus,
        vocab_size=source.config.text_config.vocab_size,
        train_records=train_records,
        val_records=val_records,
    )


def _split_counts(dataset: Path) -> tuple[int, int]:
    from components.prepare.manifest import PrepareManifest, read_manifest

    manifest = read_manifest(dataset)
    if not isinstance(manifest, PrepareManifest):
        raise ValueError(
            f"{dataset}: not a prepared UI dataset (its manifest is {manifest.step}'s)"
        )
    return manifest.counts.train, manifest.counts.val


def training_placement(settings: Any) -> tuple[int, int, int]:
    """Processes, nodes and GPUs paid for: a TrainJob runs one process per GPU on each of
    its nodes; the pod launcher runs `train.nproc_per_node` on one node."""
    kube = settings.kubernetes
    if kube is not None and kube.train_launcher == "trainjob":
        gpus = kube.train_nodes * kube.accelerator_count
        return gpus, kube.train_nodes, gpus
    processes = settings.train.nproc_per_node
    return processes, 1, kube.accelerator_count if kube is not None else processes
