"""The training step for KFP: a thin component, and the H100 placement of its task.

No `from __future__ import annotations` here: KFP reads the parameter annotations as
objects to build the component spec (kfp 2.17).
"""

from typing import Any, Optional

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, Input, Model, Output

# The local runner ignores the image; on a cluster `apply_h100_placement` sets the pinned
# trainer image from the settings.
LOCAL_IMAGE = "python:3.11-slim"
HF_CACHE_MOUNT = "/hf-cache"
SHM_VOLUME = "dshm"


@dsl.component(base_image=LOCAL_IMAGE, install_kfp_package=False)
def train_op(
    data: Input[Dataset],
    base_model: str,
    config_yaml: str,
    model: Output[Model],
    checkpoint_uri: str = "",
    tracking_uri: str = "",
    pipeline_run_id: str = "",
    nproc_per_node: int = 1,
    replay: Optional[Input[Dataset]] = None,  # noqa: UP045 (KFP reads Optional[...])
) -> None:
    """Fine-tune the captioner on a prepared dataset with `uicap train`.

    Args:
        data: The prepared directory (train.json, val.json, test.json, manifest.json).
        base_model: Hub id or local folder of the base model.
        config_yaml: The training config (TrainConfig as YAML or JSON).
        model: The model artifact: adapter/ (or model/) plus uicap_model.json.
        checkpoint_uri: gs:// folder that keeps checkpoints across pod restarts; a retried
            task resumes from it. Empty: checkpoints stay inside the artifact folder.
        tracking_uri: MLflow tracking URI. Empty: $MLFLOW_TRACKING_URI, else a local store.
        pipeline_run_id: Tags the MLflow run with the pipeline run it belongs to.
        nproc_per_node: Training processes (GPUs) on the node; more than 1 uses torchrun.
        replay: A prepared general set whose train split is rehearsed (replay_fraction).
    """
    from components.train.launch import run_train_step

    summary = run_train_step(
        data=data.path,
        base_model=base_model,
        output=model.path,
        config_yaml=config_yaml,
        checkpoint_uri=checkpoint_uri,
        tracking_uri=tracking_uri,
        pipeline_run_id=pipeline_run_id,
        nproc_per_node=nproc_per_node,
        replay_data=replay.path if replay is not None else "",
    )
    model.metadata.update(summary)


def apply_h100_placement(task: dsl.PipelineTask, settings: Any) -> dsl.PipelineTask:
    """Run `task` on the H100 pool that `settings.kubernetes` describes.

    GPUs, node selector and toleration put the pod on an H100 node; /dev/shm is memory
    backed for data-loader workers and NCCL; the Hugging Face token comes from the Secret
    the settings name (never a value); an optional PVC caches Hub downloads; a timeout and
    retries let a preempted run come back and resume from its checkpoints.
    """
    kube = settings.kubernetes
    if kube is None:
        raise ValueError("settings have no kubernetes group: H100 placement needs the gke profile")
    if settings.train.nproc_per_node > kube.accelerator_count:
        raise ValueError(
            f"train.nproc_per_node={settings.train.nproc_per_node} needs more GPUs than "
            f"kubernetes.accelerator_count={kube.accelerator_count}"
        )
    task.set_container_image(kube.trainer_image)
    task.set_accelerator_type(kube.accelerator_type)
    task.set_accelerator_limit(kube.accelerator_count)
    task.set_cpu_limit(kube.train_cpu_limit)
    task.set_memory_limit(kube.train_memory_limit)
    for label, value in kube.node_selector.items():
        kubernetes.add_node_selector(task, label_key=label, label_value=value)
    for toleration in kube.tolerations:
        kubernetes.add_toleration(
            task,
            key=toleration.key,
            operator=toleration.operator,
            value=toleration.value,
            effect=toleration.effect,
        )
    kubernetes.empty_dir_mount(
        task,
        volume_name=SHM_VOLUME,
        mount_path="/dev/shm",
        medium="Memory",
        size_limit=kube.shm_size,
    )
    secrets = [kube.hf_token_secret, kube.mlflow_credentials_secret]
    for secret in (s for s in secrets if s is not None):
        kubernetes.use_secret_as_env(task, secret.name, dict(secret.key_to_env))
    if kube.hf_cache_pvc:
        kubernetes.mount_pvc(task, pvc_name=kube.hf_cache_pvc, mount_path=HF_CACHE_MOUNT)
        task.set_env_variable("HF_HOME", HF_CACHE_MOUNT)
    kubernetes.set_timeout(task, kube.train_timeout_seconds)
    task.set_retry(num_retries=kube.retries, backoff_duration="60s", backoff_factor=2.0)
    return task
