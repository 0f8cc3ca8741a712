"""`uicap evaluate`: candidate vs champion (or base) on the test split and the general holdout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.commands.logs import configure_logging

if TYPE_CHECKING:
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.result import Comparison, Evaluation

console = Console()
errors = Console(stderr=True)


def results_table(evaluation: Evaluation) -> Table:
    """Candidate vs baseline: the gate's metrics, the general holdout and caption diversity."""
    from components.evaluate.result import COMPARED_METRICS, GENERAL_HOLDOUT_METRIC

    baseline = evaluation.baseline_role
    table = Table(title=f"candidate vs {baseline} (test n={evaluation.data.test.n})")
    table.add_column("metric")
    for role in evaluation.roles:
        table.add_column(role, justify="right")
    table.add_column(f"Δ vs {baseline}", justify="right")
    table.add_column("95% CI", justify="right")
    models = evaluation.models
    for metric in COMPARED_METRICS:
        result = evaluation.comparison[metric]
        values = [f"{getattr(models[role].test, metric):.3f}" for role in evaluation.roles]
        table.add_row(metric, *values, f"{result.delta:+.3f}", _interval(result))
    if evaluation.general_comparison is not None:
        result = evaluation.general_comparison[GENERAL_HOLDOUT_METRIC]
        values = [
            f"{getattr(general, GENERAL_HOLDOUT_METRIC):.3f}" if general else "–"
            for general in (models[role].general for role in evaluation.roles)
        ]
        label = f"{GENERAL_HOLDOUT_METRIC} (general holdout)"
        table.add_row(label, *values, f"{result.delta:+.3f}", _interval(result))
    if evaluation.diversity is not None:
        diversity = evaluation.diversity
        references = diversity.references
        for label, field, reference in (
            ("distinct captions", "distinct_share", references.distinct_share),
            ("top caption share", "top_share", references.top_share),
        ):
            shares = {role: getattr(diversity.models[role], field) for role in evaluation.roles}
            table.add_row(
                f"{label} (refs {reference:.3f})",
                *[f"{shares[role]:.3f}" for role in evaluation.roles],
                f"{shares['candidate'] - shares[baseline]:+.3f}",
                "–",
            )
    return table


def _interval(result: Comparison) -> str:
    return f"[{result.ci_low:+.3f}, {result.ci_high:+.3f}]"


def evaluate_config(
    batch_size: int | None, max_new_tokens: int | None, resamples: int | None, seed: int | None
) -> EvaluateConfig:
    """The options given, over EvaluateConfig's defaults (which live there, once)."""
    from components.evaluate.config import EvaluateConfig

    given = {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "bootstrap_resamples": resamples,
        "seed": seed,
    }
    return EvaluateConfig.model_validate({k: v for k, v in given.items() if v is not None})


def evaluate(
    data: Annotated[Path, typer.Option(help="Prepared directory; its test.json is evaluated.")],
    candidate: Annotated[
        str, typer.Option(help="Model artifact folder, models:/ URI, or plain model (id/folder).")
    ],
    output: Annotated[Path, typer.Option(help="Folder for evaluation.json and report.html.")],
    champion: Annotated[
        str | None,
        typer.Option(help="The champion: models:/<name>@<alias>, artifact folder or plain model."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(help="Untuned base (Hub id[@revision] or folder); default: the candidate's."),
    ] = None,
    general: Annotated[
        Path | None, typer.Option(help="Prepared general-captions directory (forgetting guard).")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Records per generation batch (default: EvaluateConfig)."),
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, help="Caption length bound (default: EvaluateConfig).")
    ] = None,
    resamples: Annotated[
        int | None,
        typer.Option(min=1000, help="Paired bootstrap resamples (default: EvaluateConfig)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Bootstrap and report-sample seed (default: EvaluateConfig).")
    ] = None,
    family: Annotated[
        str | None, typer.Option(help="Family of plain models whose folder does not say it.")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI for models:/ references (default: environment)."),
    ] = None,
) -> None:
    """Score candidate, champion and base; write evaluation.json and report.html."""
    from components.evaluate.models import ModelReferenceError
    from components.evaluate.result import EVALUATION_FILE, REPORT_FILE
    from components.evaluate.run import evaluate as run_evaluation

    configure_logging()
    try:
        result = run_evaluation(
            data,
            candidate,
            champion=champion,
            base=base,
            general_dir=general,
            output_dir=output,
            config=evaluate_config(batch_size, max_new_tokens, resamples, seed),
            family=family,
            tracking_uri=tracking_uri,
        )
    except (ModelReferenceError, FileNotFoundError, ValueError) as error:
        errors.print("[red]cannot evaluate:[/]")
        errors.print(str(error), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    console.print(results_table(result))
    for line in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    console.print(f"wrote {output / EVALUATION_FILE}")
    console.print(f"wrote {output / REPORT_FILE}")
