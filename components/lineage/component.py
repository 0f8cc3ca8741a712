"""The lineage check as a KFP component: ingest output in, "is there anything new?" out.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, OutputPath

from components.ingest.component import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, packages_to_install=[], install_kfp_package=False)
def lineage_op(
    ingested: Input[Dataset],
    tags: OutputPath(str),
    checkpoint_uri: OutputPath(str),
    base_model: str,
    family: str,
    train_config: str,
    max_image_side: int,
    html_budget: int,
    split_fractions: str,
    prepare_seed: int,
    base_revision: str = "",
    registry: str = "",
    tracking_uri: str = "",
    checkpoint_root: str = "",
    records_root: str = "",
    run_id: str = "",
) -> bool:
    """Compare this run's inputs with the champion's lineage; True when there is something new.

    The verdict is the single `Output` (kfp.local's `dsl.If` resolves only that name).

    Args:
        ingested: The ingest step's output (its manifest has the content fingerprint).
        tags: The lineage tags (JSON) the register step puts on the new version.
        checkpoint_uri: The train step's checkpoint folder ("" without a checkpoint root).
        base_model: Hub id or local folder of the base model.
        family: Model family of the base.
        train_config: The training config (YAML or JSON) the train step will get.
        max_image_side: The prepare step's image size (it changes what training sees).
        html_budget: The prepare step's HTML token budget.
        split_fractions: The prepare step's train,val,test fractions.
        prepare_seed: The prepare step's split seed.
        base_revision: Revision of the base model ("" = none pinned).
        registry: RegistrySettings as JSON (empty: defaults).
        tracking_uri: MLflow tracking URI (empty: $MLFLOW_TRACKING_URI, else the settings').
        checkpoint_root: Where training checkpoints go; the run's folder under it is named
            by the lineage key, so a retried or re-run train task resumes in the same place.
        records_root: Where step records go for the exit handler ("" = none).
        run_id: The pipeline run.
    """
    import json
    from pathlib import Path

    from components import storage
    from components.lineage import check_against_champion, run_lineage
    from components.outcome import record_step
    from components.register.client import connect
    from components.register.steps import registry_settings

    lineage = run_lineage(
        Path(ingested.path),
        base_model=base_model,
        base_revision=base_revision or None,
        family=family,
        prepare={
            "max_image_side": max_image_side,
            "html_budget": html_budget,
            "split_fractions": split_fractions,
            "seed": prepare_seed,
        },
        train_config=train_config,
    )
    check = check_against_champion(
        lineage, connect(registry_settings(registry or None), tracking_uri or None)
    )
    record_step(records_root, run_id, "lineage", check.record())
    Path(tags).write_text(json.dumps(lineage.tags()))
    where = storage.join(checkpoint_root, lineage.key[:16]) if checkpoint_root else ""
    Path(checkpoint_uri).write_text(where)
    return check.changed
