"""One declaration of which settings change a model and which only change its speed.

Fields marked `SPEED_ONLY` are read by both judges of "is this the same run?": the lineage
key (a champion trained on the same inputs means no new data) and the resume check of a
training run (a checkpoint may be continued). A speed-only change keeps the key and
resumes; a change to what is computed moves the key and is refused by the resume check.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.demo.samples import write_sample_dataset
from components.ingest import ingest
from components.lineage import run_lineage
from components.prepare.config import PrepareConfig
from components.step_config import speed_only_keys
from components.train.config import TrainConfig, parse_config
from pipelines.cli import app

# Every speed-only training setting, each changed from what the first run used.
SPEED_ONLY_CHANGES = [
    "batch.num_workers=null",
    "batch.eval_batch_size=2",
    "batch.encoding_cache_mb=0",
    "schedule.save_steps=1",
    "schedule.keep_checkpoints=4",
    "schedule.log_steps=2",
]
MODEL_CHANGE = "optim.lr=1e-3"
FIRST_RUN = [
    "batch.batch_size=4",
    "batch.grad_accum=2",
    "batch.num_workers=0",
    "batch.max_length=400",
    "batch.max_skip_fraction=0.05",  # ui_data's two too-long train records are 4% of it
    "optim.lr=3e-3",
    "schedule.max_steps=2",
    "schedule.save_steps=2",
]


def test_the_marks_are_the_settings_that_only_change_speed() -> None:
    assert speed_only_keys(TrainConfig) == {
        change.partition("=")[0] for change in SPEED_ONLY_CHANGES
    }
    assert speed_only_keys(PrepareConfig) == {"workers"}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("speed-only")
    source = write_sample_dataset(root / "source", kind="ui", records=24, seed=0)
    ingest(str(source), root / "ingested")
    return root / "ingested"


def lineage_key(ingested: Path, *overrides: str, workers: int = 1) -> str:
    train = parse_config("", [*FIRST_RUN, *overrides])
    prepare = PrepareConfig(max_image_side=448, workers=workers)
    return run_lineage(
        dataset=str(ingested),
        data_revision="sha256:data",
        base_model="m",
        base_revision="sha256:base",
        prepare=prepare,
        train=train,
    ).key


def train_args(data: Path, base: Path, output: Path, *overrides: str) -> list[str]:
    args = ["train", "--data", str(data), "--base-model", str(base), "--output", str(output)]
    args += ["--no-progress", "--no-tracking"]
    for override in [*FIRST_RUN, *overrides]:
        args += ["--set", override]
    return args


def test_a_speed_only_change_keeps_the_key_and_resumes_a_model_change_does_neither(
    ingested: Path,
    ui_data: Path,
    base: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reference = lineage_key(ingested)
    assert lineage_key(ingested, *SPEED_ONLY_CHANGES, workers=4) == reference
    assert lineage_key(ingested, MODEL_CHANGE) != reference

    runner = CliRunner()
    first = runner.invoke(app, train_args(ui_data, base, tmp_path))
    assert first.exit_code == 0, first.output
    with caplog.at_level("INFO", logger="uicap.train"):
        faster = runner.invoke(app, train_args(ui_data, base, tmp_path, *SPEED_ONLY_CHANGES))
    assert faster.exit_code == 0, faster.output
    assert "resuming from" in caplog.text and "(step 2 of 2)" in caplog.text

    changed = runner.invoke(app, train_args(ui_data, base, tmp_path, MODEL_CHANGE))
    assert changed.exit_code == 2 and "cannot resume" in changed.output
    assert "optim.lr" in changed.output
    for change in SPEED_ONLY_CHANGES:
        assert change.partition("=")[0] not in changed.output
