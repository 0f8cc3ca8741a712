"""Where and how the pipeline's tasks run: images, H100 placement, Secrets.

This is pipeline wiring, not step logic: the components declare a neutral base image and
take their inputs as parameters; the pipeline puts each task on the image the settings
pin (runtime for CPU steps, trainer for the GPU steps), the GPU steps on the H100 pool,
and gives each task the Secrets it needs as environment variables, by name only. Off a
cluster, a containerized local run puts the tasks on the images `make images` built.
"""

from __future__ import annotations

from kfp import dsl, kubernetes

from components.trainjob.manifest import (
    HF_CACHE_MOUNT,
    SHM_VOLUME,
    SecretKeyEnv,
    TrainJobTemplate,
)
from pipelines.settings import SecretEnv, Settings

# How long a TrainJob launcher may wait, beyond the training timeout, for admission.
LAUNCHER_QUEUE_ALLOWANCE_S = 6 * 3600


def use_secret(task: dsl.PipelineTask, secret: SecretEnv | None) -> dsl.PipelineTask:
    """Expose a Secret's keys to the task as environment variables (names, never values)."""
    if secret is not None:
        kubernetes.use_secret_as_env(task, secret.name, dict(secret.key_to_env))
    return task


def use_mlflow_credentials(task: dsl.PipelineTask, settings: Settings) -> dsl.PipelineTask:
    """Give the task the MLflow credentials Secret the settings name (MLflow reads the env)."""
    kube = settings.kubernetes
    return use_secret(task, kube.mlflow_credentials_secret if kube is not None else None)


def cpu_step(
    task: dsl.PipelineTask,
    name: str,
    settings: Settings,
    *,
    cached: bool = True,
    retries: int = 0,
    registry: bool = False,
    secret: SecretEnv | None = None,
    hub_cache: bool = False,
) -> dsl.PipelineTask:
    """A CPU step: its name, caching and retries; on a cluster the pinned runtime image,
    the MLflow credentials when it talks to the registry, `secret` as env vars, and the
    shared Hub cache when it downloads from the Hub."""
    task.set_display_name(name)
    if not cached:
        task.set_caching_options(False)
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="30s", backoff_factor=2.0)
    if settings.kubernetes is None:
        if settings.images is not None:
            task.set_container_image(settings.images.runtime)
        return task
    task.set_container_image(settings.kubernetes.runtime_image)
    if registry:
        use_mlflow_credentials(task, settings)
    if hub_cache:
        use_hub_cache(task, settings)
    return use_secret(task, secret)


def gpu_step(task: dsl.PipelineTask, name: str, settings: Settings) -> dsl.PipelineTask:
    """A GPU step (train, evaluate): its name; on a cluster the H100 placement, off one
    the trainer image when the settings name one (a containerized local run)."""
    task.set_display_name(name)
    if settings.kubernetes is not None:
        return apply_h100_placement(task, settings)
    if settings.images is not None:
        task.set_container_image(settings.images.trainer)
    return task


def trainjob_launcher_step(
    task: dsl.PipelineTask, name: str, settings: Settings
) -> dsl.PipelineTask:
    """The train task as a TrainJob launcher: a CPU pod in the runtime image that asks for
    no GPU (the job's nodes hold them). It resolves the base's revision on the Hub (the
    token), may wait for Kueue before the job's own deadline starts, and is retried safely:
    a retry attaches to, or resumes, the job its first attempt created."""
    kube = settings.kubernetes
    if kube is None:
        raise ValueError("settings have no kubernetes group: a TrainJob needs the gke profile")
    cpu_step(task, name, settings, secret=kube.hf_token_secret)
    # The job's deadline runs from admission; a queue may hold it a while before that.
    kubernetes.set_timeout(task, kube.train_timeout_seconds + LAUNCHER_QUEUE_ALLOWANCE_S)
    task.set_retry(num_retries=kube.retries, backoff_duration="60s", backoff_factor=2.0)
    return task


def use_hub_cache(task: dsl.PipelineTask, settings: Settings) -> dsl.PipelineTask:
    """Mount the Hub cache claim the settings name as HF_HOME (ingest, prepare, train,
    evaluate)."""
    kube = settings.kubernetes
    if kube is not None and kube.hf_cache_pvc:
        kubernetes.mount_pvc(task, pvc_name=kube.hf_cache_pvc, mount_path=HF_CACHE_MOUNT)
        task.set_env_variable("HF_HOME", HF_CACHE_MOUNT)
    return task


def apply_h100_placement(task: dsl.PipelineTask, settings: Settings) -> dsl.PipelineTask:
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
    use_secret(task, kube.hf_token_secret)
    use_mlflow_credentials(task, settings)
    use_hub_cache(task, settings)
    kubernetes.set_timeout(task, kube.train_timeout_seconds)
    task.set_retry(num_retries=kube.retries, backoff_duration="60s", backoff_factor=2.0)
    return task


def trainjob_template(settings: Settings) -> TrainJobTemplate:
    """The TrainJob the train launcher creates, from the same settings as the pod launcher:
    image, H100 placement, Secrets, Hub cache, /dev/shm and timeout; one training process
    per GPU on each of `train_nodes` nodes."""
    kube = settings.kubernetes
    if kube is None:
        raise ValueError("settings have no kubernetes group: a TrainJob needs the gke profile")
    secrets = [kube.hf_token_secret, kube.mlflow_credentials_secret]
    return TrainJobTemplate(
        runtime=kube.training_runtime,
        image=kube.trainer_image,
        num_nodes=kube.train_nodes,
        proc_per_node=kube.accelerator_count,
        accelerator_type=kube.accelerator_type,
        gpus_per_node=kube.accelerator_count,
        cpu_limit=kube.train_cpu_limit,
        memory_limit=kube.train_memory_limit,
        node_selector=dict(kube.node_selector),
        tolerations=[t.model_dump(exclude_none=True) for t in kube.tolerations],
        secret_env=[
            SecretKeyEnv(secret=secret.name, key=key, env=env)
            for secret in secrets
            if secret is not None
            for key, env in secret.key_to_env.items()
        ],
        service_account=kube.service_account,
        # A ReadWriteOnce claim attaches to one node: several nodes download the base each.
        hf_cache_pvc=kube.hf_cache_pvc
        if kube.train_nodes == 1 or kube.hf_cache_read_write_many
        else None,
        shm_size=kube.shm_size,
        active_deadline_seconds=kube.train_timeout_seconds,
        kueue_queue=kube.kueue_queue,
        namespace=kube.trainjob_namespace,
    )
