"""The train step as a TrainJob launcher for KFP: a thin component around
`run_trainjob_step`. It asks for no GPU: the TrainJob's nodes hold them.

No `from __future__ import annotations` here: KFP reads the parameter annotations as
objects to build the component spec (kfp 2.17).
"""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.base_image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def trainjob_op(
    data: Input[Dataset],
    base_model: str,
    model: Output[Model],
    template: str,
    config: str = "",
    base_revision: str = "",
    checkpoint_uri: str = "",
    registry: str = "",
    pipeline_run_id: str = "",
    replay: Optional[Input[Dataset]] = None,  # noqa: UP045 (KFP reads Optional[...])
) -> None:
    """Fine-tune the captioner on a Kubeflow Trainer TrainJob across nodes, and wait for it.

    Args:
        data: The prepared directory; the job's nodes read it by URI.
        base_model: Hub id or local folder of the base model.
        model: The model artifact, as the pod launcher writes it.
        template: TrainJobTemplate as JSON: image, nodes, GPUs, placement, Secrets.
        config: The TrainConfig as JSON (or YAML); "" = its defaults.
        base_revision: The base model's revision as the run resolved it.
        checkpoint_uri: gs:// folder of the run's checkpoints; the job resumes from it
            and leaves its model beside it.
        registry: RegistryConfig as JSON: the MLflow tracking URI of the training run.
        pipeline_run_id: Names the TrainJob, so a retry of this task finds it again.
        replay: A prepared general set whose train split is rehearsed (replay_fraction).
    """
    from components.register.config import RegistryConfig
    from components.trainjob.step import run_trainjob_step

    summary = run_trainjob_step(
        template=template,
        data=data.uri,
        base_model=base_model,
        output=model.path,
        config=config,
        base_revision=base_revision,
        checkpoint_uri=checkpoint_uri,
        tracking_uri=RegistryConfig.from_parameter(registry).tracking_uri,
        pipeline_run_id=pipeline_run_id,
        replay_data=replay.uri if replay is not None else "",
    )
    model.metadata.update(summary)
