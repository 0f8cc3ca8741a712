"""`uicap ingest`, `uicap prepare`, `uicap prepare-general`: the data path, step by step.

Thin commands: parse options, call the plain functions in components.ingest and
components.prepare, print a summary. A bad source is reported (exit 1 for a failed
quarantine gate, 2 for a source or option that cannot be used), never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.commands.logs import configure_logging

if TYPE_CHECKING:
    from components.ingest import IngestManifest
    from components.prepare.config import PrepareConfig

console = Console()
error_console = Console(stderr=True)

EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2


def _fail(step: str, error: Exception, code: int) -> typer.Exit:
    error_console.print(f"[bold red]{step} failed:[/] {error}")
    return typer.Exit(code)


def _ingest_table(manifest: IngestManifest, output: Path) -> Table:
    table = Table(title="ingest", show_header=False)
    source = manifest.source
    table.add_row("source", f"{source.dataset} ({source.kind}, split {source.split})")
    table.add_row("revision", source.resolved_revision)
    table.add_row("column map", str(source.column_map["name"]))
    counts = manifest.counts
    table.add_row(
        "records", f"in {counts.in_}, kept {counts.kept}, quarantined {counts.quarantined}"
    )
    for reason, count in manifest.common_reasons():
        table.add_row("  quarantined for", f"{reason} ({count})")
    normalised = ", ".join(f"{name} {n}" for name, n in manifest.normalised.items() if n)
    if normalised:
        table.add_row("normalised", normalised)
    table.add_row("fingerprint", manifest.fingerprint)
    table.add_row("output", str(output))
    return table


def ingest(
    dataset: Annotated[
        str, typer.Option(help="Hub dataset id (owner/name) or a local dataset folder.")
    ],
    output: Annotated[Path, typer.Option(help="Output folder: data/ + manifest.json.")],
    revision: Annotated[
        str | None,
        typer.Option(help="Hub branch, tag or commit (default main); recorded as its sha."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split of the source dataset to read.")] = "train",
    column_map: Annotated[
        str | None,
        typer.Option(
            help="Preset (wave-ui, rico-widget-captions) and/or renames src=dst,... "
            "onto the contract columns."
        ),
    ] = None,
    max_quarantine_fraction: Annotated[
        float,
        typer.Option(
            help="Fail when more than this fraction of records is quarantined.", min=0.0, max=1.0
        ),
    ] = 0.05,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Validate a dataset record by record; keep the good ones, list the rest with reasons."""
    from components.ingest import (
        ColumnMapError,
        OutputExistsError,
        QuarantineThresholdError,
        SourceError,
    )
    from components.ingest import ingest as ingest_dataset

    try:
        manifest = ingest_dataset(
            dataset,
            output,
            revision=revision,
            split=split,
            column_map=column_map,
            max_quarantine_fraction=max_quarantine_fraction,
            progress=progress,
        )
    except QuarantineThresholdError as error:
        console.print(_ingest_table(error.manifest, output))
        raise _fail("ingest", error, EXIT_GATE_FAILED) from error
    except (SourceError, ColumnMapError, OutputExistsError, ValueError) as error:
        raise _fail("ingest", error, EXIT_BAD_INPUT) from error
    console.print(_ingest_table(manifest, output))


def prepare(
    input_: Annotated[
        Path, typer.Option("--input", help="Output folder of `uicap ingest` (data/ + manifest).")
    ],
    output: Annotated[
        Path, typer.Option(help="Output folder: train/val/test.json, images/, manifest.json.")
    ],
    max_image_side: Annotated[
        int | None,
        typer.Option(
            help="Longest image side in pixels after resizing (default: PrepareConfig).", min=16
        ),
    ] = None,
    html_budget: Annotated[
        int | None,
        typer.Option(
            help="Token budget of the surrounding HTML in the prompt (default: PrepareConfig).",
            min=0,
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="train,val,test fractions; screens never cross splits (default: PrepareConfig)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the split assignment (default: PrepareConfig).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes that draw and encode images (default: PrepareConfig).", min=1
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            help="The base model (folder or Hub id) whose tokenizer the HTML budget counts in.",
        ),
    ] = None,
    tokenizer_revision: Annotated[
        str | None, typer.Option(help="The base model's revision on the Hub.")
    ] = None,
    html_tokens: Annotated[
        str | None,
        typer.Option(
            help="What the HTML budget counts: model (the tokenizer's tokens) or pattern "
            "(model-free; default: PrepareConfig)."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Draw the target boxes, build the prompts, write the train/val/test conversations."""
    from components.ingest import OutputExistsError
    from components.prepare import PrepareInputError
    from components.prepare import prepare as prepare_dataset
    from components.prepare.token_count import BaseTokenizer

    configure_logging()
    try:
        config = prepare_config(max_image_side, html_budget, split, seed, workers, html_tokens)
        base = BaseTokenizer(tokenizer, tokenizer_revision) if tokenizer else None
        manifest = prepare_dataset(input_, output, config, tokenizer=base, progress=progress)
    except (PrepareInputError, OutputExistsError, ValueError) as error:
        raise _fail("prepare", error, EXIT_BAD_INPUT) from error
    counts = manifest.counts
    table = Table(title="prepare", show_header=False)
    table.add_row("records", f"in {counts.in_}, duplicates removed {counts.duplicates_removed}")
    for name in ("train", "val", "test"):
        table.add_row(name, f"{getattr(counts, name)} records, {manifest.groups[name]} screens")
    table.add_row("prompt template", manifest.prompt_template_version)
    budget = manifest.settings
    counted = budget.html_tokenizer or "no model: the word/punctuation pattern"
    table.add_row("HTML budget", f"{budget.html_budget} tokens of {counted}")
    table.add_row("fingerprint", manifest.fingerprint)
    table.add_row("output", str(output))
    console.print(table)


def prepare_config(
    max_image_side: int | None,
    html_budget: int | None,
    split: str | None,
    seed: int | None,
    workers: int | None,
    html_tokens: str | None = None,
) -> PrepareConfig:
    """The options given, over PrepareConfig's defaults (which live there, once)."""
    from components.prepare.config import PrepareConfig
    from components.prepare.splits import parse_fractions

    given: dict[str, object] = {
        "max_image_side": max_image_side,
        "html_budget_tokens": html_budget,
        "seed": seed,
        "workers": workers,
        "html_tokens": html_tokens,
    }
    if split is not None:
        train, validation, test = parse_fractions(split)
        given["splits"] = {"train": train, "validation": validation, "test": test}
    return PrepareConfig.model_validate({k: v for k, v in given.items() if v is not None})


def prepare_general(
    dataset: Annotated[
        str, typer.Option(help="General captions dataset (external_id, image, caption).")
    ],
    output: Annotated[Path, typer.Option(help="Output folder (same layout as prepare).")],
    revision: Annotated[str | None, typer.Option(help="Hub branch, tag or commit.")] = None,
    source_split: Annotated[str, typer.Option(help="Split of the source to read.")] = "train",
    max_image_side: Annotated[
        int, typer.Option(help="Longest image side in pixels after resizing.", min=16)
    ] = 1344,
    split: Annotated[str, typer.Option(help="train,val,test fractions.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Seed of the split assignment.")] = 0,
) -> None:
    """Prepare general (non-UI) captions: the forgetting holdout and the tiny base's warm-up."""
    from components.ingest import ColumnMapError, OutputExistsError, SourceError
    from components.prepare import prepare_general as prepare_general_dataset

    try:
        manifest = prepare_general_dataset(
            dataset,
            output,
            revision=revision,
            split=source_split,
            max_image_side=max_image_side,
            split_fractions=split,
            seed=seed,
        )
    except (SourceError, ColumnMapError, OutputExistsError, ValueError) as error:
        raise _fail("prepare-general", error, EXIT_BAD_INPUT) from error
    counts = manifest.counts
    table = Table(title="prepare-general", show_header=False)
    table.add_row(
        "records", f"in {counts.in_}, kept {counts.kept}, quarantined {counts.quarantined}"
    )
    table.add_row("splits", f"train {counts.train}, val {counts.val}, test {counts.test}")
    table.add_row("fingerprint", manifest.fingerprint)
    table.add_row("output", str(output))
    console.print(table)
