"""`uicap train`: LoRA (or full) fine-tuning on a prepared directory, resumable by re-running."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.commands.logs import configure_logging

console = Console()


def train(
    data: Annotated[Path, typer.Option(help="Prepared directory (train.json, val.json, ...).")],
    base_model: Annotated[str, typer.Option(help="Hub id or local folder of the base model.")],
    output: Annotated[Path, typer.Option(help="Output folder: model artifact + checkpoints.")],
    config: Annotated[
        Path | None, typer.Option(help="Training config YAML (see TrainConfig).")
    ] = None,
    family: Annotated[
        str | None, typer.Option(help="Model family (default from config: minicpmv4_6).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config override key=value, e.g. optim.lr=3e-4 (repeatable)."),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Train every parameter, not LoRA.")] = False,
    deepspeed: Annotated[
        str | None, typer.Option(help="Shipped DeepSpeed config: zero2 | zero3.")
    ] = None,
    nproc_per_node: Annotated[
        int, typer.Option(help="Processes (GPUs) on this node; >1 relaunches via torchrun.")
    ] = 1,
    resume: Annotated[
        bool, typer.Option(help="Continue from the newest complete checkpoint in the output.")
    ] = True,
    checkpoint_dir: Annotated[
        str | None,
        typer.Option(help="Checkpoint folder, or a gs:// URI mirrored after every save."),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else a local store)."
        ),
    ] = None,
    replay_data: Annotated[
        Path | None,
        typer.Option(help="Prepared general set rehearsed during training (replay_fraction)."),
    ] = None,
    pipeline_run_id: Annotated[
        str | None, typer.Option(help="Pipeline run id to tag the MLflow run with.")
    ] = None,
    tracking: Annotated[bool, typer.Option(help="Log to MLflow.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fine-tune the captioner; re-running the same command resumes an interrupted run."""
    from components.ingest.source import SourceError
    from components.train.config import load_config
    from components.train.run import (
        TrainJob,
        exec_torchrun,
        launched_by_torchrun,
        pin_base_revision,
    )

    if nproc_per_node < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--nproc-per-node")
    overrides = list(set_ or [])
    if family:
        overrides.append(f"family={family}")
    if full:
        overrides.append("full=true")
    if deepspeed:
        overrides.append(f"deepspeed={deepspeed}")
    try:
        train_config = load_config(config, overrides)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--config/--set") from error
    try:
        train_config = pin_base_revision(train_config, base_model)
    except SourceError as error:
        raise typer.BadParameter(str(error), param_hint="--base-model") from error
    job = TrainJob(
        config=train_config,
        data=str(data),
        base_model=base_model,
        output=str(output),
        checkpoint_dir=checkpoint_dir,
        replay_data=str(replay_data) if replay_data else None,
        tracking_uri=tracking_uri,
        tracking=tracking,
        pipeline_run_id=pipeline_run_id,
        resume=resume,
        progress=progress,
    )
    if nproc_per_node > 1 and not launched_by_torchrun():
        exec_torchrun(nproc_per_node, job)  # the train package's entry point, N times

    from rich.markup import escape

    from components.train.data import TooManySkippedError
    from components.train.recipe import Preempted, ResumeMismatchError
    from components.train.run import describe, train

    configure_logging()
    try:
        recipe = train(job)
    except Preempted as stop:
        console.print(f"[yellow]stopped:[/] {stop}")
        raise typer.Exit(128 + stop.signum) from None
    except ResumeMismatchError as error:
        console.print(f"[red]cannot resume:[/] {error}")
        raise typer.Exit(2) from None
    except TooManySkippedError as error:
        console.print(f"[red]cannot train:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    if recipe.accelerator.is_main_process:
        console.print(describe(recipe), markup=False, highlight=False)
