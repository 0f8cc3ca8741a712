"""`uicap predict` and `uicap export`: use a registered captioner outside the pipeline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from pipelines.commands.models import OverridesOption, ProfileOption, TrackingOption, fail

URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

ModelOption = Annotated[
    str,
    typer.Option(
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/..., or a local pyfunc / "
        "artifact folder."
    ),
]


@contextmanager
def _use_tracking(
    profile: str, overrides: list[str] | None, tracking_uri: str | None
) -> Iterator[str]:
    """Point MLflow's loaders at the registry (models:/ URIs resolve through it), then put
    back what was there: `set_registry_uri` also writes MLFLOW_REGISTRY_URI into the
    environment, which would follow every later step in this process."""
    import mlflow

    from components.register.client import command_line_registry, resolve_uris
    from pipelines.commands.models import settings_for

    registry = settings_for(profile, overrides).registry
    uri, _ = resolve_uris(command_line_registry(registry, tracking_uri))
    saved = {name: os.environ.get(name) for name in URI_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def predict(
    model: ModelOption,
    image: Annotated[
        Path, typer.Option(help="Screenshot (PNG/JPEG).", exists=True, dir_okay=False)
    ],
    bbox: Annotated[str, typer.Option(help="Element box in image pixels: x0,y0,x1,y1.")],
    element_type: Annotated[str, typer.Option(help="button, link, input, ...")] = "",
    text: Annotated[str, typer.Option(help="The element's visible text.")] = "",
    html: Annotated[str, typer.Option(help="The element's surrounding HTML.")] = "",
    action_type: Annotated[str, typer.Option(help="click, type, select, hover, ...")] = "click",
    base_model: Annotated[
        str | None, typer.Option(help="Where the base model is here (default: as registered).")
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, help="Caption length limit (default: the model's own).")
    ] = None,
    profile: ProfileOption = "local",
    overrides: OverridesOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Caption one element: prints the caption the served model gives."""
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from components.content_hash import PinMismatchError
    from components.register.client import describe_error
    from components.register.pyfunc_model import OUTPUT_COLUMN, PredictInputError

    options = {"base_model": base_model, "max_new_tokens": max_new_tokens}
    config = {key: value for key, value in options.items() if value is not None} or None
    try:
        with _use_tracking(profile, overrides, tracking_uri):
            loaded = mlflow.pyfunc.load_model(model, model_config=config)
        frame = pd.DataFrame(
            {
                "image": [str(image.resolve())],
                "bbox": [bbox],
                "element_type": [element_type],
                "text": [text],
                "html": [html],
                "action_type": [action_type],
            }
        )
        captions = loaded.predict(frame)
    except PredictInputError as error:
        raise fail(f"bad input: {error}", code=2) from None
    except (MlflowException, OSError, PinMismatchError) as error:
        raise fail(f"cannot load or run {model}: {describe_error(error)}") from None
    typer.echo(captions[OUTPUT_COLUMN].iloc[0])


def export(
    model: ModelOption,
    output: Annotated[Path, typer.Option(help="Folder to write (must be empty or absent).")],
    merged: Annotated[
        bool,
        typer.Option(help="Merge the adapter into the base: a plain HF folder vLLM/SGLang load."),
    ] = True,
    base_model: Annotated[
        str | None, typer.Option(help="Where the base model is here (default: as registered).")
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="Weights dtype: auto (the base's), bfloat16, float16, float32.")
    ] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
    profile: ProfileOption = "local",
    overrides: OverridesOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Write the model as merged weights + processor (or the adapter) for an inference server."""
    from components.content_hash import PinMismatchError
    from components.register.export import ExportError, export_model

    if dtype not in ("auto", "bfloat16", "float16", "float32"):
        raise typer.BadParameter("use auto, bfloat16, float16 or float32", param_hint="--dtype")
    try:
        with _use_tracking(profile, overrides, tracking_uri) as uri:
            exported = export_model(
                model,
                output,
                merged=merged,
                base_model=base_model,
                dtype=dtype,
                tracking_uri=uri,
                overwrite=overwrite,
            )
    except (ExportError, PinMismatchError) as error:
        raise fail(str(error)) from None
    kind = "merged model" if exported.merged else "adapter"
    typer.echo(f"wrote the {kind} to {exported.output} ({len(exported.files)} files)")
