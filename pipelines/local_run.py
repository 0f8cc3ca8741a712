"""Run the retraining pipeline on this machine through kfp.local, as `uicap run` does.

The same compiled pipeline as on a cluster, run by kfp.local: by its SubprocessRunner in
this Python environment (the default: every step a real subprocess), or with every step
in the image a cluster runs it in (`images`: what `make images` built, through
`container_runner`). Artifacts land under the work folder, MLflow is a SQLite file
there, and kfp.local's cache keeps prepare, train and evaluate from running twice on the
same inputs. Each run files its step records and its logs in a fresh folder,
`runs/<timestamp>/`, so the outcome read back afterwards is this run's and no other;
`run_display` decides what the terminal sees meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from components.outcome import OUTCOME_FILE, Outcome, read_outcome
from pipelines.image_refs import BuiltImages
from pipelines.run_display import LOGS_DIR, RunDisplay, StepResult
from pipelines.settings import Settings, StepImages

# Where the noise of making the sample data and the warmed base goes (logs/<this>.log).
LOCAL_ASSETS_LOG = "local-assets"


class LocalRunError(RuntimeError):
    """The pipeline could not be started, or ended without an outcome."""


@dataclass(frozen=True)
class LocalRun:
    outcome: Outcome
    records: Path
    settings: Settings
    steps: tuple[StepResult, ...] = ()

    @property
    def logs(self) -> Path:
        """`<records>/logs`: one `<step>.log` per step, kfp.local's own lines, steps.json."""
        return self.records / LOGS_DIR

    @property
    def report(self) -> Path | None:
        """The run's report as an .html file a browser opens (KFP names it `report`)."""
        path = self.records / "report.html"
        return path if path.is_file() else None


def local_settings(profile: str, overrides: list[str], workdir: Path) -> Settings:
    """The profile's settings with the work folder pinned to an absolute path (each step
    runs as its own subprocess, from wherever kfp.local starts it)."""
    from pipelines.settings import load_settings

    if profile != "local":
        raise LocalRunError(
            f"`uicap run` runs the local profile through kfp.local; profile {profile!r} "
            "is for a cluster: use `uicap compile` and `uicap submit`"
        )
    return load_settings("local", [*overrides, f"workdir={workdir.resolve()}"])


def run_pipeline(
    settings: Settings,
    *,
    dataset: str | None = None,
    console: Console | None = None,
    verbose: bool = False,
    images: BuiltImages | None = None,
) -> LocalRun:
    """Make the local assets if missing, run the pipeline, and read back its outcome.

    With `images`, every step runs in its container (CPU steps in the runtime image,
    train and evaluate in the trainer image), and `steps.json` names the image of each.

    `console` gets one line per step (and the assets being made); everything the steps
    and kfp.local print goes to `runs/<timestamp>/logs/<step>.log`, and with `verbose`
    to the terminal as well, as kfp.local streams it.
    """
    from kfp import local

    from components.demo.local_assets import ensure_local_assets
    from pipelines.retrain import build_retrain_pipeline

    if images is not None:
        # By id: the exact images that were built, and a rebuilt image (same tag, new id)
        # never meets kfp.local's cache entries of the old one.
        settings = settings.model_copy(
            update={"images": StepImages(runtime=images.runtime.id, trainer=images.trainer.id)}
        )
    workdir = Path(settings.workdir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    records = workdir / "runs" / stamp
    records.mkdir(parents=True)
    # Bound to today's stdout: while the steps run, `sys.stdout` feeds their logs.
    display = RunDisplay(console or Console(file=sys.stdout), records, verbose=verbose)
    with display.capture():
        with display.quiet(LOCAL_ASSETS_LOG):
            assets = ensure_local_assets(
                workdir, settings.model.family, settings.prepare.max_image_side, display.console
            )
        if Path(settings.model.base).resolve() != assets.base_model.resolve():
            raise LocalRunError(f"model.base {settings.model.base} is not the local warmed base")
        arguments: dict[str, str] = {"records_root": str(records)}
        if dataset is not None:
            arguments["dataset"] = (
                str(Path(dataset).resolve()) if Path(dataset).exists() else dataset
            )
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        outside = [Path(arguments["dataset"])] if "dataset" in arguments else []
        outside = [path for path in outside if path.exists() and workdir not in path.parents]
        with _task_runner(workdir, records, images, display, outside) as runner:
            local.init(
                runner=runner,
                pipeline_root=str(workdir / "pipeline-root"),
                workspace_root=str(workdir / "kfp-workspace"),
                enable_caching=True,
                cache_root=str(workdir / "kfp-cache"),
                raise_on_error=False,
            )
            pipeline = build_retrain_pipeline(settings)
            pipeline(**arguments)
    outcome = _read_back(records)
    if outcome.report and Path(outcome.report).is_file():
        shutil.copyfile(outcome.report, records / "report.html")
    return LocalRun(outcome, records, settings, tuple(display.results))


@contextlib.contextmanager
def _task_runner(
    workdir: Path,
    records: Path,
    images: BuiltImages | None,
    display: RunDisplay,
    read_only: list[Path],
) -> Iterator[object]:
    """kfp.local's runner: a subprocess here, or the images' containers (which also see
    `read_only`, a dataset outside the work folder)."""
    from kfp import local

    if images is None:
        yield local.SubprocessRunner(use_venv=False)
        return
    from pipelines import container_runner

    with container_runner.engine_socket(records / LOGS_DIR):
        container_runner.check_built(images)
        group = container_runner.share_with_image_user(workdir)
        with (
            container_runner.group_writable_umask(),
            container_runner.honest_docker_tasks(
                workdir,
                display.note_container,
                group=group,
                read_only=read_only,
                names={built.id: built.reference for built in (images.runtime, images.trainer)},
            ),
        ):
            yield container_runner.docker_runner()


def _read_back(records: Path) -> Outcome:
    runs = [path for path in records.iterdir() if (path / OUTCOME_FILE).is_file()]
    if len(runs) != 1:
        raise LocalRunError(
            f"the pipeline ended without an outcome in {records} (the exit handler did not "
            f"run); see the logs in {records / LOGS_DIR}"
        )
    return read_outcome(str(runs[0]))
