"""Compile the retraining pipeline to its IR YAML, the package a KFP server runs."""

from __future__ import annotations

from pathlib import Path

from pipelines.settings import Settings


def compile_retrain(settings: Settings, output: Path | str) -> Path:
    """Write the pipeline for `settings` to `output`; returns the path."""
    from kfp import compiler

    from pipelines.retrain import build_retrain_pipeline

    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_retrain_pipeline(settings), package_path=str(path))
    return path
