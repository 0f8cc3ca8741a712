"""The train step: a training job, run in this process or as processes of its own.

A `TrainJob` is one run: the config (what it computes) and the paths and switches of this
invocation. `run_train_step` is what the KFP component calls: it writes the job beside the
output and starts the train package's own entry point on it, `python -m components.train
JOB`, as a child (one process), or through `torch.distributed.run`, which starts N copies
with RANK/WORLD_SIZE/... set (several GPUs on the node). `uicap train` builds the same job
from its options and runs it in process, or relaunches it through torchrun the same way.
DeepSpeed wants the rendezvous variables even for a single process, so a one-process run
gets them filled in with a free local port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from components.train.config import TrainConfig, parse_config

if TYPE_CHECKING:
    from components.train.recipe import RunInputs, TrainRecipe

JOB_FILE = "train_job.json"
ENTRY_MODULE = "components.train"
_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def pin_base_revision(config: TrainConfig, base_model: str) -> TrainConfig:
    """The config with the base's revision resolved to what it names now (a Hub commit
    sha, or a local folder's content hash), so a branch never reaches the artifact and
    every rank of a job loads the same weights."""
    from components.ingest.source import COMMIT_SHA, resolve_revision

    revision = config.base_revision
    if revision and COMMIT_SHA.fullmatch(revision) and not Path(base_model).exists():
        return config
    pinned = resolve_revision(base_model, revision, "model")
    return config.model_copy(update={"base_revision": pinned})


class TrainJob(BaseModel):
    """One training run: its config, and where it reads and writes."""

    model_config = ConfigDict(extra="forbid")

    config: TrainConfig
    data: str
    base_model: str
    output: str
    # A checkpoint folder, or a gs:// URI mirrored after every save (None: output/checkpoints).
    checkpoint_dir: str | None = None
    # A prepared general set whose train split is rehearsed (`replay_fraction`).
    replay_data: str | None = None
    # None: $MLFLOW_TRACKING_URI, else a SQLite store in the output.
    tracking_uri: str | None = None
    tracking: bool = True
    pipeline_run_id: str | None = None
    # Continue from the newest complete checkpoint (False: discard them and start over).
    resume: bool = True
    progress: bool = True

    def inputs(self) -> RunInputs:
        from components.train.recipe import RunInputs

        remote = self.checkpoint_dir if (self.checkpoint_dir or "").startswith("gs://") else None
        return RunInputs(
            data=Path(self.data),
            base_model=self.base_model,
            output=Path(self.output),
            checkpoint_dir=Path(self.checkpoint_dir)
            if self.checkpoint_dir and not remote
            else None,
            checkpoint_mirror=remote,
            replay_data=Path(self.replay_data) if self.replay_data else None,
            tracking_uri=self.tracking_uri,
            tracking=self.tracking,
            pipeline_run_id=self.pipeline_run_id,
            resume=self.resume,
            progress=self.progress,
        )

    def write(self) -> Path:
        """The job as JSON in its output folder, for a launched process to read."""
        path = Path(self.output) / JOB_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> TrainJob:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def train(job: TrainJob) -> TrainRecipe:
    """Run the job in this process; raises `Preempted` after checkpointing on a signal,
    `ResumeMismatchError` when the output holds another run's checkpoints."""
    from components.train.recipe import TrainRecipe

    recipe = TrainRecipe(job.config, job.inputs())
    recipe.run()
    return recipe


def describe(recipe: TrainRecipe) -> str:
    """One line on what a finished run did, for a terminal or a pod log."""
    config, st = recipe.config, recipe.state
    skipped = {split: item.skipped_counts() for split, item in recipe.index.items()}
    return (
        f"trained {config.family} ({'full' if config.full else 'LoRA'}) for {st.step} steps: "
        f"val loss {st.initial_val_loss or float('nan'):.4f} -> best {st.best_val_loss:.4f} "
        f"at step {st.best_step}; skipped {skipped} -> {recipe.output}"
    )


# --- launching ------------------------------------------------------------------------------


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def entry_command(job_path: Path) -> list[str]:
    """The train package's entry point on `job_path`, as one process."""
    return [sys.executable, "-m", ENTRY_MODULE, str(job_path)]


def torchrun_command(nproc: int, job_path: Path) -> list[str]:
    """The entry point on `job_path` as `nproc` processes on this node."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        ENTRY_MODULE,
        str(job_path),
    ]


def launch_command(nproc: int, job_path: Path) -> list[str]:
    return torchrun_command(nproc, job_path) if nproc > 1 else entry_command(job_path)


def exec_torchrun(nproc: int, job: TrainJob) -> None:
    """Replace this process with torchrun on `job`, so signals (preemption) reach it directly."""
    command = torchrun_command(nproc, job.write())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_single_process_env() -> None:
    """Rendezvous variables for a one-process DeepSpeed run started without a launcher."""
    if all(name in os.environ for name in _DIST_VARS):
        return
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))


def run_child(command: Sequence[str]) -> int:
    """Run `command`; SIGTERM/SIGINT are passed on so the training can checkpoint."""
    child = subprocess.Popen(list(command))

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- the pipeline's step --------------------------------------------------------------------


def run_train_step(
    data: str,
    base_model: str,
    output: str,
    config: str,
    base_revision: str = "",
    checkpoint_uri: str = "",
    tracking_uri: str | None = None,
    pipeline_run_id: str = "",
    nproc_per_node: int = 1,
    replay_data: str = "",
) -> dict[str, float | int | str]:
    """The training step as a pipeline runs it; returns a summary for the artifact's metadata.

    `config` is the TrainConfig as JSON (or YAML). Checkpoints mirrored to `checkpoint_uri`
    (gs://) survive the pod, so a retried task resumes there; their local copies are left
    out of the output artifact. `base_revision` (the run's resolved one) replaces the
    config's.
    """
    job = step_job(
        data,
        base_model,
        output,
        config,
        base_revision,
        checkpoint_uri,
        tracking_uri,
        pipeline_run_id,
        replay_data,
    )
    code = run_child(launch_command(nproc_per_node, job.write()))
    if code != 0:
        reason = "stopped by a signal after checkpointing" if code in (130, 143) else "failed"
        raise RuntimeError(f"training {reason} (exit code {code}); a retry resumes")
    output_dir = Path(output)
    if checkpoint_uri.startswith("gs://"):
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    return model_summary(output_dir)


def step_job(
    data: str,
    base_model: str,
    output: str,
    config: str,
    base_revision: str = "",
    checkpoint_uri: str = "",
    tracking_uri: str | None = None,
    pipeline_run_id: str = "",
    replay_data: str = "",
    *,
    pin: bool = True,
) -> TrainJob:
    """The training job of a pipeline's train step, with the run's base revision pinned
    (`pin=False`: as given, for a job that is shown, not run)."""
    parsed = parse_config(config, source="train step config")
    if base_revision:
        parsed = parsed.model_copy(update={"base_revision": base_revision})
    return TrainJob(
        config=pin_base_revision(parsed, base_model) if pin else parsed,
        data=data,
        base_model=base_model,
        output=output,
        checkpoint_dir=checkpoint_uri or None,
        replay_data=replay_data or None,
        tracking_uri=tracking_uri,
        pipeline_run_id=pipeline_run_id or None,
        progress=False,
    )


def model_summary(output_dir: Path) -> dict[str, float | int | str]:
    """What the model artifact's metadata says of a finished training."""
    metadata = json.loads((output_dir / "uicap_model.json").read_text())
    metrics = metadata["metrics"]
    return {
        "family": metadata["family"],
        "kind": metadata["kind"],
        "best_val_loss": metrics["best_val_loss"],
        "best_step": metrics["best_step"],
        "final_step": metrics["final_step"],
        "skipped": sum(sum(reasons.values()) for reasons in metrics["skipped"].values()),
    }
