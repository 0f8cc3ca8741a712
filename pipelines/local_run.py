"""Run the retraining pipeline on this machine through kfp.local, as `uicap run` does.

The same compiled pipeline as on a cluster, run by kfp.local's SubprocessRunner in this
Python environment: every step is a real subprocess, artifacts land under the work
folder, MLflow is a SQLite file there, and kfp.local's cache keeps prepare, train and
evaluate from running twice on the same inputs. Each run files its step records in a
fresh folder, so the outcome read back afterwards is this run's and no other.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from components.outcome import OUTCOME_FILE, Outcome, read_outcome
from pipelines.settings import Settings


class LocalRunError(RuntimeError):
    """The pipeline could not be started, or ended without an outcome."""


@dataclass(frozen=True)
class LocalRun:
    outcome: Outcome
    records: Path
    settings: Settings

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


def run_pipeline(settings: Settings, *, dataset: str | None = None) -> LocalRun:
    """Make the local assets if missing, run the pipeline, and read back its outcome."""
    from kfp import local

    from components.demo.local_assets import ensure_local_assets
    from pipelines.retrain import build_retrain_pipeline

    workdir = Path(settings.workdir)
    assets = ensure_local_assets(workdir, settings.model.family, settings.prepare.max_image_side)
    if Path(settings.model.base).resolve() != assets.base_model.resolve():
        raise LocalRunError(f"model.base {settings.model.base} is not the local warmed base")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    records = workdir / "runs" / stamp
    records.mkdir(parents=True)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(workdir / "pipeline-root"),
        workspace_root=str(workdir / "kfp-workspace"),
        enable_caching=True,
        cache_root=str(workdir / "kfp-cache"),
        raise_on_error=False,
    )
    arguments: dict[str, str] = {"records_root": str(records)}
    if dataset is not None:
        arguments["dataset"] = str(Path(dataset).resolve()) if Path(dataset).exists() else dataset
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    pipeline = build_retrain_pipeline(settings)
    pipeline(**arguments)
    outcome = _read_back(records)
    if outcome.report and Path(outcome.report).is_file():
        shutil.copyfile(outcome.report, records / "report.html")
    return LocalRun(outcome, records, settings)


def _read_back(records: Path) -> Outcome:
    runs = [path for path in records.iterdir() if (path / OUTCOME_FILE).is_file()]
    if len(runs) != 1:
        raise LocalRunError(
            f"the pipeline ended without an outcome in {records} (the exit handler did not "
            "run); see the task logs above"
        )
    return read_outcome(str(runs[0]))
