"""`uicap plan`: will the training run fit one GPU, how long will it take, what will it cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.commands.kfp_ops import Config, Overrides

console = Console()
errors = Console(stderr=True)
EXIT_USAGE = 2


def plan(
    profile: Annotated[str, typer.Option(help="Settings profile.")] = "gke",
    config: Config = None,
    override: Overrides = None,
    dataset: Annotated[
        Path | None, typer.Option(help="A prepared dataset folder: its record counts.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="End with one JSON line of the plan.")
    ] = False,
) -> None:
    """Predict per-GPU peak memory, step time, run time and cost, without a GPU or weights."""
    from pipelines.commands.pipeline import _load

    settings = _load(profile, override, config)
    result = _plan_or_exit(settings, dataset)
    print_plan(result)
    if as_json:
        print(json.dumps(result.summary()))


def check_plan(settings: Any, force: bool) -> None:
    """Print the plan of a cluster profile; refuse (exit 2) a run that cannot fit, unless forced."""
    if settings.kubernetes is None:
        return
    result = _plan_or_exit(settings, None)
    print_plan(result)
    if not result.memory.fits:
        message = (
            f"the training step needs {result.memory.peak_memory_gib:.1f} GiB per GPU, more "
            f"than the {result.memory.budget_gib:.1f} GiB a {result.gpu} leaves it"
        )
        if force:
            errors.print(f"[yellow]warning:[/] {escape(message)} (--force)")
            return
        errors.print(f"[red]error:[/] {escape(message)}; pass --force to go on anyway")
        raise typer.Exit(EXIT_USAGE)


def _plan_or_exit(settings: Any, dataset: Path | None) -> Any:
    from pipelines.planning import plan_training

    with console.status("tracing one training step on fake tensors"):
        try:
            return plan_training(settings, dataset)
        except (NotImplementedError, RuntimeError, FileNotFoundError, ValueError) as error:
            errors.print(f"[red]error:[/] cannot plan: {escape(str(error))}")
            raise typer.Exit(EXIT_USAGE) from None


def print_plan(result: Any) -> None:
    from pipelines.commands.pipeline import _summary_console

    console = _summary_console()
    memory = result.memory
    where = f"{result.gpus}x {result.gpu}" + (
        f" ({result.nodes} nodes x {result.gpus // result.nodes})" if result.nodes > 1 else ""
    )
    table = Table(title=f"plan: {escape(result.model)} on {where}")
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    rows = [
        ("weights", f"{memory.weights_gib:.2f} GiB"),
        ("gradients", f"{memory.gradients_gib:.2f} GiB"),
        ("optimizer state", f"{memory.optimizer_gib:.2f} GiB"),
        ("activations", f"{memory.activations_gib:.2f} GiB (logits {memory.logits_gib:.2f})"),
        ("peak per GPU", f"{memory.peak_memory_gib:.2f} of {memory.budget_gib:.1f} GiB"),
        ("fits", "[green]yes[/]" if memory.fits else "[red]no[/]"),
        (
            "batch",
            f"{result.batch_size} x {result.grad_accum} accum x {result.processes} processes"
            f" = {result.effective_batch}, {result.sequence_tokens} tok",
        ),
        ("trainable", f"{result.trainable_params:,} of {result.total_params:,}"),
        ("step", f"{result.step_seconds:.2f} s x {result.optimizer_steps} steps"),
        ("run", f"{result.run_hours:.2f} h, ${result.cost_usd:,.2f} for {result.gpus} GPUs"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    console.print(f"model config: {escape(result.model_config_source)}", highlight=False)
    for line in result.assumptions:
        console.print(f"  assumes {escape(line)}", highlight=False)
    for line in result.suggestions:
        console.print(f"  [yellow]to fit:[/] {escape(line)}", highlight=False)
