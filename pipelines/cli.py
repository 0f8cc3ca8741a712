"""The `uicap` command line: one entry point for every step, locally or on a cluster.

Commands live in `pipelines/commands/`, one module per topic; each keeps heavy imports
(torch, transformers, datasets) inside the command body so `uicap --help` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="uicap",
    help="Retrain, evaluate and promote the UI-element captioner.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# --- command registrations (one line per command; keep alphabetical by module) ---
from pipelines.commands import capture as _capture  # noqa: E402
from pipelines.commands import config as _config  # noqa: E402
from pipelines.commands import data as _data  # noqa: E402
from pipelines.commands import evaluate as _evaluate  # noqa: E402
from pipelines.commands import kfp_ops as _kfp_ops  # noqa: E402
from pipelines.commands import models as _models  # noqa: E402
from pipelines.commands import pipeline as _pipeline  # noqa: E402
from pipelines.commands import plan as _plan  # noqa: E402
from pipelines.commands import registry as _registry  # noqa: E402
from pipelines.commands import samples as _samples  # noqa: E402
from pipelines.commands import score as _score  # noqa: E402
from pipelines.commands import serving as _serving  # noqa: E402
from pipelines.commands import serving_check as _serving_check  # noqa: E402
from pipelines.commands import tiny_model as _tiny_model  # noqa: E402
from pipelines.commands import train as _train  # noqa: E402
from pipelines.commands import trainjob as _trainjob  # noqa: E402

app.command("capture")(_capture.capture)
app.command("compile")(_pipeline.compile)
app.add_typer(_config.app, name="config")
app.command("evaluate")(_evaluate.evaluate)
app.command("export")(_serving.export)
app.command("gate")(_registry.gate)
app.command("ingest")(_data.ingest)
app.add_typer(_models.app, name="models")
app.command("plan")(_plan.plan)
app.command("predict")(_serving.predict)
app.command("prepare")(_data.prepare)
app.command("prepare-general")(_data.prepare_general)
app.command("register")(_registry.register)
app.command("run")(_pipeline.run)
app.command("sample-data")(_samples.sample_data)
app.command("schedule")(_kfp_ops.schedule)
app.command("score")(_score.score)
app.command("serving-check")(_serving_check.serving_check)
app.command("submit")(_kfp_ops.submit)
app.command("tiny-model")(_tiny_model.tiny_model)
app.command("train")(_train.train)
app.add_typer(_trainjob.app, name="trainjob")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
