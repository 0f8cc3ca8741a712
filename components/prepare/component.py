"""The prepare step as a KFP component: artifacts in, plain function call, artifacts out."""

# No `from __future__ import annotations` here: KFP reads the real annotation objects
# (Output[Dataset], ...) to build the component interface.

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.base_image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def prepare_op(
    ingested: Input[Dataset],
    prepared: Output[Dataset],
    counts: Output[Metrics],
    config: str = "",
):
    """Draw the target boxes, build the prompts and write train/val/test conversations.

    Args:
        ingested: Output of the ingest step (data/ + manifest.json).
        prepared: Output folder: train.json, val.json, test.json, images/, manifest.json.
        counts: Record counts: records_in, duplicates_removed, records_train/val/test.
        config: PrepareConfig as JSON: image side, HTML budget, splits, seed, workers
            ("" = its defaults).
    """
    from pathlib import Path

    from components.prepare import prepare
    from components.prepare.config import PrepareConfig

    manifest = prepare(
        Path(ingested.path), Path(prepared.path), PrepareConfig.from_parameter(config)
    )
    prepared.metadata["fingerprint"] = manifest.fingerprint
    prepared.metadata["prompt_template_version"] = manifest.prompt_template_version
    counts.log_metric("records_in", manifest.counts.in_)
    counts.log_metric("duplicates_removed", manifest.counts.duplicates_removed)
    for split in ("train", "val", "test"):
        counts.log_metric(f"records_{split}", getattr(manifest.counts, split))
