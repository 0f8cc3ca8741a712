"""`uicap score`: COCO caption metrics, semantic similarity and format compliance as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from components.evaluate.answer_format import DEFAULT_MAX_WORDS

errors = Console(stderr=True)


def score(
    predictions: Annotated[
        Path,
        typer.Option(
            help='JSON lines {"id", "caption"}.', exists=True, dir_okay=False, readable=True
        ),
    ],
    references: Annotated[
        Path,
        typer.Option(
            help='JSON lines {"id", "references": [...]}.',
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    max_words: Annotated[
        int, typer.Option(min=1, help="Word limit of the answer-format rule.")
    ] = DEFAULT_MAX_WORDS,
    similarity_model: Annotated[
        str | None,
        typer.Option(
            envvar="UICAP_SIMILARITY_MODEL",
            help="Sentence-embedding model: a folder, or a Hub id with an optional @revision "
            "(default: the packaged all-MiniLM-L6-v2, else the Hub at a pinned revision).",
        ),
    ] = None,
) -> None:
    """Score predicted captions against references; print one JSON object to stdout."""
    from components.evaluate.scoring import ScoringInputError, score_files

    try:
        scored = score_files(
            predictions, references, max_words=max_words, similarity_model=similarity_model
        )
    except ScoringInputError as error:
        errors.print("[red]cannot score:[/]")
        errors.print(str(error), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    typer.echo(json.dumps(scored.metrics, indent=2))
