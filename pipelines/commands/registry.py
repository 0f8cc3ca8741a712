"""`uicap register` and `uicap gate`: the pipeline's last two steps, runnable by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.commands.models import (
    OverridesOption,
    ProfileOption,
    TrackingOption,
    fail,
    open_registry,
    registry_errors,
    settings_for,
)


def register(
    model: Annotated[
        Path, typer.Option(help="Model artifact folder (uicap_model.json + adapter/).", exists=True)
    ],
    evaluation: Annotated[
        Path, typer.Option(help="evaluation.json of this model (or its folder).", exists=True)
    ],
    pipeline_run_id: Annotated[
        str, typer.Option(help="The pipeline run: registering it again returns the same version.")
    ],
    data: Annotated[
        Path | None,
        typer.Option(help="Prepared data folder: lineage and the serving config.", exists=True),
    ] = None,
    profile: ProfileOption = "local",
    overrides: OverridesOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Log the model as an MLflow pyfunc model and register it as a version (alias challenger)."""
    from components.evaluate.result import EvaluationError, load_evaluation
    from components.register.pyfunc_model import ServingConfig
    from components.register.registration import read_lineage, register_candidate

    settings = settings_for(profile, overrides)
    registry = open_registry(profile, overrides, tracking_uri)
    lineage = read_lineage(data) if data else None
    serving = None
    if lineage is None or lineage.html_budget is None:
        serving = ServingConfig(
            settings.prepare.max_image_side,
            settings.prepare.html_budget_tokens,
            settings.prepare.html_tokens,
        )
    try:
        registered = register_candidate(
            registry,
            model,
            load_evaluation(evaluation),
            pipeline_run_id,
            data_dir=data,
            serving=serving,
        )
    except (*registry_errors(), EvaluationError) as error:
        raise fail(str(error)) from None
    state = "registered" if registered.created else "already registered as"
    alias = f", alias {registry.challenger_alias}" if registered.challenger else ""
    Console().print(f"{state} {registry.model_name} v{registered.version}{alias}", highlight=False)


def gate(
    evaluation: Annotated[
        Path, typer.Option(help="evaluation.json (or its folder): all the gate reads.", exists=True)
    ],
    version: Annotated[str, typer.Option(help="The registered version that was evaluated.")],
    promote: Annotated[
        bool, typer.Option(help="Move the champion alias when the gate passes (compare-and-set).")
    ] = True,
    output: Annotated[Path | None, typer.Option(help="Write decision.json here.")] = None,
    profile: ProfileOption = "local",
    overrides: OverridesOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Decide whether VERSION may replace the champion, record why, and promote it if so."""
    from components.evaluate.result import EvaluationError, load_evaluation
    from components.register.promotion import gate_and_promote, reject_unusable

    settings = settings_for(profile, overrides)
    registry = open_registry(profile, overrides, tracking_uri)
    try:
        try:
            evaluated = load_evaluation(evaluation)
        except EvaluationError as error:  # recorded on the version as a rejection
            result = reject_unusable(registry, version, error)
        else:
            result = gate_and_promote(registry, version, evaluated, settings.gate, promote=promote)
    except registry_errors() as error:
        raise fail(str(error)) from None
    if output is not None:
        result.write(output)
    console = Console()
    colour = "green" if result.promoted else ("yellow" if result.outcome != "rejected" else "red")
    console.print(f"v{result.version}: [{colour}]{result.outcome}[/]", highlight=False)
    for reason in result.reasons:
        console.print(f"  - {reason}", markup=False, highlight=False)
