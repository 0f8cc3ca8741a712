"""`uicap trainjob show`: the TrainJob the train step would create, as YAML, to review or
to `kubectl apply --dry-run=server -f -` before a run spends GPU hours."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from pipelines.settings import PROFILES, SettingsError, load_settings

app = typer.Typer(
    help="Review the Kubeflow Trainer TrainJob of the train step.", no_args_is_help=True
)

DATA_PLACEHOLDER = "<prepared-dataset-uri>"
LINEAGE_PLACEHOLDER = "<lineage-key>"


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the training job's JSON) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def trainjob_yaml(manifest: dict[str, Any]) -> str:
    return yaml.dump(manifest, Dumper=_LiteralDumper, sort_keys=False, width=1000)


@app.command("show")
def show(
    profile: Annotated[str, typer.Option(help=" | ".join(PROFILES))] = "gke",
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one setting, KEY=VALUE (repeatable)."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(help="A settings YAML to load instead of the profile's own.", dir_okay=False),
    ] = None,
    namespace: Annotated[
        str, typer.Option(help="The namespace when the settings name none (the launcher's).")
    ] = "kubeflow",
) -> None:
    """Print the TrainJob of a run (its run id, data and lineage key as placeholders)."""
    from components.trainjob.manifest import RUN_ID_PLACEHOLDER
    from components.trainjob.step import trainjob_manifest
    from pipelines.placement import trainjob_template

    try:
        settings = load_settings(profile, overrides or (), path=file)
        template = trainjob_template(settings)
    except (SettingsError, ValueError) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=2) from None
    assert settings.kubernetes is not None  # trainjob_template checked it
    if settings.kubernetes.train_launcher != "trainjob":
        typer.echo(
            "note: kubernetes.train_launcher is 'pod' in these settings; this is the job "
            "`--set kubernetes.train_launcher=trainjob` would create",
            err=True,
        )
    checkpoint_root = f"{settings.pipeline_root.rstrip('/')}/checkpoints"
    manifest = trainjob_manifest(
        template,
        data=DATA_PLACEHOLDER,
        base_model=settings.model.base,
        config=settings.train.config().to_parameter(),
        checkpoint_uri=f"{checkpoint_root}/{LINEAGE_PLACEHOLDER}",
        pipeline_run_id=RUN_ID_PLACEHOLDER,
        namespace=namespace,
        tracking_uri=settings.registry.tracking_uri,
        pin=False,
    )
    typer.echo(trainjob_yaml(manifest), nl=False)
