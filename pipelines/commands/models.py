"""`uicap models`: the registry as operators see it: list, show, promote by hand, roll back.

Every command reads the tracking URI from `--tracking-uri`, `MLFLOW_TRACKING_URI` or the
profile's settings, and credentials only from the environment; neither is ever printed
(URIs are shown without user info or query).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pipelines.settings import PROFILES, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from components.register.client import Registry

app = typer.Typer(help="Inspect and operate the model registry.", no_args_is_help=True)


def _console() -> Console:
    # Made per command, so the width follows the terminal (or $COLUMNS) of this run.
    return Console()


def fail(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True).print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


ProfileOption = Annotated[str, typer.Option(help=" | ".join(PROFILES))]
OverridesOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one setting, KEY=VALUE (e.g. registry.model_name=x)."),
]
TrackingOption = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the profile's)."),
]
ReasonOption = Annotated[str, typer.Option(help="Why: recorded on the versions, shown by list.")]


def settings_for(profile: str, overrides: list[str] | None) -> Settings:
    try:
        return load_settings(profile, overrides or ())
    except SettingsError as error:
        raise fail(str(error), code=2) from None


def open_registry(profile: str, overrides: list[str] | None, tracking_uri: str | None) -> Registry:
    from components.register.client import (
        RegistryError,
        RegistryUnavailableError,
        command_line_registry,
        connect,
    )

    settings = settings_for(profile, overrides)
    try:
        return connect(command_line_registry(settings.registry, tracking_uri))
    except (RegistryUnavailableError, RegistryError) as error:
        raise fail(str(error)) from None


def registry_errors() -> tuple[type[Exception], ...]:
    from components.register.client import RegistryError, RegistryUnavailableError

    return (RegistryError, RegistryUnavailableError)


def _short(value: str | None, keep: int = 12) -> str:
    if not value:
        return "-"
    head, _, tail = value.rpartition(":")
    text = tail if head in ("sha256", "git") else value
    return text if len(text) <= keep else text[:keep]


def _num(tags: dict[str, str], key: str, signed: bool = False) -> str:
    value = tags.get(key)
    if value in (None, ""):
        return "-"
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:+.3f}" if signed else f"{number:.3f}"


def _reasons(tags: dict[str, str]) -> list[str]:
    from components.register import tags as T

    raw = tags.get(T.GATE_REASONS)
    if not raw:
        return []
    try:
        return [str(reason) for reason in json.loads(raw)]
    except json.JSONDecodeError:
        return [raw]


def notes(tags: dict[str, str]) -> str:
    """How the version got (or lost) the champion alias, with the recorded reasons."""
    from components.register import tags as T

    lines = []
    kind = tags.get(T.PROMOTION_KIND)
    if kind:
        lines.append(f"{kind} promotion: {tags.get(T.PROMOTION_REASON, '')}".strip())
    if tags.get(T.SUPERSEDED_BY):
        lines.append(f"superseded by v{tags[T.SUPERSEDED_BY]} (head to head)")
    if tags.get(T.ROLLED_BACK_REASON):
        lines.append(
            f"rolled back to v{tags.get(T.ROLLED_BACK_TO, '?')}: {tags[T.ROLLED_BACK_REASON]}"
        )
    outcome = tags.get(T.GATE_OUTCOME)
    if outcome and outcome != "promoted":
        first = next(iter(_reasons(tags)), "")
        lines.append(f"{outcome}: {first}" if first else outcome)
    return "\n".join(lines) or "-"


def _aliases_by_version(registry: Registry) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for alias, version in registry.aliases().items():
        found.setdefault(version, []).append(alias)
    return found


@app.command("list")
def list_versions(
    profile: ProfileOption = "local",
    overrides: OverridesOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """The serving champion, then every version (newest first): aliases, metrics, gate, lineage."""
    from components.register import tags as T

    console = _console()
    registry = open_registry(profile, overrides, tracking_uri)
    try:
        versions = registry.versions()
        aliases = _aliases_by_version(registry)
    except registry_errors() as error:
        raise fail(str(error)) from None
    champion = next((v for v, names in aliases.items() if registry.champion_alias in names), None)
    serving = f"models:/{registry.model_name}@{registry.champion_alias}"
    if champion is None:
        console.print(f"{serving}: no champion (nothing is serving)", soft_wrap=True)
    else:
        tags = next((v.tags for v in versions if str(v.version) == champion), {})
        console.print(
            f"[bold]{serving}[/] serves [bold green]v{champion}[/]", highlight=False, soft_wrap=True
        )
        why = notes(tags)
        if why != "-":
            for line in why.splitlines():
                console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    table = Table(title=f"{registry.model_name} at {registry.display}", show_lines=True)
    for header, justify in (
        ("version", "right"),
        ("aliases", "left"),
        ("CIDEr", "right"),
        ("Δ CIDEr [CI]", "left"),
        ("sem / fmt / general", "left"),
        ("gate", "left"),
        ("lineage", "left"),
        ("notes", "left"),
    ):
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for version in sorted(versions, key=lambda v: -int(v.version)):
        tags = version.tags
        name = str(version.version)
        delta = (
            f"{_num(tags, T.EVAL_DELTA, True)} [{_num(tags, T.EVAL_CI_LOW, True)}, "
            f"{_num(tags, T.EVAL_CI_HIGH, True)}]\nvs {tags.get(T.EVAL_BASELINE, '-')}"
        )
        guards = " / ".join(
            _num(tags, T.eval_metric(metric))
            for metric in ("semantic_similarity", "format_compliance", "general_CIDEr")
        )
        gate = tags.get(T.GATE_DECISION, "undecided")
        outcome = tags.get(T.GATE_OUTCOME)
        if outcome and outcome not in (gate, "rejected"):
            gate += f"\n{outcome}"
        lineage = (
            f"run {tags.get(T.PIPELINE_RUN_ID, '-')}\n"
            f"data {_short(tags.get(T.DATA_FINGERPRINT))}"
            f" @ {_short(tags.get(T.DATA_SOURCE_REVISION))}\n"
            f"base {tags.get(T.BASE_ID, '-')}@{_short(tags.get(T.BASE_REVISION)) or '-'}\n"
            f"code {_short(tags.get(T.CODE_VERSION), 20)}"
        )
        table.add_row(
            name,
            ", ".join(sorted(aliases.get(name, []))) or "-",
            _num(tags, T.eval_metric("CIDEr")),
            delta,
            guards,
            gate,
            lineage,
            notes(tags),
        )
    console.print(table)


@app.command("show")
def show(
    version: Annotated[str, typer.Argument(help="The version number.")],
    profile: ProfileOption = "local",
    overrides: OverridesOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Everything recorded on one version: aliases, source, run, lineage, scores, decisions."""
    registry = open_registry(profile, overrides, tracking_uri)
    try:
        details = registry.version(version)
        aliases = _aliases_by_version(registry).get(str(details.version), [])
    except registry_errors() as error:
        raise fail(str(error)) from None
    console = _console()
    table = Table(title=f"{registry.model_name} v{details.version}", show_header=False)
    table.add_column("key", style="bold", overflow="fold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("aliases", ", ".join(sorted(aliases)) or "-"),
        ("status", details.status),
        ("run", details.run_id or "-"),
        ("source", details.source),
        ("description", details.description or "-"),
    ]
    rows += sorted(details.tags.items())
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)


@app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    reason: ReasonOption,
    profile: ProfileOption = "local",
    overrides: OverridesOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Make VERSION the champion by hand, bypassing the gate; who, when and why are recorded."""
    from components.register.promotion import promote_manually

    registry = open_registry(profile, overrides, tracking_uri)
    try:
        result = promote_manually(registry, version, reason)
    except registry_errors() as error:
        raise fail(str(error)) from None
    before = f"v{result.champion_before}" if result.champion_before else "none"
    _console().print(
        f"{registry.champion_alias}: {before} -> v{result.version} ({result.outcome})",
        highlight=False,
    )


@app.command("rollback")
def rollback(
    reason: ReasonOption,
    profile: ProfileOption = "local",
    overrides: OverridesOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Give the champion alias back to the version the current champion replaced."""
    from components.register.promotion import rollback as roll_back

    registry = open_registry(profile, overrides, tracking_uri)
    try:
        result = roll_back(registry, reason)
    except registry_errors() as error:
        raise fail(str(error)) from None
    _console().print(
        f"{registry.champion_alias}: v{result.champion_before} -> v{result.version} "
        f"(rolled back: {reason})",
        highlight=False,
        markup=False,
    )
