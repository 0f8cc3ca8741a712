"""The training step for KFP: a thin component around `run_train_step`.

Where it runs (the H100 pool, the trainer image, Secrets) is the pipeline's wiring:
the placement module of the pipeline package.

No `from __future__ import annotations` here: KFP reads the parameter annotations as
objects to build the component spec (kfp 2.17).
"""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.base_image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def train_op(
    data: Input[Dataset],
    base_model: str,
    model: Output[Model],
    config: str = "",
    base_revision: str = "",
    checkpoint_uri: str = "",
    registry: str = "",
    pipeline_run_id: str = "",
    nproc_per_node: int = 1,
    replay: Optional[Input[Dataset]] = None,  # noqa: UP045 (KFP reads Optional[...])
) -> None:
    """Fine-tune the captioner on a prepared dataset (`python -m components.train`).

    Args:
        data: The prepared directory (train.json, val.json, test.json, manifest.json).
        base_model: Hub id or local folder of the base model.
        model: The model artifact: adapter/ (or model/) plus uicap_model.json.
        config: The TrainConfig as JSON (or YAML); "" = its defaults.
        base_revision: The base model's revision as the run resolved it (a commit sha or
            a local folder's content hash); it replaces the config's `base_revision`, so
            a branch name never reaches the model artifact. "" = the config's.
        checkpoint_uri: gs:// folder that keeps checkpoints across pod restarts; a retried
            task resumes from it. Empty: checkpoints stay inside the artifact folder.
        registry: RegistryConfig as JSON: the MLflow tracking URI of the training run
            (none named: $MLFLOW_TRACKING_URI, else a store in the artifact folder).
        pipeline_run_id: Tags the MLflow run with the pipeline run it belongs to.
        nproc_per_node: Training processes (GPUs) on the node; more than 1 uses torchrun.
        replay: A prepared general set whose train split is rehearsed (replay_fraction).
    """
    from components.register.config import RegistryConfig
    from components.train.run import run_train_step

    summary = run_train_step(
        data=data.path,
        base_model=base_model,
        output=model.path,
        config=config,
        base_revision=base_revision,
        checkpoint_uri=checkpoint_uri,
        tracking_uri=RegistryConfig.from_parameter(registry).tracking_uri,
        pipeline_run_id=pipeline_run_id,
        nproc_per_node=nproc_per_node,
        replay_data=replay.path if replay is not None else "",
    )
    model.metadata.update(summary)
