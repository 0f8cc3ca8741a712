"""`uicap sample-data`: write a synthetic sample dataset (UI interactions or general captions)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def sample_data(
    output: Annotated[
        Path, typer.Option(help="Folder to write the Hub-layout dataset to (data/ + README.md).")
    ],
    records: Annotated[
        int | None,
        typer.Option(help="Number of records (default: 600 for ui, 120 for general).", min=1),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed; the same seed writes the same data.")] = 0,
    kind: Annotated[str, typer.Option(help="ui (the input contract) | general (captions)")] = "ui",
) -> None:
    """Generate a synthetic dataset that `datasets.load_dataset(OUTPUT)` can load offline."""
    import pyarrow.parquet as pq

    from components.demo.samples import SAMPLE_KINDS, write_sample_dataset

    if kind not in SAMPLE_KINDS:
        raise typer.BadParameter(
            f"{kind!r} is not one of {', '.join(SAMPLE_KINDS)}", param_hint="--kind"
        )
    started = time.perf_counter()
    try:
        write_sample_dataset(output, kind=kind, records=records, seed=seed)  # type: ignore[arg-type]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--records") from error
    seconds = time.perf_counter() - started

    shards = sorted((output / "data").glob("train-*.parquet"))
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in shards)
    summary = Table(title=f"sample-data ({kind})", show_header=False)
    summary.add_row("records", str(rows))
    if kind == "ui":
        screens = {
            s for path in shards for s in pq.read_table(path, columns=["screen_id"])[0].to_pylist()
        }
        summary.add_row("screens", str(len(screens)))
    size = sum(path.stat().st_size for path in shards)
    summary.add_row("shards", f"{len(shards)} ({size / 1e6:.1f} MB)")
    summary.add_row("path", str(output))
    summary.add_row("seconds", f"{seconds:.1f}")
    console.print(summary)
