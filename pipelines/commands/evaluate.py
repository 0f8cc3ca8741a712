"""`uicap evaluate`: candidate vs champion (or base) on the test split and the general holdout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.commands.logs import configure_logging

console = Console()
errors = Console(stderr=True)


def results_table(evaluation: dict[str, Any]) -> Table:
    from components.evaluate.evaluation import COMPARED_METRICS, GENERAL_HOLDOUT_METRIC

    baseline = evaluation["baseline_role"]
    table = Table(title=f"candidate vs {baseline} (test n={evaluation['data']['test']['n']})")
    table.add_column("metric")
    for role in evaluation["roles"]:
        table.add_column(role, justify="right")
    table.add_column(f"Δ vs {baseline}", justify="right")
    table.add_column("95% CI", justify="right")
    rows = [("test", metric, evaluation["comparison"][metric]) for metric in COMPARED_METRICS]
    if evaluation["general_comparison"] is not None:
        general = evaluation["general_comparison"][GENERAL_HOLDOUT_METRIC]
        rows.append(("general", GENERAL_HOLDOUT_METRIC, general))
    for split, metric, result in rows:
        values = [
            f"{evaluation['models'][role][split][metric]:.3f}" for role in evaluation["roles"]
        ]
        table.add_row(
            metric if split == "test" else f"{metric} (general holdout)",
            *values,
            f"{result['delta']:+.3f}",
            f"[{result['ci_low']:+.3f}, {result['ci_high']:+.3f}]",
        )
    return table


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
    batch_size: Annotated[int, typer.Option(min=1, help="Records per generation batch.")] = 16,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Caption length bound.")] = 32,
    resamples: Annotated[int, typer.Option(min=1000, help="Paired bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap and report-sample seed.")] = 0,
    family: Annotated[
        str | None, typer.Option(help="Family of plain models whose folder does not say it.")
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI for models:/ references (default: environment)."),
    ] = None,
) -> None:
    """Score candidate, champion and base; write evaluation.json and report.html."""
    from components.evaluate.evaluation import EVALUATION_FILE, REPORT_FILE
    from components.evaluate.evaluation import evaluate as run_evaluation
    from components.evaluate.models import ModelReferenceError

    configure_logging()
    try:
        result = run_evaluation(
            data,
            candidate,
            champion=champion,
            base=base,
            general_dir=general,
            output_dir=output,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            resamples=resamples,
            seed=seed,
            family=family,
            tracking_uri=tracking_uri,
        )
    except (ModelReferenceError, FileNotFoundError, ValueError) as error:
        errors.print("[red]cannot evaluate:[/]")
        errors.print(str(error), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    console.print(results_table(result))
    for line in result["warnings"]:
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    console.print(f"wrote {output / EVALUATION_FILE}")
    console.print(f"wrote {output / REPORT_FILE}")
