"""The training step: H100 placement on the compiled spec, and a real run through kfp.local."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl

from components.captioner.artifact import read_metadata
from components.register.config import RegistryConfig
from components.train.component import train_op
from pipelines.placement import apply_h100_placement
from pipelines.settings import load_settings
from tests.support.train_data import tiny_base, write_prepared

EXECUTOR = "exec-train-op"


def compile_one_task(settings: Any, tmp_path: Path) -> tuple[dict, dict]:
    """(pipeline spec, kubernetes platform spec) of a pipeline holding one placed task."""

    @dsl.pipeline(name="train-only")
    def train_only():
        data = dsl.importer(artifact_uri="gs://bucket/prepared", artifact_class=dsl.Dataset)
        task = train_op(data=data.output, base_model="openbmb/MiniCPM-V-4.6", config="{}")
        apply_h100_placement(task, settings)

    package = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(train_only, str(package))
    pipeline_spec, platform_spec = yaml.safe_load_all(package.read_text())
    executor = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"][EXECUTOR]
    return pipeline_spec, executor


def test_placement_puts_the_task_on_an_h100_node(tmp_path: Path) -> None:
    settings = load_settings(
        "gke",
        [
            "kubernetes.accelerator_count=2",
            "train.nproc_per_node=2",
            "kubernetes.hf_token_secret.name=team-hf-token",
            "kubernetes.hf_cache_pvc=hf-cache",
            "kubernetes.shm_size=32Gi",
        ],
    )
    pipeline_spec, executor = compile_one_task(settings, tmp_path)

    container = pipeline_spec["deploymentSpec"]["executors"][EXECUTOR]["container"]
    accelerator = container["resources"]["accelerator"]
    assert accelerator["resourceType"] == "nvidia.com/gpu"
    assert accelerator["resourceCount"] == "2"
    assert container["image"] == settings.kubernetes.trainer_image
    assert {"name": "HF_HOME", "value": "/hf-cache"} in container["env"]

    assert executor["nodeSelector"] == {
        "labels": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    }
    assert executor["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert executor["emptyDirMounts"] == [
        {"volumeName": "dshm", "mountPath": "/dev/shm", "medium": "Memory", "sizeLimit": "32Gi"}
    ]
    hf_secret = next(s for s in executor["secretAsEnv"] if s["secretName"] == "team-hf-token")
    assert hf_secret["keyToEnv"] == [{"secretKey": "token", "envVar": "HF_TOKEN"}]
    # The spec names the Secret; no value of it appears anywhere.
    assert "value" not in json.dumps(hf_secret)
    assert executor["pvcMount"][0]["mountPath"] == "/hf-cache"
    assert executor["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"] == "hf-cache"
    assert executor["activeDeadlineSeconds"] == str(settings.kubernetes.train_timeout_seconds)
    retry = pipeline_spec["root"]["dag"]["tasks"]["train-op"]["retryPolicy"]
    assert retry["maxRetryCount"] == settings.kubernetes.retries


def test_placement_without_a_pvc_mounts_none(tmp_path: Path) -> None:
    _, executor = compile_one_task(load_settings("gke", ["kubernetes.hf_cache_pvc=null"]), tmp_path)
    assert "pvcMount" not in executor
    assert executor["secretAsEnv"][0]["secretName"] == "hf-token"


def test_placement_refuses_settings_it_cannot_honour() -> None:
    with pytest.raises(ValueError, match="gke profile"):
        apply_h100_placement(train_op, load_settings("local"))
    settings = load_settings("gke", ["train.nproc_per_node=4"])

    refused: list[str] = []

    @dsl.pipeline(name="too-many")
    def too_many():  # the body runs when the pipeline is defined
        data = dsl.importer(artifact_uri="gs://bucket/prepared", artifact_class=dsl.Dataset)
        task = train_op(data=data.output, base_model="m", config="{}")
        with pytest.raises(ValueError, match="accelerator_count=1") as error:
            apply_h100_placement(task, settings)
        refused.append(str(error.value))

    assert too_many is not None and len(refused) == 1


def test_component_trains_through_kfp_local(kfp_local: Path, tmp_path: Path) -> None:
    data = write_prepared(tmp_path / "prepared", train=16, val=8, test=2)
    base = tiny_base(tmp_path / "base", data)
    config = {
        "batch": {"batch_size": 4, "grad_accum": 1, "num_workers": 0, "max_length": 400},
        "optim": {"lr": 3e-3},
        "schedule": {"max_steps": 2, "eval_steps": 2, "save_steps": 2},
    }

    # The registry config is the one channel of the tracking URI: the training run goes there.
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = RegistryConfig(tracking_uri=tracking).to_parameter()

    @dsl.pipeline(name="train-local")
    def train_local():
        prepared = dsl.importer(artifact_uri=str(data), artifact_class=dsl.Dataset)
        train_op(
            data=prepared.output,
            base_model=str(base),
            config=json.dumps(config),
            registry=registry,
            pipeline_run_id="local-run",
        )

    train_local()
    (artifact,) = kfp_local.glob("train-local-*/train-op/model")
    outputs = json.loads((artifact.parent / "executor_output.json").read_text())
    (model,) = outputs["artifacts"]["model"]["artifacts"]
    assert model["metadata"]["kind"] == "lora" and model["metadata"]["final_step"] == 2
    assert (artifact / "adapter" / "adapter_model.safetensors").is_file()
    metadata = read_metadata(artifact)
    assert metadata.pipeline_run_id == "local-run"
    assert metadata.train_config["schedule"]["max_steps"] == 2
    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=tracking).get_run(metadata.mlflow_run_id)
    assert run.info.status == "FINISHED"
