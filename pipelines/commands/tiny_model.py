"""`uicap tiny-model`: a small random VLM of a production class, for CPU runs and tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def tiny_model(
    output: Annotated[Path, typer.Option(help="Folder to write the model and processor to.")],
    family: Annotated[
        str, typer.Option(help="minicpmv4_6 | qwen2_vl | idefics3 | llava")
    ] = "minicpmv4_6",
    data: Annotated[
        Path | None,
        typer.Option(help="Dataset whose text trains the tokenizer (default: fresh samples)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the random weights.")] = 0,
    shape: Annotated[
        str,
        typer.Option(
            help="small (the local profile's: 224 px slices up to 9) | production (minicpmv4_6: "
            "the real layer pattern, 64-wide heads, 448 px slices up to 9)"
        ),
    ] = "small",
) -> None:
    """Build a randomly initialised VLM that loads through the Auto classes offline."""
    from components.demo.tiny_model import (
        FAMILIES,
        SHAPES,
        build_tiny_model,
        corpus_from_dataset,
    )
    from components.prepare.prompt import prompt_corpus

    if family not in FAMILIES:
        known = ", ".join(FAMILIES)
        raise typer.BadParameter(f"{family!r} is not one of {known}", param_hint="--family")
    if shape not in SHAPES:
        known = ", ".join(SHAPES)
        raise typer.BadParameter(f"{shape!r} is not one of {known}", param_hint="--shape")
    started = time.perf_counter()
    if data is not None:
        texts = corpus_from_dataset(data)
    else:
        from components.demo.samples import sample_text_corpus

        texts = sample_text_corpus(seed=seed)
    size = SHAPES[shape]
    build_tiny_model(output, [*texts, *prompt_corpus()], family=family, size=size, seed=seed)
    console.print(
        f"[green]built[/] {family} tiny model in {time.perf_counter() - started:.1f}s -> {output}"
    )
