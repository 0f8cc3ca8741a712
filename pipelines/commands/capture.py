"""`uicap capture`: recorded browser flows on the product under test -> training records.

Thin: parse options, call components.capture.run.capture, print the counts. Exit 1 when
more element steps failed than allowed (everything is written first), 2 for input that
cannot be used (a bad flow, labels file, option or output folder, or no Chromium).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
error_console = Console(stderr=True)

EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2


def _viewport(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    width, sep, height = value.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not int(width) or not int(height):
        raise typer.BadParameter(f"{value!r}: expected WIDTHxHEIGHT, e.g. 1280x720")
    return int(width), int(height)


def capture(
    flows: Annotated[
        list[Path],
        typer.Option(help="Chrome DevTools Recorder flows (exported JSON); repeat for several."),
    ],
    output: Annotated[Path, typer.Option(help="Output folder: the dataset + capture.json.")],
    labels: Annotated[
        Path | None,
        typer.Option(help='JSON Lines of {"flow": <file name>, "step": <index>, "summary"}.'),
    ] = None,
    device_scale_factor: Annotated[
        float | None,
        typer.Option(
            help="Overrides the flows' setViewport scale (record once, capture at 1, 2).", min=0.5
        ),
    ] = None,
    viewport: Annotated[
        str | None, typer.Option(help="WIDTHxHEIGHT; overrides the flows' setViewport size.")
    ] = None,
    max_failure_fraction: Annotated[
        float,
        typer.Option(
            help="Exit 1 when more than this fraction of element steps fails.", min=0.0, max=1.0
        ),
    ] = 0.1,
    redact: Annotated[
        list[str] | None,
        typer.Option(help="CSS selector masked in the screenshot and the HTML; repeatable."),
    ] = None,
    rewrite_origin: Annotated[
        list[str] | None,
        typer.Option(help="OLD=NEW: replay a flow recorded on OLD against NEW; repeatable."),
    ] = None,
    step_timeout: Annotated[
        float, typer.Option(help="Seconds a step may wait for its element or navigation.", min=0.1)
    ] = 5.0,
    push_to_hub: Annotated[
        str | None,
        typer.Option(help="Hub dataset repo (owner/name) to push to; the token is HF_TOKEN."),
    ] = None,
) -> None:
    """Replay recorded browser flows in headless Chromium and write labelled records."""
    from components.capture.browser import BrowserMissingError
    from components.capture.dataset import OutputError
    from components.capture.flow import FlowError
    from components.capture.labels import LabelError
    from components.capture.replay import ReplaySettings
    from components.capture.run import FailureThresholdError, parse_rewrites
    from components.capture.run import capture as capture_flows

    settings = ReplaySettings(
        viewport=_viewport(viewport),
        scale=device_scale_factor,
        redact=tuple(redact or ()),
        step_timeout_s=step_timeout,
    )
    try:
        result = capture_flows(
            flows,
            output,
            labels_path=labels,
            settings=settings,
            max_failure_fraction=max_failure_fraction,
            rewrites=parse_rewrites(rewrite_origin or []),
        )
    except FailureThresholdError as error:
        console.print(_table(error.result.report, output))
        error_console.print(f"[bold red]capture failed:[/] {error}")
        raise typer.Exit(EXIT_GATE_FAILED) from error
    except (FlowError, LabelError, OutputError, BrowserMissingError, ValueError) as error:
        error_console.print(f"[bold red]capture failed:[/] {error}")
        raise typer.Exit(EXIT_BAD_INPUT) from error
    console.print(_table(result.report, output))
    if push_to_hub:
        from components.capture.hub import PushError, push

        try:
            commit = push(output, push_to_hub)
        except PushError as error:
            error_console.print(f"[bold red]push failed:[/] {error}")
            raise typer.Exit(EXIT_BAD_INPUT) from error
        console.print(f"pushed to {push_to_hub} at commit {commit}")


def _table(report: dict, output: Path) -> Table:
    counts = report["counts"]
    table = Table(title="capture", show_header=False)
    table.add_row(
        "element steps",
        f"{counts['element_steps']}: captured {counts['captured']} (labelled "
        f"{counts['labelled']}, unlabelled {counts['unlabelled']}), failed {counts['failed']}",
    )
    for failure in report["failures"][:10]:
        table.add_row(f"  {failure['flow']} step {failure['step']}", failure["reason"])
    for stop in report["flows_stopped"]:
        table.add_row(f"  {stop['flow']} stopped at {stop['step']}", stop["reason"])
    table.add_row("speed", f"{report['records_per_s']} records/s")
    table.add_row("output", str(output))
    return table
