"""`uicap submit` and `uicap schedule`: the compiled pipeline on a Kubeflow Pipelines server.

Both compile the pipeline for the profile first, so what runs is always the code and
settings at hand, and both go through `kfp.Client` (see `pipelines/kfp_client.py`).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelines.commands.pipeline import ImagesFile

if TYPE_CHECKING:
    from pipelines.kfp_client import ScheduleInfo

console = Console()
errors = Console(stderr=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
# kfp.Client reads the same variable when it is given no host.
HOST_ENV = "KF_PIPELINES_ENDPOINT"
TOKEN_ENV = "UICAP_KFP_TOKEN"
DEFAULT_SCHEDULE_NAME = "uicap-retrain-schedule"

Host = Annotated[
    str,
    typer.Option(
        envvar=HOST_ENV, help="KFP API endpoint, e.g. http://localhost:8080 (a port-forward)."
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        envvar=TOKEN_ENV,
        show_default=False,
        help="Bearer token for the KFP API (e.g. from `gcloud auth print-access-token`).",
    ),
]
Namespace = Annotated[
    str | None, typer.Option(help="Kubeflow profile namespace (multi-user deployments only).")
]
Experiment = Annotated[
    str | None,
    typer.Option(help="KFP experiment (default: the profile's registry.experiment_name)."),
]
Profile = Annotated[str, typer.Option(help="Settings profile the pipeline is compiled for.")]
Config = Annotated[Path | None, typer.Option(help="A settings YAML instead of a profile.")]
Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Setting override key=value (repeatable).")
]
Params = Annotated[
    list[str] | None,
    typer.Option(
        "--param", help="Pipeline parameter key=value (repeatable), checked against the pipeline."
    ),
]


def _fail(message: str, code: int) -> typer.Exit:
    errors.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


def _compile(
    profile: str,
    overrides: list[str] | None,
    config: Path | None,
    folder: Path,
    *,
    force: bool = False,
    images: Path | None = None,
) -> Any:
    """(settings, package path) for the profile, compiled into `folder` once its plan fits."""
    from pipelines.commands.pipeline import image_overrides
    from pipelines.commands.plan import check_plan
    from pipelines.compile import compile_retrain
    from pipelines.settings import SettingsError, load_settings

    try:
        settings = load_settings(profile, [*(overrides or []), *image_overrides(images)], config)
    except SettingsError as error:
        raise _fail(str(error), EXIT_USAGE) from None
    check_plan(settings, force)
    return settings, compile_retrain(settings, folder / "retrain.yaml")


def _version_name(package: Path) -> str:
    """Unique and telling: when it was uploaded and a digest of what was uploaded."""
    import hashlib

    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:8]
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%d-%H%M%S}-{now.microsecond // 1000:03d}-{digest}"


def _service_account(settings: Any) -> str | None:
    return settings.kubernetes.service_account if settings.kubernetes else None


def submit(
    host: Host,
    experiment: Experiment = None,
    param: Params = None,
    run_name: Annotated[
        str | None, typer.Option(help="Run name (default: pipeline name and time).")
    ] = None,
    profile: Profile = "gke",
    config: Config = None,
    override: Overrides = None,
    namespace: Namespace = None,
    token: Token = None,
    force: Annotated[
        bool, typer.Option(help="Submit even when the plan says training cannot fit the GPU.")
    ] = False,
    images: ImagesFile = None,
) -> None:
    """Compile the pipeline, upload it as a new version and start one run of it."""
    from pipelines.kfp_client import KfpError, parse_params, pipeline_name, submit_run

    with tempfile.TemporaryDirectory(prefix="uicap-submit-") as folder:
        settings, package = _compile(
            profile, override, config, Path(folder), force=force, images=images
        )
        try:
            params = parse_params(package, param or [])
        except KfpError as error:
            raise _fail(str(error), EXIT_USAGE) from None
        name = pipeline_name(package)
        version = _version_name(package)
        try:
            run = submit_run(
                host,
                package,
                experiment=experiment or settings.registry.experiment_name,
                params=params,
                run_name=run_name or f"{name} {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
                pipeline_name=name,
                version_name=version,
                namespace=namespace,
                service_account=_service_account(settings),
                token=token,
            )
        except KfpError as error:
            raise _fail(str(error), EXIT_FAILED) from None
    console.print(f"[green]submitted[/] run {run.run_id}")
    console.print(f"  pipeline {escape(name)} ({run.pipeline_id}), version {escape(version)}")
    for key, value in sorted(params.items()):
        console.print(f"  {escape(key)} = {escape(repr(value))}")
    console.print(f"  {escape(run.url)}")


def schedule(
    host: Host,
    cron: Annotated[
        str | None,
        typer.Option(help="Create or update the schedule: 6-field cron, UTC, e.g. '0 0 3 * * *'."),
    ] = None,
    name: Annotated[str, typer.Option(help="Recurring run name.")] = DEFAULT_SCHEDULE_NAME,
    max_concurrency: Annotated[
        int, typer.Option(min=1, max=10, help="Runs of this schedule allowed at once.")
    ] = 1,
    pause: Annotated[
        str | None, typer.Option(metavar="NAME", help="Pause the recurring run NAME.")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(metavar="NAME", help="Resume the recurring run NAME.")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the recurring runs.")] = False,
    experiment: Experiment = None,
    param: Params = None,
    profile: Profile = "gke",
    config: Config = None,
    override: Overrides = None,
    namespace: Namespace = None,
    token: Token = None,
    force: Annotated[
        bool, typer.Option(help="Schedule even when the plan says training cannot fit the GPU.")
    ] = False,
    images: ImagesFile = None,
) -> None:
    """Run the pipeline's latest version on a cron schedule (no catch-up), or pause,
    resume or list schedules."""
    from pipelines import kfp_client

    modes = {"--cron": cron is not None, "--pause": pause, "--resume": resume, "--list": list_}
    chosen = [flag for flag, given in modes.items() if given]
    if len(chosen) != 1:
        told = f"got {' and '.join(chosen)}" if chosen else "got none"
        raise _fail(f"give exactly one of --cron, --pause, --resume, --list ({told})", EXIT_USAGE)
    if cron is not None:
        _schedule_latest(
            host,
            cron,
            name=name,
            max_concurrency=max_concurrency,
            experiment=experiment,
            pairs=param or [],
            profile=profile,
            config=config,
            override=override,
            namespace=namespace,
            token=token,
            force=force,
            images=images,
        )
        return
    try:
        if list_:
            _print_schedules(kfp_client.list_schedules(host, namespace=namespace, token=token))
            return
        change = kfp_client.pause_schedule if pause else kfp_client.resume_schedule
        info = change(host, pause or resume or "", namespace=namespace, token=token)
    except kfp_client.KfpError as error:
        raise _fail(str(error), EXIT_FAILED) from None
    state = "enabled" if info.enabled else "paused"
    console.print(f"recurring run {escape(info.name)} is now [bold]{state}[/]")


def _schedule_latest(
    host: str,
    cron: str,
    *,
    name: str,
    max_concurrency: int,
    experiment: str | None,
    pairs: list[str],
    profile: str,
    config: Path | None,
    override: list[str] | None,
    namespace: str | None,
    token: str | None,
    force: bool,
    images: Path | None,
) -> None:
    from pipelines import kfp_client

    try:
        cron = kfp_client.check_cron(cron)  # before compiling or any request
    except kfp_client.KfpError as error:
        raise _fail(str(error), EXIT_USAGE) from None
    with tempfile.TemporaryDirectory(prefix="uicap-schedule-") as folder:
        settings, package = _compile(
            profile, override, config, Path(folder), force=force, images=images
        )
        try:
            params = kfp_client.parse_params(package, pairs)
        except kfp_client.KfpError as error:
            raise _fail(str(error), EXIT_USAGE) from None
        pipeline = kfp_client.pipeline_name(package)
        try:
            result = kfp_client.schedule(
                host,
                package,
                cron=cron,
                experiment=experiment or settings.registry.experiment_name,
                job_name=name,
                pipeline_name=pipeline,
                version_name=_version_name(package),
                max_concurrency=max_concurrency,
                params=params,
                namespace=namespace,
                service_account=_service_account(settings),
                token=token,
            )
        except kfp_client.KfpError as error:
            raise _fail(str(error), EXIT_FAILED) from None
    info = result.schedule
    verb = {"created": "created", "kept": "unchanged", "replaced": "replaced"}[result.action]
    console.print(f"[green]{verb}[/] recurring run {escape(info.name)} ({info.recurring_run_id})")
    console.print(
        f"  cron '{escape(info.cron or '')}' UTC, max concurrency {info.max_concurrency}, "
        f"no catch-up, {'enabled' if info.enabled else 'paused'}"
    )
    console.print(
        f"  runs the latest version of {escape(pipeline)}; "
        f"just uploaded: {escape(result.version_name)}"
    )


def _print_schedules(schedules: list[ScheduleInfo]) -> None:
    if not schedules:
        console.print("no recurring runs")
        return
    table = Table("name", "id", "schedule", "state", "max", "catch-up", "version", "updated")
    for info in schedules:
        when = f"cron {info.cron}" if info.cron else f"every {info.interval_seconds}s"
        version = "latest" if info.follows_latest else (info.pipeline_version_id or "inline spec")
        updated = f"{info.updated_at:%Y-%m-%d %H:%M}" if info.updated_at else ""
        table.add_row(
            escape(info.name),
            info.recurring_run_id,
            escape(when),
            "enabled" if info.enabled else "paused",
            str(info.max_concurrency or ""),
            "no" if info.no_catchup else "yes",
            escape(version),
            updated,
        )
    console.print(table)
