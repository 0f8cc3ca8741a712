"""The lineage check as a KFP component: the run's inputs in, "is there anything new?" out.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
"""

from kfp import dsl
from kfp.dsl import OutputPath

from components.base_image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def lineage_op(
    tags: OutputPath(str),
    checkpoint_uri: OutputPath(str),
    data_revision: OutputPath(str),
    base_revision: OutputPath(str),
    dataset: str,
    base_model: str,
    revision: str = "",
    prepare_config: str = "",
    train_config: str = "",
    registry: str = "",
    checkpoint_root: str = "",
    records_root: str = "",
    run_id: str = "",
) -> bool:
    """Resolve the dataset and base revisions, then compare this run's inputs with the
    champion's lineage; True when there is something new. Downloads no data.

    The verdict is the single `Output` (kfp.local's `dsl.If` resolves only that name).

    Args:
        tags: The lineage tags (JSON) the register step puts on the new version.
        checkpoint_uri: The train step's checkpoint folder ("" without a checkpoint root).
        data_revision: The dataset's resolved revision (commit sha or content hash): what
            ingest reads.
        base_revision: The base model's resolved revision: what train loads and records.
        dataset: Hub dataset id (owner/name) or a local dataset folder.
        base_model: Hub id or local folder of the base model.
        revision: The dataset's branch, tag or commit ("" = main).
        prepare_config: The PrepareConfig JSON the prepare step gets ("" = defaults).
        train_config: The TrainConfig JSON (or YAML) the train step gets ("" = defaults);
            it names the base model's family and revision (a branch is resolved here).
        registry: RegistryConfig as JSON ("" = defaults).
        checkpoint_root: Where training checkpoints go; the run's folder under it is named
            by the lineage key, so a retried or re-run train task resumes in the same place.
        records_root: Where step records go for the exit handler ("" = none).
        run_id: The pipeline run.
    """
    import json
    from pathlib import Path

    from components.lineage.run import lineage_step
    from components.prepare.config import PrepareConfig
    from components.register.config import RegistryConfig
    from components.train.config import parse_config

    check, where = lineage_step(
        dataset=dataset,
        revision=revision,
        base_model=base_model,
        prepare=PrepareConfig.from_parameter(prepare_config),
        train=parse_config(train_config),
        registry=RegistryConfig.from_parameter(registry),
        checkpoint_root=checkpoint_root,
        records_root=records_root,
        run_id=run_id,
    )
    Path(tags).write_text(json.dumps(check.lineage.tags()))
    Path(checkpoint_uri).write_text(where)
    Path(data_revision).write_text(check.lineage.data_revision)
    Path(base_revision).write_text(check.lineage.base_revision)
    return check.changed
