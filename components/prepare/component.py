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
    reuse_root: str = "",
    base_model: str = "",
    base_revision: str = "",
):
    """Draw the target boxes, build the prompts and write train/val/test conversations.

    Args:
        ingested: Output of the ingest step (data/ + manifest.json).
        prepared: Output folder: train.json, val.json, test.json, images/, manifest.json.
        counts: Record counts: records_in, duplicates_removed, records_train/val/test.
        config: PrepareConfig as JSON: image side, HTML budget, splits, seed, workers
            ("" = its defaults).
        reuse_root: Where prepared outputs are kept by content (fingerprint + settings):
            an earlier run's output for the same records is copied, not rendered again
            ("" = always render).
        base_model: The base model (Hub id or folder) whose tokenizer the HTML budget
            counts in ("" with html_tokens=pattern only).
        base_revision: The base's resolved revision (the lineage step's).
    """
    from pathlib import Path

    from components.prepare import prepare
    from components.prepare.config import PrepareConfig
    from components.prepare.reuse import prepare_reusing
    from components.prepare.token_count import BaseTokenizer

    settings = PrepareConfig.from_parameter(config)
    tokenizer = BaseTokenizer(base_model, base_revision or None) if base_model else None
    reused = False
    if reuse_root:
        manifest, reuse = prepare_reusing(
            Path(ingested.path), Path(prepared.path), settings, reuse_root, tokenizer=tokenizer
        )
        prepared.metadata["reuse"] = reuse.record()
        reused = reuse.reused
    else:
        manifest = prepare(Path(ingested.path), Path(prepared.path), settings, tokenizer=tokenizer)
    prepared.metadata["fingerprint"] = manifest.fingerprint
    prepared.metadata["prompt_template_version"] = manifest.prompt_template_version
    counts.log_metric("records_in", manifest.counts.in_)
    counts.log_metric("reused", float(reused))
    counts.log_metric("duplicates_removed", manifest.counts.duplicates_removed)
    for split in ("train", "val", "test"):
        counts.log_metric(f"records_{split}", getattr(manifest.counts, split))
