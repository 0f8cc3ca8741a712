"""`uicap serving-check`: vLLM serves the exported model and captions as uicap does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from pipelines.commands.models import OverridesOption, ProfileOption, TrackingOption, fail
from pipelines.commands.serving import _use_tracking


def _quiet_libraries() -> None:
    """Loading bars and kernel-fallback notes would bury the check's dozen lines."""
    import os
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


def serving_check(
    model: Annotated[
        str | None,
        typer.Option(
            help="models:/NAME@ALIAS, models:/NAME/VERSION or an artifact folder "
            "(default: the profile's champion)."
        ),
    ] = None,
    vllm_python: Annotated[
        str, typer.Option(help="The Python of vLLM's own virtualenv (make serving-venv).")
    ] = ".venv-serving/bin/python",
    data: Annotated[
        Path | None,
        typer.Option(
            help="Prepared folder whose test split to send (default: the one the "
            "version was evaluated on, found under the pipeline root).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Where the export, captions and server log go (default: <workdir>/serving)."
        ),
    ] = None,
    records: Annotated[int, typer.Option(min=0, help="Send at most this many (0: all).")] = 0,
    min_records: Annotated[int, typer.Option(min=1, help="Fail with fewer records.")] = 20,
    min_agreement: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fail below this share of identical captions.")
    ] = 0.9,
    gpu: Annotated[
        bool, typer.Option(help="Serve on a GPU (no --enforce-eager, no CPU KV-cache size).")
    ] = False,
    profile: ProfileOption = "local",
    overrides: OverridesOption = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Export in bf16, serve with `vllm serve` on loopback, send the test split through the
    OpenAI chat API, and compare with uicap's own captions. Last line: JSON figures."""
    from mlflow.exceptions import MlflowException

    from components.register.client import describe_error
    from components.serving.check import ServingCheckError, run_serving_check
    from components.serving.vllm_server import ServerError
    from pipelines.commands.models import settings_for

    try:
        import openai
    except ImportError:
        raise fail(
            "the client side needs the openai package: pip install -e '.[serving]'", code=2
        ) from None
    _quiet_libraries()
    settings = settings_for(profile, overrides)
    reference = model or f"models:/{settings.registry.model_name}@champion"
    executable = shutil.which(vllm_python)
    if executable is None:
        raise fail(f"no Python at {vllm_python}: `make serving-venv` builds vLLM's", code=2)
    workdir = Path(settings.workdir)
    target = output or workdir / "serving"
    try:
        with _use_tracking(profile, overrides, tracking_uri) as uri:
            check = run_serving_check(
                reference,
                target,
                vllm_python=str(Path(executable).absolute()),
                tracking_uri=uri,
                data=data,
                search_roots=[Path(settings.pipeline_root)],
                max_records=records,
                min_records=min_records,
                cpu=not gpu,
                progress=typer.echo,
            )
    except (ServingCheckError, ServerError, ValueError, OSError) as error:
        raise fail(f"serving check failed: {error}") from None
    except openai.APIError as error:
        raise fail(f"serving check failed: the server answered {error}") from None
    except MlflowException as error:
        raise fail(f"serving check failed: {describe_error(error)}") from None
    found = check.agreement
    for disagreement in found.disagreements[:5]:
        typer.echo(
            f"differs {disagreement.id} after {disagreement.prefix_tokens} tokens:\n"
            f"  uicap: {disagreement.ours}\n  vllm:  {disagreement.theirs}"
        )
    typer.echo(
        f"{found.identical} of {found.records} captions identical; server ready in "
        f"{check.server_start_s:.0f}s, uicap {check.ours_s:.1f}s, vLLM {check.theirs_s:.1f}s; "
        f"captions side by side in {target / 'captions.json'}"
    )
    typer.echo(json.dumps(check.summary()))
    if found.agreement < min_agreement:
        raise fail(f"agreement {found.agreement:.3f} < {min_agreement}")
