"""`uicap config show`: the resolved settings of a profile, after overrides, as YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.syntax import Syntax

from pipelines.settings import PROFILES, SettingsError, load_settings

app = typer.Typer(help="Inspect the pipeline settings.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


@app.command("show")
def show(
    profile: Annotated[str, typer.Option(help=" | ".join(PROFILES))] = "local",
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override one setting, KEY=VALUE with a dotted key (train.lora.rank=32); "
            "repeatable. Values are YAML scalars.",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(help="A settings YAML to load instead of the profile's own.", dir_okay=False),
    ] = None,
) -> None:
    """Print the settings a run would use: profile file, overrides, `{workdir}` resolved."""
    try:
        settings = load_settings(profile, overrides or (), path=file)
    except SettingsError as error:
        errors.print(str(error), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    text = settings.to_yaml()
    if console.is_terminal:
        console.print(Syntax(text, "yaml", word_wrap=True, background_color="default"))
    else:
        # Piped output stays plain YAML that another tool (or `--file`) can read back.
        typer.echo(text, nl=False)
