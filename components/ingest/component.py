"""The ingest step as a KFP component: artifacts in, plain function call, artifacts out."""

# No `from __future__ import annotations` here: KFP reads the real annotation objects
# (Output[Dataset], ...) to build the component interface.

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components.base_image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def ingest_op(
    dataset: str,
    data: Output[Dataset],
    counts: Output[Metrics],
    revision: str = "",
    split: str = "train",
    column_map: str = "",
    max_quarantine_fraction: float = 0.05,
):
    """Validate a dataset record by record and keep the good records in the input contract.

    Args:
        dataset: Hugging Face Hub dataset id (owner/name) or a local dataset folder.
        data: Output folder: data/ (kept records, `datasets.load_from_disk`) + manifest.json.
        counts: Record counts: records_in, records_kept, records_quarantined.
        revision: Hub branch, tag or commit to read ("" = main), resolved to a sha; the
            pipeline passes the sha its lineage step resolved. For a local folder, its
            content hash as resolved then (a folder that changed since is refused).
        split: Split of the source dataset to read.
        column_map: Preset (wave-ui, rico-widget-captions) and/or src=dst renames ("" = none).
        max_quarantine_fraction: Fail the step when more records than this are quarantined.
    """
    from pathlib import Path

    from components.ingest import ingest

    manifest = ingest(
        dataset,
        Path(data.path),
        revision=revision or None,
        split=split,
        column_map=column_map or None,
        max_quarantine_fraction=max_quarantine_fraction,
    )
    data.metadata["fingerprint"] = manifest.fingerprint
    data.metadata["resolved_revision"] = manifest.source.resolved_revision
    counts.log_metric("records_in", manifest.counts.in_)
    counts.log_metric("records_kept", manifest.counts.kept)
    counts.log_metric("records_quarantined", manifest.counts.quarantined)
