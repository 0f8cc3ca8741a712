"""`uicap run` (the whole pipeline, locally) and `uicap compile` (its IR for a cluster)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

console = Console()
errors = Console(stderr=True)

# Off a terminal (CI, `make run > log`) rich would wrap at 80 columns, and the decision's
# reasons would take two lines each; a log file has room for one.
LOG_WIDTH = 120

# What a scheduler reads: success whether the candidate was promoted, rejected or there
# was nothing new; failure when the run did not finish.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class Runner(StrEnum):
    subprocess = "subprocess"
    docker = "docker"


ImagesFile = Annotated[
    Path | None,
    typer.Option(
        "--images",
        help="images/built.json after `make push`: the steps run the pushed images, by digest.",
        show_default=False,
    ),
]


def image_overrides(images: Path | None) -> list[str]:
    """`--set` overrides naming the pushed images by digest; a usage error when unusable."""
    if images is None:
        return []
    from pipelines.image_refs import ImageRefsError, digest_overrides, read_images

    try:
        return digest_overrides(read_images(images))
    except ImageRefsError as error:
        errors.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(EXIT_USAGE) from None


def _load(profile: str, overrides: list[str] | None, config: Path | None) -> Any:
    from pipelines.settings import SettingsError, load_settings

    try:
        return load_settings(profile, overrides or [], config)
    except SettingsError as error:
        errors.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(EXIT_USAGE) from None


def _summary_console() -> Console:
    """The terminal's width on a terminal; elsewhere a wide line, so nothing wraps."""
    terminal = Console()
    return terminal if terminal.is_terminal else Console(width=max(terminal.width, LOG_WIDTH))


def _print_summary(result: Any) -> None:
    from components.evaluate.result import load_evaluation
    from pipelines.commands.evaluate import results_table

    outcome, settings = result.outcome, result.settings
    console = _summary_console()

    gate = outcome.steps.get("gate", {})
    evaluation_path = gate.get("evaluation")
    if evaluation_path and Path(evaluation_path).is_file():
        console.print(results_table(load_evaluation(Path(evaluation_path))))
    colour = {"promoted": "green", "no new data": "cyan"}.get(outcome.decision, "yellow")
    if outcome.status != "SUCCEEDED":
        colour = "red"
    lines = [f"[bold {colour}]{escape(outcome.decision)}[/]  (run {escape(outcome.run_id)})"]
    lines += [f"  • {escape(reason)}" for reason in outcome.reasons]
    if outcome.model_version:
        lines.append(f"model version: {outcome.model_version}")
    if outcome.error:
        lines.append(f"[red]error:[/] {escape(outcome.error)}")
    console.print(Panel("\n".join(lines), title="gate decision", expand=False))
    # Paths and commands on lines of their own, never wrapped: they get copied and pasted.
    where = []
    if result.report is not None:
        where.append(f"report: {result.report}")
    where.append(f"logs: {result.logs}")
    uri = settings.registry.tracking_uri
    where += [f"MLflow: {uri}", f"browse it: mlflow ui --backend-store-uri {uri}"]
    for line in where:
        console.print(escape(line), soft_wrap=True, highlight=False)


def run(
    profile: Annotated[
        str, typer.Option(help="Settings profile (local runs through kfp.local).")
    ] = "local",
    dataset: Annotated[
        str | None, typer.Option(help="Dataset folder or Hub id (default: the profile's sample).")
    ] = None,
    workdir: Annotated[Path, typer.Option(help="Work folder: data, models, MLflow, runs.")] = Path(
        ".uicap"
    ),
    override: Annotated[
        list[str] | None, typer.Option("--set", help="Setting override key=value (repeatable).")
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Stream kfp.local's full task logs here too (they always go to "
            "runs/<timestamp>/logs/).",
        ),
    ] = False,
    runner: Annotated[
        Runner,
        typer.Option(
            help="subprocess: every step in this environment. docker: every step in its "
            "image (podman's socket, or DOCKER_HOST's engine).",
        ),
    ] = Runner.subprocess,
    images: Annotated[
        Path, typer.Option(help="What `make images` built (read with --runner docker).")
    ] = Path("images/built.json"),
) -> None:
    """Run the whole retraining pipeline locally: ingest to promotion, then a summary.

    One line per step as it starts and ends (status, duration, one figure); each step's
    full log is in `<workdir>/runs/<timestamp>/logs/<step>.log`, and a failed step's last
    lines are printed with that path.
    """
    from pipelines.container_runner import ContainerRunError
    from pipelines.image_refs import ImageRefsError, read_images
    from pipelines.local_run import LocalRunError, local_settings, run_pipeline
    from pipelines.settings import SettingsError

    try:
        settings = local_settings(profile, list(override or []), workdir)
        built = read_images(images) if runner is Runner.docker else None
    except (LocalRunError, SettingsError, ImageRefsError) as error:
        errors.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        result = run_pipeline(settings, dataset=dataset, verbose=verbose, images=built)
    except (LocalRunError, ContainerRunError, FileNotFoundError, ValueError) as error:
        errors.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(EXIT_FAILED) from None
    _print_summary(result)
    raise typer.Exit(EXIT_OK if result.outcome.status == "SUCCEEDED" else EXIT_FAILED)


def compile(
    output: Annotated[Path, typer.Option(help="Where the pipeline YAML goes.")] = Path(
        "retrain.yaml"
    ),
    profile: Annotated[str, typer.Option(help="Settings profile.")] = "gke",
    config: Annotated[
        Path | None, typer.Option(help="A settings YAML instead of a profile.")
    ] = None,
    override: Annotated[
        list[str] | None, typer.Option("--set", help="Setting override key=value (repeatable).")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Compile even when the plan says training cannot fit the GPU.")
    ] = False,
    images: ImagesFile = None,
) -> None:
    """Compile the retraining pipeline (with the profile's placement) to KFP IR YAML."""
    from pipelines.commands.plan import check_plan
    from pipelines.compile import compile_retrain

    settings = _load(profile, [*(override or []), *image_overrides(images)], config)
    check_plan(settings, force)
    path = compile_retrain(settings, output)
    console.print(f"wrote {escape(str(path))} (profile {settings.profile})")
