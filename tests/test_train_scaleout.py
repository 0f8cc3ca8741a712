"""Scale-out paths run for real on the CPU: DeepSpeed ZeRO-2/3 on one rank, torchrun with gloo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from components.captioner.artifact import load_captioner, read_metadata
from components.prepare.conversations import read_split
from components.train.config import TrainConfig
from components.train.deepspeed import deepspeed_config
from components.train.run import TrainJob, launch_command, torchrun_command
from tests.support.preempt import PREEMPTED_EXIT, sigterm_during_step, uicap_command

SMALL = [
    "batch.batch_size=4",
    "batch.grad_accum=2",
    "batch.num_workers=0",
    "batch.max_length=400",
    "batch.max_skip_fraction=0.05",  # ui_data's two too-long train records are 4% of it
    "optim.lr=3e-3",
    "schedule.max_steps=3",
    "schedule.eval_steps=3",
    "schedule.save_steps=2",
]
# The rendezvous variables a launcher would set; the runs below must work without them.
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def train_command(data: Path, base: Path, output: Path, *extra: str) -> list[str]:
    args = ["train", "--data", str(data), "--base-model", str(base), "--output", str(output)]
    args += ["--no-progress", *extra]
    for override in SMALL:
        args += ["--set", override]
    return uicap_command(args)


def uicap_train(
    data: Path, base: Path, output: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    return subprocess.run(
        train_command(data, base, output, *extra),
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_shipped_deepspeed_configs_are_filled_from_the_training_config() -> None:
    for stage, number in (("zero2", 2), ("zero3", 3)):
        config = deepspeed_config(
            stage, micro_batch=4, grad_accum=8, max_grad_norm=0.5, bf16=True, world_size=2
        )
        assert config["zero_optimization"]["stage"] == number
        assert config["train_micro_batch_size_per_gpu"] == 4
        assert config["gradient_accumulation_steps"] == 8
        assert config["train_batch_size"] == 64
        assert config["gradient_clipping"] == 0.5
        assert config["bf16"] == {"enabled": True}
        assert "auto" not in json.dumps(config)
    with pytest.raises(ValueError, match="zero1"):
        deepspeed_config(
            "zero1", micro_batch=1, grad_accum=1, max_grad_norm=1, bf16=False, world_size=1
        )


def test_torchrun_launches_the_train_packages_entry_point_on_the_job(tmp_path: Path) -> None:
    job = TrainJob(config=TrainConfig(), data="d", base_model="m", output=str(tmp_path))
    path = job.write()
    assert TrainJob.read(path) == job
    command = torchrun_command(4, path)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=4" in command and "--standalone" in command
    # The training processes run the train package, not the CLI above it.
    assert command[-3:] == ["-m", "components.train", str(path)]
    assert launch_command(1, path) == [sys.executable, "-m", "components.train", str(path)]
    assert not any("pipelines" in part for part in command)


def test_deepspeed_zero2_trains_checkpoints_and_resumes(
    ui_data: Path, base: Path, tmp_path: Path
) -> None:
    # A real SIGTERM from outside while step 2 runs.
    first = sigterm_during_step(
        train_command(ui_data, base, tmp_path, "--deepspeed", "zero2", "--no-tracking"),
        2,
        reset=lambda: shutil.rmtree(tmp_path, ignore_errors=True),
        unset=DIST_VARS,
    )
    assert first.returncode == PREEMPTED_EXIT, first.output[-3000:]
    assert first.stopped_at == 2, (first.attempts, first.output[-3000:])
    checkpoint = tmp_path / "checkpoints" / "step-2"
    # DeepSpeed's own layout: the engine wrote partitioned optimizer states.
    assert (checkpoint / "pytorch_model" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").is_file()
    assert (checkpoint / "COMPLETE").is_file()

    second = uicap_train(ui_data, base, tmp_path, "--deepspeed", "zero2", "--no-tracking")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from" in second.stderr and "(step 2 of 3)" in second.stderr
    metadata = read_metadata(tmp_path)
    assert metadata.train_config["deepspeed"] == "zero2"
    assert metadata.metrics.final_step == 3
    assert metadata.metrics.best_val_loss < metadata.metrics.initial_val_loss
    assert load_file(tmp_path / "adapter" / "adapter_model.safetensors")


def test_deepspeed_zero3_single_rank_writes_an_adapter(
    ui_data: Path, base: Path, tmp_path: Path
) -> None:
    result = uicap_train(ui_data, base, tmp_path, "--deepspeed", "zero3", "--no-tracking")
    assert result.returncode == 0, result.stderr[-3000:]
    state = tmp_path / "checkpoints" / "step-3" / "pytorch_model"
    assert (state / "zero_pp_rank_0_mp_rank_00_model_states.pt").is_file()
    # ZeRO-3 partitions parameters; the adapter is gathered whole before it is written.
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert weights and all(t.numel() > 0 for t in weights.values())
    captioner = load_captioner(tmp_path)
    assert captioner.caption([read_split(ui_data, "test")[0].turn()], max_new_tokens=3)


def test_torchrun_two_processes_on_gloo_write_one_adapter(
    ui_data: Path, base: Path, tmp_path: Path
) -> None:
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    result = uicap_train(ui_data, base, tmp_path / "out", "--nproc-per-node", "2", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained minicpmv4_6") == 1  # only rank 0 reports
    output = tmp_path / "out"
    checkpoint = output / "checkpoints" / "step-3"
    assert {p.name for p in checkpoint.glob("random_states_*.pkl")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["identity"]["num_processes"] == 2
    # Each rank takes every other batch: 48 records / 4 per batch / 2 ranks = 6 per epoch.
    assert (state["epoch"], state["batch_in_epoch"]) == (0, 6)
    metadata = read_metadata(output)
    assert metadata.metrics.samples_seen == 3 * 2 * 4 * 2  # steps x accum x batch x ranks
    assert len(list(output.glob("adapter*"))) == 1
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("uicap-train").experiment_id])
    assert len(runs) == 1 and runs[0].data.params["num_processes"] == "2"
