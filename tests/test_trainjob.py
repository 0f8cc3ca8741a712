"""The TrainJob launcher against a loopback stand-in for the Kubernetes API.

The stand-in (tests/support/kube_standin.py) validates each TrainJob against Kubeflow
Trainer v2.3.0's CRD and runs its nodes as local processes with the torch plugin's PET_*
environment. The launcher's paths run on small commands; the real training runs on two
nodes (gloo, CPU) whose disks are separate, with the checkpoints on the GCS emulator.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from components import storage
from components.captioner.artifact import read_metadata
from components.train.run import TrainJob
from components.trainjob.launcher import TrainJobFailed, TrainJobLauncher
from components.trainjob.manifest import TrainJobTemplate, job_json_of, job_name, render
from components.trainjob.step import run_trainjob_step
from pipelines.cli import app
from pipelines.settings import load_settings
from tests.support.crd_schema import TRAINJOB_CRD, assert_valid, crd_errors
from tests.support.kube_standin import KubeStandIn, RuntimePolicy

RUNTIME = "uicap-torch-distributed"
RUNTIME_MANIFEST = (
    Path(__file__).resolve().parents[1] / "manifests/base/pipeline/trainingruntime.yaml"
)
# The TrainJob CRD's CEL rule on names (the schema validator leaves CEL out).
RFC1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAMESPACE = "kubeflow"
SMALL_TRAIN = {
    "batch": {
        "batch_size": 4,
        "grad_accum": 1,
        "num_workers": 0,
        "max_length": 400,
        "max_skip_fraction": 0.05,  # ui_data's two too-long train records are 4% of it
    },
    "optim": {"lr": 3e-3},
    "schedule": {"max_steps": 6, "eval_steps": 2, "save_steps": 2, "log_steps": 1},
}


def template(nodes: int = 2, **update: Any) -> TrainJobTemplate:
    fields: dict[str, Any] = {
        "runtime": RUNTIME,
        "image": "trainer:test",
        "num_nodes": nodes,
        "proc_per_node": 1,
        "accelerator_type": "nvidia.com/gpu",
        "gpus_per_node": 0,
        "cpu_limit": "1",
        "memory_limit": "4Gi",
        "active_deadline_seconds": 600,
        "termination_grace_seconds": 5,
    }
    return TrainJobTemplate(**{**fields, **update})


def shipped_runtime_policy() -> RuntimePolicy:
    """The restart budget of the TrainingRuntime that manifests/ ships."""
    runtime = yaml.safe_load(RUNTIME_MANIFEST.read_text())
    assert runtime["metadata"]["name"] == RUNTIME
    return RuntimePolicy(runtime["spec"]["template"]["spec"]["failurePolicy"]["maxRestarts"])


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[KubeStandIn]:
    server = KubeStandIn(
        tmp_path / "cluster",
        runtimes={RUNTIME: shipped_runtime_policy()},
        secrets={"hf-token": {"token": "hf_standin"}},
        validate=lambda obj: crd_errors(obj, TRAINJOB_CRD),
    )
    try:
        yield server
    finally:
        server.close()


def launcher_for(standin: KubeStandIn, lines: list[str] | None = None) -> TrainJobLauncher:
    api = client.ApiClient(client.Configuration(host=standin.url))
    say = lines.append if lines is not None else print
    return TrainJobLauncher(api, NAMESPACE, poll_seconds=0.2, say=say)


def script_job(script: str, name: str = "uicap-train-test", **update: Any) -> dict[str, Any]:
    """A TrainJob whose nodes run `script` (python -c), for the launcher's own paths."""
    manifest = render(template(**update), name, "{}", namespace=NAMESPACE, run_id="run-1")
    manifest["spec"]["trainer"]["command"] = [sys.executable, "-c"]
    manifest["spec"]["trainer"]["args"] = [script]
    return manifest


# --- what the settings make --------------------------------------------------------------


def test_trainjob_show_prints_the_job_of_two_h100_nodes() -> None:
    result = CliRunner().invoke(
        app,
        [
            "trainjob",
            "show",
            "--set",
            "kubernetes.train_launcher=trainjob",
            "--set",
            "kubernetes.train_nodes=2",
        ],
    )
    assert result.exit_code == 0, result.output
    job = yaml.safe_load(result.output)
    trainer = job["spec"]["trainer"]
    settings = load_settings("gke")
    kube = settings.kubernetes
    assert kube is not None
    assert trainer["numNodes"] == 2
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == kube.accelerator_count
    assert trainer["command"] == ["torchrun"]
    assert not any(e["name"].startswith("PET_") for e in trainer["env"])
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
        "replicatedJobs"
    ][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    # The ReadWriteOnce Hub cache cannot attach to two nodes: each downloads the base.
    assert all(v["name"] != "hf-cache" for v in pod["volumes"])
    assert_valid(job, TRAINJOB_CRD)
    assert re.fullmatch(RFC1035, job["metadata"]["name"]) and len(job["metadata"]["name"]) <= 40
    carried = TrainJob.model_validate(job_json_of(job))
    assert carried.config == settings.train.config()
    assert carried.output.startswith("gs://") and carried.checkpoint_dir.startswith("gs://")


def test_several_nodes_need_the_trainjob_launcher() -> None:
    from pipelines.settings import SettingsError

    with pytest.raises(SettingsError, match="train_launcher=trainjob"):
        load_settings("gke", ["kubernetes.train_nodes=2"])


def test_job_names_are_stable_per_run_and_task() -> None:
    assert job_name("run-1") == job_name("run-1")
    assert job_name("run-1") != job_name("run-2") != job_name("run-1", "train-2")
    name = job_name("3f2b" * 20, "a-very-long-task-name-indeed")
    assert len(name) <= 40 and name[0].isalpha() and name[-1].isalnum()


# --- the launcher's paths ----------------------------------------------------------------


def test_a_new_job_runs_to_complete_and_node0s_log_is_followed(standin: KubeStandIn) -> None:
    lines: list[str] = []
    script = "import os; print('hello from node', os.environ['PET_NODE_RANK'], flush=True)"
    job = launcher_for(standin, lines).run(script_job(script, kueue_queue="team-a"))
    assert job["status"]["conditions"][-1]["type"] == "Complete"
    text = "\n".join(lines)
    assert "waiting for Kueue to admit it to queue team-a" in text
    assert "[node-0] hello from node 0" in text and "node 1" not in text
    created = standin.created[0]
    assert created["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"


def test_a_retry_attaches_to_its_running_job(standin: KubeStandIn) -> None:
    manifest = script_job("import time; time.sleep(2)")
    launcher = launcher_for(standin)
    launcher.create(manifest)
    lines: list[str] = []
    launcher_for(standin, lines).run(manifest)
    assert len(standin.created) == 1
    assert any("attaching to it" in line for line in lines)


def test_a_retry_of_a_completed_job_does_not_train_again(standin: KubeStandIn) -> None:
    manifest = script_job("print('trained', flush=True)")
    launcher_for(standin).run(manifest)
    lines: list[str] = []
    launcher_for(standin, lines).run(manifest)
    assert len(standin.created) == 1
    assert any("already completed: not training again" in line for line in lines)


def test_a_failed_job_says_why_and_a_retry_recreates_it(
    standin: KubeStandIn, tmp_path: Path
) -> None:
    marker = tmp_path / "starts"
    budget = shipped_runtime_policy().max_restarts
    # Node 1 fails on every start the runtime's restarts allow, then on a fresh job succeeds.
    script = (
        "import os, pathlib, sys\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "n = int(m.read_text()) if m.exists() else 0\n"
        "if os.environ['PET_NODE_RANK'] == '1':\n"
        "    m.write_text(str(n + 1))\n"
        f"    if n <= {budget}: sys.exit('node 1: out of memory (simulated)')\n"
    )
    manifest = script_job(script)
    with pytest.raises(TrainJobFailed) as failure:
        launcher_for(standin).run(manifest)
    message = str(failure.value)
    assert "ReachedMaxRestarts" in message
    assert "exit code 1 (Error)" in message and "Restarting" in message
    lines: list[str] = []
    job = launcher_for(standin, lines).run(manifest)
    assert job["status"]["conditions"][-1]["type"] == "Complete"
    assert len(standin.created) == 2
    assert any("deleting it and creating it again" in line for line in lines)


def test_a_job_of_another_run_is_never_adopted(standin: KubeStandIn) -> None:
    theirs = script_job("import time; time.sleep(5)")
    launcher_for(standin).create(theirs)
    mine = json.loads(json.dumps(theirs))
    mine["metadata"]["labels"]["uicap.dev/pipeline-run"] = "run-2"
    with pytest.raises(RuntimeError, match="belongs to pipeline run 'run-1'"):
        launcher_for(standin).run(mine)
    assert standin.jobs  # untouched


def test_a_missing_runtime_is_named_before_anything_is_created(standin: KubeStandIn) -> None:
    manifest = script_job("pass")
    manifest["spec"]["runtimeRef"]["name"] = "torch-distributed-typo"
    with pytest.raises(RuntimeError, match="TrainingRuntime torch-distributed-typo does not"):
        launcher_for(standin).run(manifest)
    assert not standin.created


def test_the_stand_in_refuses_what_the_api_server_refuses(standin: KubeStandIn) -> None:
    manifest = script_job("pass")
    manifest["spec"]["trainer"]["env"] = [{"name": "PET_NNODES", "value": "3"}]
    with pytest.raises(client.exceptions.ApiException) as refused:
        launcher_for(standin).create(manifest)
    assert refused.value.status == 422 and "PET_NNODES" in refused.value.body


def test_cancelling_the_launcher_deletes_its_job(standin: KubeStandIn, tmp_path: Path) -> None:
    manifest = script_job("import time; print('training', flush=True); time.sleep(600)")
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps(manifest))
    code = (
        "import json, sys\n"
        "from kubernetes import client\n"
        "from components.trainjob.launcher import TrainJobLauncher\n"
        f"api = client.ApiClient(client.Configuration(host={standin.url!r}))\n"
        f"TrainJobLauncher(api, {NAMESPACE!r}, poll_seconds=0.2).run("
        f"json.loads(open({str(spec)!r}).read()))\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    name = manifest["metadata"]["name"]
    standin.wait_for(lambda: "training" in standin.log_of(name, 0), 30, "node 0 to run")
    nodes = [n.process for n in standin.job(name).nodes]
    child.send_signal(signal.SIGTERM)
    output, _ = child.communicate(timeout=60)
    assert child.returncode != 0
    assert "cancelled: deleting TrainJob" in output
    assert not standin.jobs
    assert all(process.poll() is not None for process in nodes)


# --- real training on two nodes ------------------------------------------------------------


def test_two_nodes_train_resume_after_a_lost_node_and_write_the_model(
    standin: KubeStandIn, ui_data: Path, base: Path, gcs_emulator: Any, tmp_path: Path
) -> None:
    standin.env["STORAGE_EMULATOR_HOST"] = os.environ["STORAGE_EMULATOR_HOST"]
    standin.env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    checkpoints = f"{gcs_emulator.root}/checkpoints/lineage-key"
    config = json.dumps({"family": "minicpmv4_6", **SMALL_TRAIN})
    output = tmp_path / "model"
    lines: list[str] = []
    name = job_name("run-1")

    def lose_node_1_after_the_first_checkpoint() -> None:
        marker = storage.join(checkpoints, "step-2", "COMPLETE")
        standin.wait_for(lambda: storage.exists(marker), 240, "the step-2 checkpoint")
        standin.kill_node(name, 1)

    import threading

    killer = threading.Thread(target=lose_node_1_after_the_first_checkpoint, daemon=True)
    killer.start()
    summary = run_trainjob_step(
        template=template().to_parameter(),
        data=str(ui_data),
        base_model=str(base),
        output=str(output),
        config=config,
        checkpoint_uri=checkpoints,
        pipeline_run_id="run-1",
        launcher=launcher_for(standin, lines),
    )
    killer.join(timeout=1)
    text = "\n".join(lines)
    assert "restart attempt 1" in text, text[-3000:]
    # The restarted nodes resumed from the checkpoint the lost node had completed.
    resumed = standin.log_of(name, 0, attempt=1)
    assert "(step 2 of 6)" in resumed or "(step 4 of 6)" in resumed, resumed[-3000:]
    # Node 1 wrote its RNG state on its own disk; the sealed checkpoint holds both ranks'.
    sealed = json.loads(storage.read_text(storage.join(checkpoints, "step-6", "COMPLETE")))
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(sealed["files"])
    assert sealed["num_processes"] == 2
    metadata = read_metadata(output)
    assert metadata.metrics.final_step == summary["final_step"] == 6
    assert (summary["trainjob"], summary["nodes"], summary["restarts"]) == (name, 2, 1)
    assert (output / "adapter" / "adapter_model.safetensors").is_file()
    assert not standin.jobs  # deleted once the model was copied
    assert not storage.list_files(f"{checkpoints}/jobs/")

    # The same job on one node now: its checkpoints belong to two processes.
    job = job_json_of(standin.created[0])
    alone = {k: v for k, v in os.environ.items() if not k.startswith(("PET_", "RANK", "WORLD"))}
    single = subprocess.run(
        [sys.executable, "-m", "components.train", "--job-json", json.dumps(job)],
        env={**alone, "UICAP_SCRATCH": str(tmp_path / "one-node")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 2, single.stderr[-3000:]
    assert "written by 2 training processes and this run has 1" in single.stderr


# --- the whole local pipeline -------------------------------------------------------------


def test_the_local_pipeline_trains_on_a_trainjob_and_survives_a_lost_node(
    standin: KubeStandIn, gcs_emulator: Any, tmp_path: Path
) -> None:
    """`uicap run` with the trainjob launcher: kfp.local runs every step, the train step
    creates a TrainJob of two nodes on the stand-in, one node is lost after the first
    checkpoint, the job restarts and resumes; evaluate and register read its model."""
    standin.env["STORAGE_EMULATOR_HOST"] = os.environ["STORAGE_EMULATOR_HOST"]
    root = f"{gcs_emulator.root}/pipeline-root"
    overrides = [
        # Checkpoints and the job's model under gs://: the nodes share no disk.
        f"pipeline_root={root}",
        "kubernetes.runtime_image=runtime:test",
        "kubernetes.trainer_image=trainer:test",
        "kubernetes.train_launcher=trainjob",
        "kubernetes.train_nodes=2",
        "train.schedule.max_steps=6",
        "train.schedule.save_steps=2",
        "train.schedule.eval_steps=2",
    ]
    env = {
        **os.environ,
        "KUBECONFIG": str(standin.kubeconfig(tmp_path / "kubeconfig")),
        "TMPDIR": str(tmp_path),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }

    def lose_node_1_after_the_first_checkpoint() -> None:
        def sealed() -> bool:
            files = storage.list_files(f"{root}/checkpoints/")
            return any(f.endswith("/step-2/COMPLETE") for f in files)

        standin.wait_for(sealed, 600, "the step-2 checkpoint")
        (name,) = [job.name for job in standin.jobs.values()]
        standin.kill_node(name, 1)

    import threading

    killer = threading.Thread(target=lose_node_1_after_the_first_checkpoint, daemon=True)
    killer.start()
    work = tmp_path / "work"
    command = [sys.executable, "-m", "pipelines.cli", "run", "--workdir", str(work)]
    for override in overrides:
        command += ["--set", override]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500)
    if os.environ.get("UICAP_DUMP_RUN"):
        Path(os.environ["UICAP_DUMP_RUN"]).write_text(run.stdout + "\n---stderr---\n" + run.stderr)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "gate decision" in run.stdout
    assert re.search(
        r"train +succeeded .*; TrainJob uicap-train-\w+ on 2 nodes, restarted 1x", run.stdout
    )
    (steps_file,) = work.glob("runs/*/logs/steps.json")
    steps = {row["step"]: row for row in json.loads(steps_file.read_text())}
    assert {"train", "evaluate", "register"} <= {
        s for s, r in steps.items() if r["status"] == "succeeded"
    }
    (created,) = standin.created
    name = created["metadata"]["name"]
    assert created["spec"]["trainer"]["numNodes"] == 2
    train_log = next(work.glob("runs/*/logs/train.log")).read_text()
    assert "restart attempt 1" in train_log, train_log[-3000:]
    assert "resuming from" in standin.log_of(name, 0, attempt=1)
    assert not standin.jobs  # the launcher deleted the finished job
