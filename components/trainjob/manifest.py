"""The Kubeflow Trainer TrainJob that the train step's launcher creates.

The pipeline fixes everything about placement when it compiles (`TrainJobTemplate`, a
JSON parameter of the launcher task); the launcher adds what only a run knows (the job's
name, and the training job with its data and output locations) and creates the object
`render` returns. `uicap trainjob show` prints the same object, so what an operator
reviews is what a run creates.

Facts of Kubeflow Trainer v2.3 this relies on: the torch runtime's plugin sets the
`PET_*` rendezvous variables in the container named `node`, so `torchrun` needs no
rendezvous flags (and setting them ourselves is refused); placement, volumes and the
service account go in `spec.runtimePatches` under a manager key; `trainer` and
`runtimeRef` are immutable, so a changed job is deleted and created again, never patched.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from components.train.run import ENTRY_MODULE

API_GROUP = "trainer.kubeflow.org"
API_VERSION = "v1alpha1"
PLURAL = "trainjobs"
# The container the torch runtime's plugin fills with the PET_* variables.
NODE_CONTAINER = "node"
# The replicated job of the torch runtime: one indexed Job whose completion index is the
# node rank.
NODE_JOB = "node"
PATCH_MANAGER = "uicap.dev/train-launcher"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
RUN_LABEL = "uicap.dev/pipeline-run"
TASK_LABEL = "uicap.dev/task"
# Shared with the pod launcher (pipelines/placement.py), so both mount the same paths.
SHM_VOLUME = "dshm"
HF_CACHE_VOLUME = "hf-cache"
HF_CACHE_MOUNT = "/hf-cache"
# JobSet derives child names (<job>-<replicated job>-<index>-<pod index>-<suffix>) that must
# stay under 63 characters: keep the TrainJob's own name well under that.
MAX_NAME = 40
RUN_ID_PLACEHOLDER = "<pipeline-run-id>"


class SecretKeyEnv(BaseModel):
    """One key of a Kubernetes Secret as one environment variable (a name, never a value)."""

    model_config = ConfigDict(extra="forbid")

    secret: str
    key: str
    env: str


class TrainJobTemplate(BaseModel):
    """What the settings decide about the TrainJob; `render` adds the run's part."""

    model_config = ConfigDict(extra="forbid")

    runtime: str
    image: str
    num_nodes: int = Field(ge=1)
    proc_per_node: int = Field(ge=1)
    accelerator_type: str
    gpus_per_node: int = Field(ge=0)
    cpu_limit: str
    memory_limit: str
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, str]] = Field(default_factory=list)
    secret_env: list[SecretKeyEnv] = Field(default_factory=list)
    service_account: str | None = None
    hf_cache_pvc: str | None = None
    shm_size: str = "16Gi"
    active_deadline_seconds: int = Field(ge=1)
    # GKE gives a preempted pod about 15 s: the checkpoint on SIGTERM must fit in it.
    termination_grace_seconds: int = Field(30, ge=1)
    kueue_queue: str | None = None
    namespace: str | None = None

    def to_parameter(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_parameter(cls, text: str) -> TrainJobTemplate:
        return cls.model_validate_json(text)


def job_name(run_id: str, task: str = "train") -> str:
    """The TrainJob's name for one task of one pipeline run: a KFP retry of the task
    computes the same name and so finds the job its first attempt created."""
    digest = hashlib.sha256(f"{run_id}\0{task}".encode()).hexdigest()[:12]
    prefix = re.sub(r"[^a-z0-9-]", "-", f"uicap-{task}".lower()).strip("-")
    return f"{prefix[: MAX_NAME - 13]}-{digest}"


def label_value(text: str) -> str:
    """`text` as a label value (63 characters of [A-Za-z0-9._-], alphanumeric at both ends)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", text)[:63]
    return cleaned.strip("-._")


def trainer_command(job_json: str) -> tuple[list[str], list[str]]:
    """`torchrun -m components.train --job-json JOB`: torchrun reads nodes, ranks and the
    master from the PET_* variables the runtime sets."""
    return ["torchrun"], ["-m", ENTRY_MODULE, "--job-json", job_json]


def _env(template: TrainJobTemplate) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": item.env, "valueFrom": {"secretKeyRef": {"name": item.secret, "key": item.key}}}
        for item in template.secret_env
    ]
    if template.hf_cache_pvc:
        env.append({"name": "HF_HOME", "value": HF_CACHE_MOUNT})
    return env


def _pod_patch(template: TrainJobTemplate) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": template.shm_size}}
    ]
    mounts: list[dict[str, Any]] = [{"name": SHM_VOLUME, "mountPath": "/dev/shm"}]
    if template.hf_cache_pvc:
        volumes.append(
            {"name": HF_CACHE_VOLUME, "persistentVolumeClaim": {"claimName": template.hf_cache_pvc}}
        )
        mounts.append({"name": HF_CACHE_VOLUME, "mountPath": HF_CACHE_MOUNT})
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": template.termination_grace_seconds,
        "volumes": volumes,
        "containers": [{"name": NODE_CONTAINER, "volumeMounts": mounts}],
    }
    if template.service_account:
        pod["serviceAccountName"] = template.service_account
    if template.node_selector:
        pod["nodeSelector"] = dict(template.node_selector)
    if template.tolerations:
        pod["tolerations"] = [dict(t) for t in template.tolerations]
    return pod


def render(
    template: TrainJobTemplate,
    name: str,
    job_json: str,
    *,
    namespace: str,
    run_id: str,
    task: str = "train",
) -> dict[str, Any]:
    """The TrainJob object: `template`'s placement running the training job `job_json`."""
    limits: dict[str, Any] = {"cpu": template.cpu_limit, "memory": template.memory_limit}
    if template.gpus_per_node:
        limits[template.accelerator_type] = template.gpus_per_node
    labels = {
        "app.kubernetes.io/name": "uicap",
        "app.kubernetes.io/component": "train",
        RUN_LABEL: label_value(run_id) or "none",
        TASK_LABEL: label_value(task),
    }
    if template.kueue_queue:
        labels[QUEUE_LABEL] = template.kueue_queue
    command, args = trainer_command(job_json)
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "TrainJob",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"uicap.dev/pipeline-run-id": run_id},
        },
        "spec": {
            "runtimeRef": {
                "name": template.runtime,
                "apiGroup": API_GROUP,
                "kind": "TrainingRuntime",
            },
            "activeDeadlineSeconds": template.active_deadline_seconds,
            "trainer": {
                "image": template.image,
                "command": command,
                "args": args,
                "env": _env(template),
                "numNodes": template.num_nodes,
                "numProcPerNode": template.proc_per_node,
                "resourcesPerNode": {"limits": limits, "requests": dict(limits)},
            },
            "runtimePatches": [
                {
                    "manager": PATCH_MANAGER,
                    "trainingRuntimeSpec": {
                        "template": {
                            "spec": {
                                "replicatedJobs": [
                                    {
                                        "name": NODE_JOB,
                                        "template": {
                                            "spec": {"template": {"spec": _pod_patch(template)}}
                                        },
                                    }
                                ]
                            }
                        }
                    },
                }
            ],
        },
    }


def job_json_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The training job a TrainJob object carries (the argument after `--job-json`)."""
    args = manifest["spec"]["trainer"]["args"]
    return json.loads(args[args.index("--job-json") + 1])
