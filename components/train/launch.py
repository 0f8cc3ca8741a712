"""Process launching: torchrun for several processes on one node, env defaults for one.

`uicap train --nproc-per-node N` re-executes itself through `torch.distributed.run`, which
starts N copies of the same command with RANK/WORLD_SIZE/... set; those copies see the
variables and train. DeepSpeed wants the same variables even for a single process, so
a one-process run gets them filled in with a free local port.
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

NPROC_OPTION = "--nproc-per-node"
_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def strip_option(argv: Sequence[str], option: str = NPROC_OPTION) -> list[str]:
    """`argv` without `option VALUE` / `option=VALUE` (the children must not relaunch)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def torchrun_command(nproc: int, cli_args: Sequence[str]) -> list[str]:
    """The command that runs `uicap <cli_args>` as `nproc` processes on this node."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "pipelines.cli",
        *strip_option(cli_args),
    ]


def exec_torchrun(nproc: int, cli_args: Sequence[str]) -> None:
    """Replace this process with torchrun, so signals (preemption) reach it directly."""
    command = torchrun_command(nproc, cli_args)
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


def run_train_cli(args: Sequence[str]) -> int:
    """Run `uicap train ARGS` as a child; SIGTERM/SIGINT are passed on so it can checkpoint."""
    child = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "train", *args])

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_train_step(
    data: str,
    base_model: str,
    output: str,
    config_yaml: str,
    checkpoint_uri: str = "",
    tracking_uri: str = "",
    pipeline_run_id: str = "",
    nproc_per_node: int = 1,
    replay_data: str = "",
) -> dict[str, float | int | str]:
    """The training step as a pipeline runs it; returns a summary for the artifact's metadata.

    Checkpoints mirrored to `checkpoint_uri` (gs://) survive the pod, so a retried task
    resumes there; their local copies are left out of the output artifact.
    """
    output_dir = Path(output)
    output_dir.mkdir(parents=True, exist_ok=True)
    config_path = output_dir / "train_config.yaml"
    config_path.write_text(config_yaml)
    args = ["--data", data, "--base-model", base_model, "--output", output]
    args += ["--config", str(config_path), "--nproc-per-node", str(nproc_per_node)]
    args += ["--no-progress"]
    if checkpoint_uri:
        args += ["--checkpoint-dir", checkpoint_uri]
    if tracking_uri:
        args += ["--tracking-uri", tracking_uri]
    if replay_data:
        args += ["--replay-data", replay_data]
    if pipeline_run_id:
        args += ["--pipeline-run-id", pipeline_run_id]
    code = run_train_cli(args)
    if code != 0:
        reason = "stopped by a signal after checkpointing" if code in (130, 143) else "failed"
        raise RuntimeError(f"uicap train {reason} (exit code {code}); a retry resumes")
    if checkpoint_uri.startswith("gs://"):
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
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
