"""The compiled gke pipeline: GPU placement, secrets by name only, gating, exit handler.

These read the IR YAML that `uicap compile` writes, as a KFP server would receive it.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from components.evaluate.config import EvaluateConfig
from components.prepare.config import PrepareConfig
from components.register.config import RegistryConfig
from components.train.config import parse_config
from pipelines.cli import app
from pipelines.settings import load_settings

SENTINELS = {
    "HF_TOKEN": "hf_sentinel_never_in_yaml_7f3a",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-sentinel-password-91c2",
    "UICAP_WEBHOOK_URL": "https://hooks.example.invalid/sentinel-4d1e",
}


Compiled = tuple[str, dict[str, Any], dict[str, Any]]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Compiled:
    """`uicap compile --profile gke`, with secret-looking values in the environment."""
    output = tmp_path_factory.mktemp("compiled") / "retrain.yaml"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SENTINELS.items():
            patch.setenv(name, value)
        result = CliRunner().invoke(
            app, ["compile", "--profile", "gke", "--output", str(output)], catch_exceptions=False
        )
    assert result.exit_code == 0, result.output
    text = output.read_text()
    spec, platform = yaml.safe_load_all(text)
    return text, spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _tasks(spec: dict[str, Any], component: str) -> dict[str, Any]:
    return spec["components"][component]["dag"]["tasks"]


def _executor(spec: dict[str, Any], task: dict[str, Any]) -> str:
    return spec["components"][task["componentRef"]["name"]]["executorLabel"]


def test_train_task_gets_an_h100_with_node_selector_and_toleration(compiled) -> None:
    _, spec, kube = compiled
    container = spec["deploymentSpec"]["executors"]["exec-train-op"]["container"]
    assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert container["resources"]["accelerator"]["resourceCount"] == "1"
    assert container["image"] == load_settings("gke").kubernetes.trainer_image
    train = kube["exec-train-op"]
    assert train["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb"
    }
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in train[
        "tolerations"
    ]
    assert any(m["mountPath"] == "/dev/shm" for m in train["emptyDirMounts"])


def test_cpu_steps_stay_off_the_gpu_pool_and_run_the_pinned_runtime_image(compiled) -> None:
    _, spec, kube = compiled
    runtime = load_settings("gke").kubernetes.runtime_image
    for name in ("ingest-op", "lineage-op", "prepare-op", "register-op", "gate-op", "promote-op"):
        executor = spec["deploymentSpec"]["executors"][f"exec-{name}"]["container"]
        assert executor["image"] == runtime, name
        assert "accelerator" not in executor.get("resources", {}), name
        assert "nodeSelector" not in kube.get(f"exec-{name}", {}), name


def test_secrets_are_referenced_by_name_and_no_value_is_written(compiled) -> None:
    text, _, kube = compiled
    for value in SENTINELS.values():
        assert value not in text
    names = {
        executor: {ref["secretName"] for ref in config.get("secretAsEnv", [])}
        for executor, config in kube.items()
    }
    assert "hf-token" in names["exec-train-op"]
    assert "hf-token" in names["exec-ingest-op"]
    assert "hf-token" in names["exec-lineage-op"]  # it resolves revisions on the Hub
    assert "mlflow-credentials" in names["exec-register-op"]
    assert "mlflow-credentials" in names["exec-promote-op"]
    assert "uicap-notify" in names["exec-notify-op"]


def test_promote_runs_only_under_the_gate_and_the_rest_only_when_data_changed(compiled) -> None:
    _, spec, _ = compiled
    handler = _tasks(spec, "comp-exit-handler-1")
    # Nothing downloads data before the lineage check: ingest is inside the condition.
    assert set(handler) == {"lineage-op", "condition-2"}
    new_data = handler["condition-2"]["triggerPolicy"]["condition"]
    assert "lineage-op-Output" in new_data
    inner = _tasks(spec, "comp-condition-2")
    names = {"ingest-op", "prepare-op", "train-op", "evaluate-op", "register-op", "gate-op"}
    assert names <= set(inner)
    assert "promote-op" not in inner
    gated = inner["condition-3"]["triggerPolicy"]["condition"]
    assert gated == "inputs.parameter_values['pipelinechannel--gate-op-Output'] == true"
    assert set(_tasks(spec, "comp-condition-3")) == {"promote-op"}


def test_exit_handler_always_runs_the_notification(compiled) -> None:
    _, spec, _ = compiled
    root = spec["root"]["dag"]["tasks"]
    notify = root["notify-op"]
    assert notify["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert notify["dependentTasks"] == ["exit-handler-1"]
    status = spec["components"]["comp-notify-op"]["inputDefinitions"]["parameters"]["status"]
    assert status["parameterType"] == "TASK_FINAL_STATUS"


def test_caching_and_retries_follow_what_each_step_touches(compiled) -> None:
    _, spec, _ = compiled
    handler = _tasks(spec, "comp-exit-handler-1")
    inner = _tasks(spec, "comp-condition-2")
    assert handler["lineage-op"]["cachingOptions"] == {}  # never cached: it asks the Hub
    assert handler["lineage-op"]["retryPolicy"]["maxRetryCount"] >= 1
    # ingest reads an immutable revision (a sha or a content hash), so it may be cached.
    for name in ("ingest-op", "prepare-op", "train-op", "evaluate-op"):
        assert inner[name]["cachingOptions"] == {"enableCache": True}, name
    assert inner["ingest-op"]["retryPolicy"]["maxRetryCount"] >= 1
    for name in ("champion-op", "register-op", "gate-op"):
        assert inner[name]["cachingOptions"] == {}, name
    assert inner["train-op"]["retryPolicy"]["maxRetryCount"] >= 1
    assert inner["register-op"]["retryPolicy"]["maxRetryCount"] >= 1
    # A retried train task must find its checkpoints: they come from the lineage check,
    # not from anything that changes between attempts.
    checkpoint = inner["train-op"]["inputs"]["parameters"]["checkpoint_uri"]
    assert checkpoint["componentInputParameter"] == "pipelinechannel--lineage-op-checkpoint_uri"


def test_pipeline_root_and_parameters_come_from_the_profile(compiled) -> None:
    _, spec, _ = compiled
    settings = load_settings("gke")
    assert spec["defaultPipelineRoot"] == settings.pipeline_root
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["dataset"]["defaultValue"] == settings.data.dataset
    # A schedule follows the dataset's main branch; each run resolves it to a sha.
    assert params["revision"]["defaultValue"] == settings.data.revision == "main"
    assert params["reuse_root"]["defaultValue"] == f"{settings.pipeline_root}/reuse"
    assert params["column_map"]["defaultValue"] == "wave-ui"
    assert params["max_quarantine_fraction"]["parameterType"] == "NUMBER_DOUBLE"
    assert params["nproc_per_node"]["parameterType"] == "NUMBER_INTEGER"
    assert params["checkpoint_root"]["defaultValue"].startswith("gs://")
    # Each step's config is one JSON parameter; the registry's carries the tracking URI.
    assert PrepareConfig.from_parameter(params["prepare_config"]["defaultValue"]) == (
        settings.prepare
    )
    assert parse_config(params["train_config"]["defaultValue"]) == settings.train.config()
    evaluate = EvaluateConfig.from_parameter(params["evaluate_config"]["defaultValue"])
    assert evaluate == settings.evaluate.config()
    registry = RegistryConfig.from_parameter(params["registry"]["defaultValue"])
    assert registry.tracking_uri == settings.registry.tracking_uri
    loose = {"tracking_uri", "max_image_side", "html_budget", "eval_batch_size", "family"}
    assert not loose & set(params)


def test_each_step_gets_its_config_and_the_registry_from_the_same_parameters(compiled) -> None:
    _, spec, _ = compiled
    handler = _tasks(spec, "comp-exit-handler-1")
    inner = _tasks(spec, "comp-condition-2")

    def source(task: dict[str, Any], name: str) -> str:
        return task["inputs"]["parameters"][name]["componentInputParameter"]

    lineage = handler["lineage-op"]
    assert source(lineage, "prepare_config") == "pipelinechannel--prepare_config"
    assert source(lineage, "train_config") == "pipelinechannel--train_config"
    assert source(inner["prepare-op"], "config") == "pipelinechannel--prepare_config"
    assert source(inner["train-op"], "config") == "pipelinechannel--train_config"
    assert source(inner["evaluate-op"], "config") == "pipelinechannel--evaluate_config"
    assert source(lineage, "registry") == "pipelinechannel--registry"
    for name in ("train-op", "champion-op", "evaluate-op", "register-op", "gate-op"):
        assert source(inner[name], "registry") == "pipelinechannel--registry", name
        assert "tracking_uri" not in inner[name]["inputs"]["parameters"], name


def test_later_steps_read_the_revisions_the_lineage_step_resolved(compiled) -> None:
    _, spec, kube = compiled
    inner = _tasks(spec, "comp-condition-2")

    def channel(task: dict[str, Any], name: str) -> str:
        return task["inputs"]["parameters"][name]["componentInputParameter"]

    assert channel(inner["ingest-op"], "revision") == "pipelinechannel--lineage-op-data_revision"
    for name in ("train-op", "prepare-op"):  # prepare counts the HTML in the base's tokens
        base = channel(inner[name], "base_revision")
        assert base == "pipelinechannel--lineage-op-base_revision", name
    # evaluate takes the base the candidate artifact records, not the branch in the settings.
    assert "base_model" not in inner["evaluate-op"]["inputs"].get("parameters", {})
    for name in ("exec-ingest-op", "exec-prepare-op", "exec-train-op", "exec-evaluate-op"):
        (mount,) = kube[name]["pvcMount"]
        assert mount["mountPath"] == "/hf-cache", name


def test_components_never_import_the_pipeline_package() -> None:
    root = Path(__file__).parents[1] / "components"
    importers = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "pipelines" or name.startswith("pipelines.") for name in names):
                importers.append(str(path.relative_to(root)))
    assert importers == []


def test_local_profile_compiles_without_cluster_placement(tmp_path: Path) -> None:
    from pipelines.compile import compile_retrain

    path = compile_retrain(load_settings("local", [f"workdir={tmp_path}"]), tmp_path / "p.yaml")
    spec, *rest = yaml.safe_load_all(path.read_text())
    assert rest == []  # no kubernetes platform spec at all
    container = spec["deploymentSpec"]["executors"]["exec-train-op"]["container"]
    assert "accelerator" not in container.get("resources", {})
    assert "retryPolicy" not in _tasks(spec, "comp-condition-2")["ingest-op"]


def _built(tmp_path: Path, *, pushed: bool) -> Path:
    """An images/built.json as `make images` (and, when `pushed`, `make push`) writes it."""
    from pipelines.image_refs import BuiltImage, BuiltImages, write_images

    kube = load_settings("gke").kubernetes
    assert kube is not None
    rows = {}
    for role, reference in (("runtime", kube.runtime_image), ("trainer", kube.trainer_image)):
        fill = "a" if role == "runtime" else "b"
        rows[role] = BuiltImage(
            reference=reference,
            id="sha256:" + fill * 64,
            size_bytes=1,
            base="localhost/uicap/debian-base:bookworm",
            build_seconds=1,
            registry_digest=("sha256:" + fill * 63 + "0") if pushed else None,
        )
    path = tmp_path / "built.json"
    write_images(BuiltImages(**rows), path)
    return path


def test_compile_with_pushed_images_names_every_step_image_by_digest(tmp_path: Path) -> None:
    output = tmp_path / "retrain.yaml"
    built = _built(tmp_path, pushed=True)
    result = CliRunner().invoke(
        app,
        ["compile", "--profile", "gke", "--images", str(built), "--output", str(output)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    spec, _ = yaml.safe_load_all(output.read_text())
    executors = spec["deploymentSpec"]["executors"]
    registry = "europe-west4-docker.pkg.dev/uicap-ml/uicap"
    trainer = f"{registry}/trainer@sha256:{'b' * 63}0"
    runtime = f"{registry}/runtime@sha256:{'a' * 63}0"
    images = {n: e["container"]["image"] for n, e in executors.items() if "container" in e}
    assert images.pop("exec-train-op") == trainer
    assert images.pop("exec-evaluate-op") == trainer
    assert set(images.values()) == {runtime}


def test_compile_refuses_images_that_were_never_pushed(tmp_path: Path) -> None:
    built = _built(tmp_path, pushed=False)
    result = CliRunner().invoke(
        app,
        ["compile", "--profile", "gke", "--images", str(built), "--output", str(tmp_path / "p")],
    )
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert "runtime:0.1.0 has no registry digest: push it first (`make push`)" in said
    assert not (tmp_path / "p").exists()


def test_a_containerized_local_run_puts_each_step_on_its_image(tmp_path: Path) -> None:
    from pipelines.compile import compile_retrain
    from pipelines.settings import StepImages

    settings = load_settings("local", [f"workdir={tmp_path}"]).model_copy(
        update={"images": StepImages(runtime="localhost/r:1", trainer="localhost/t:1")}
    )
    spec, *rest = yaml.safe_load_all(compile_retrain(settings, tmp_path / "p.yaml").read_text())
    assert rest == []
    executors = spec["deploymentSpec"]["executors"]
    images = {n: e["container"]["image"] for n, e in executors.items() if "container" in e}
    assert images.pop("exec-train-op") == images.pop("exec-evaluate-op") == "localhost/t:1"
    assert set(images.values()) == {"localhost/r:1"}


def test_a_local_build_is_never_pushed_to_the_clusters_registry(tmp_path: Path) -> None:
    from pipelines.image_refs import ImageRefsError, push, push_problems, read_images

    built = _built(tmp_path, pushed=False)
    local = read_images(built)
    problems = push_problems(local)
    assert any("local base localhost/uicap/debian-base:bookworm" in p for p in problems)
    # Refused before the engine is asked anything (no engine by that name exists here).
    with pytest.raises(ImageRefsError, match="not pushing a local build"):
        push(built, "no-such-engine")
    kernels = local.trainer.model_copy(update={"cuda_kernels": "skip"})
    assert "CUDA_KERNELS=skip" in push_problems(local.model_copy(update={"trainer": kernels}))[0]
    official = local.model_copy(
        update={
            role: getattr(local, role).model_copy(
                update={"base": "python:3.11-slim-bookworm@sha256:" + "1" * 64, "cuda_kernels": c}
            )
            for role, c in (("runtime", None), ("trainer", "build"))
        }
    )
    assert push_problems(official) == []


def test_the_trainjob_launcher_asks_for_no_gpu_and_carries_the_job(tmp_path: Path) -> None:
    output = tmp_path / "retrain.yaml"
    overrides = ["kubernetes.train_launcher=trainjob", "kubernetes.train_nodes=2"]
    args = ["compile", "--profile", "gke", "--output", str(output)]
    result = CliRunner().invoke(app, [*args, *(x for o in overrides for x in ("--set", o))])
    assert result.exit_code == 0, result.output
    spec, platform = yaml.safe_load_all(output.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert "exec-train-op" not in executors
    launcher = executors["exec-trainjob-op"]["container"]
    settings = load_settings("gke", overrides)
    assert launcher["image"] == settings.kubernetes.runtime_image
    assert "accelerator" not in launcher.get("resources", {})
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-trainjob-op"]
    assert "nodeSelector" not in kube and "tolerations" not in kube
    assert int(kube["activeDeadlineSeconds"]) > settings.kubernetes.train_timeout_seconds
    # The placement travels to the launcher as the TrainJob template parameter.
    template = spec["root"]["inputDefinitions"]["parameters"]["trainjob"]["defaultValue"]
    from components.trainjob.manifest import TrainJobTemplate

    parsed = TrainJobTemplate.from_parameter(template)
    assert (parsed.num_nodes, parsed.gpus_per_node) == (2, settings.kubernetes.accelerator_count)
    assert parsed.image == settings.kubernetes.trainer_image
    assert parsed.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    # Evaluate still runs on an H100 in the trainer image.
    assert executors["exec-evaluate-op"]["container"]["resources"]["accelerator"]
