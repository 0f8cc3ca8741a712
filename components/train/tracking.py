"""MLflow for training runs: one run per output folder, resumed with it, never a hard dependency.

The tracking URI comes from `--tracking-uri` or `MLFLOW_TRACKING_URI`; when neither is
set the run is logged to a SQLite store inside the output folder, so training never
fails for lack of a server. A resumed training run continues the same MLflow run, so
its metrics form one curve.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("uicap.train")

EXPERIMENT = "uicap-train"


def resolve_tracking_uri(explicit: str | None, output: Path) -> str:
    """The explicit URI, else $MLFLOW_TRACKING_URI, else a SQLite store in the output."""
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or f"sqlite:///{(output / 'mlflow.db').resolve()}"


class RunTracker:
    """Logs to MLflow from the main process; every method is a no-op on the others."""

    def __init__(
        self, enabled: bool, tracking_uri: str | None, output: Path, experiment: str = EXPERIMENT
    ) -> None:
        self.enabled = enabled
        self.output = output
        self.experiment = experiment
        self.uri = resolve_tracking_uri(tracking_uri, output)
        self.run_id: str | None = None

    def start(
        self,
        run_id: str | None,
        run_name: str,
        tags: dict[str, str],
        params: dict[str, Any],
    ) -> str | None:
        """Start a run, or continue `run_id` when the store still has it."""
        if not self.enabled:
            return None
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        experiment = mlflow.get_experiment_by_name(self.experiment)
        if experiment is None:
            # A server stores artifacts where it is configured to; a database store would
            # default to ./mlruns under the working directory, so it gets the output's.
            served = self.uri.startswith(("http://", "https://", "databricks"))
            location = None if served else (self.output / "mlartifacts").resolve().as_uri()
            experiment_id = mlflow.create_experiment(self.experiment, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        if run_id is not None:
            try:
                mlflow.get_run(run_id)
            except mlflow.exceptions.MlflowException:
                log.warning("MLflow run %s is not in %s; starting a new run", run_id, self.uri)
                run_id = None
        run = mlflow.start_run(
            run_id=run_id,
            experiment_id=experiment_id,
            run_name=None if run_id else run_name,
            log_system_metrics=True,
        )
        self.run_id = run.info.run_id
        mlflow.set_tags(tags)
        if run_id is None:  # a resumed run already has its params (they cannot change)
            mlflow.log_params({k: "" if v is None else v for k, v in params.items()})
        return self.run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.enabled and self.run_id:
            import mlflow

            mlflow.log_metrics(metrics, step=step)

    def log_artifact(self, path: Path) -> None:
        if self.enabled and self.run_id:
            import mlflow

            mlflow.log_artifact(str(path))

    def end(self, status: str = "FINISHED") -> None:
        if self.enabled and self.run_id:
            import mlflow

            mlflow.end_run(status=status)
