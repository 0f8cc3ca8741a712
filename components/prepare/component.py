"""The prepare step as a KFP component: artifacts in, plain function call, artifacts out."""

# No `from __future__ import annotations` here: KFP reads the real annotation objects
# (Output[Dataset], ...) to build the component interface.

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.ingest.component import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, packages_to_install=[], install_kfp_package=False)
def prepare_op(
    ingested: Input[Dataset],
    prepared: Output[Dataset],
    counts: Output[Metrics],
    max_image_side: int = 1344,
    html_budget: int = 256,
    split_fractions: str = "0.8,0.1,0.1",
    seed: int = 0,
    workers: int = 1,
):
    """Draw the target boxes, build the prompts and write train/val/test conversations.

    Args:
        ingested: Output of the ingest step (data/ + manifest.json).
        prepared: Output folder: train.json, val.json, test.json, images/, manifest.json.
        counts: Record counts: records_in, duplicates_removed, records_train/val/test.
        max_image_side: Longest image side in pixels after resizing.
        html_budget: Token budget of the surrounding HTML in the prompt.
        split_fractions: train,val,test fractions of the screens.
        seed: Seed of the split assignment.
        workers: Worker processes drawing and encoding images.
    """
    from pathlib import Path

    from components.prepare import prepare

    manifest = prepare(
        Path(ingested.path),
        Path(prepared.path),
        max_image_side=max_image_side,
        html_budget=html_budget,
        split_fractions=split_fractions,
        seed=seed,
        workers=workers,
    )
    prepared.metadata["fingerprint"] = manifest.fingerprint
    prepared.metadata["prompt_template_version"] = manifest.prompt_template_version
    counts.log_metric("records_in", manifest.counts.in_)
    counts.log_metric("duplicates_removed", manifest.counts.duplicates_removed)
    for split in ("train", "val", "test"):
        counts.log_metric(f"records_{split}", getattr(manifest.counts, split))
