"""`uicap run`, three times in a row, as the platform team's scheduler would run it.

Every step is real: kfp.local runs each component as a subprocess of this venv, the
models train and generate on the CPU, and MLflow is the SQLite file in the work folder.
The runs share one work folder, in order: the first promotes a champion; the second
finds nothing new and stops at the lineage check, before ingest; the third reads the
same records from another folder with one training setting changed, so it retrains but
reuses the prepared data and the champion's and base's captions; the fourth gets new
data (whose rows carry `<script>` in html and summary) and retrains and gates. The
second runs with `--verbose`; the others print one line per step and keep the rest in
the run's logs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.demo.samples.hub_layout import write_hub_dataset
from components.demo.samples.sample_dataset import ui_card, ui_features, ui_records
from components.outcome import OUTCOME_FILE, Outcome
from tests.support.run_output import ended, started

PAYLOAD = "<script>window.__uicap_pwned = 1</script>"
UICAP = str(Path(sys.executable).with_name("uicap"))

# A first run trains eight epochs on the CPU: about 8 minutes on a quiet 2-core machine.
pytestmark = pytest.mark.timeout(1800)

# Every task of a first run that promotes, by the names the pipeline gives them.
FIRST_RUN_STEPS = {
    "ingest",
    "lineage",
    "prepare",
    "general-holdout",
    "train",
    "champion",
    "evaluate",
    "register",
    "gate",
    "promote",
    "notify",
}
# A first run from an empty work folder also prints one line per local asset it makes:
# the two sample datasets, the general holdout and the warmed base. The fixture below
# copies them in, so they are counted here.
LOCAL_ASSET_LINES = 4


def _uicap_run(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    tmp = workdir.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [UICAP, "run", "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    runs = sorted((workdir / "runs").iterdir())
    outcomes = list(runs[-1].glob(f"*/{OUTCOME_FILE}"))
    assert len(outcomes) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    return done, Outcome.model_validate_json(outcomes[0].read_text())


def outcome_folder(workdir: Path) -> Path:
    """The newest run's records folder (`uicap run` makes one per run)."""
    return sorted((workdir / "runs").iterdir())[-1]


def _registry(workdir: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _script_dataset(path: Path) -> Path:
    """New data: a different draw of UI records, some with a script in html and summary."""
    rows = list(ui_records(400, seed=7))
    for index, row in enumerate(rows):
        if index % 5 == 0:
            row["html"] = f"{row['html']}{PAYLOAD}"
            row["summary"] = f"{row['summary'].rstrip('.')} {PAYLOAD}."
    write_hub_dataset(rows, ui_features(), path, ui_card(7), shard_size=200)
    return path


# CI keeps the work folder (`.ci/run` sets it), so `make serving-check` serves the champion
# these runs trained instead of training another.
KEEP_WORKDIR = "UICAP_PIPELINE_TEST_DIR"
KEPT_MARKER = ".uicap-pipeline-test"  # only a folder this fixture made is ever emptied


@pytest.fixture(scope="module")
def workdir(local_profile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder holding the session's warmed base and sample data, nothing else."""
    kept = os.environ.get(KEEP_WORKDIR)
    if kept:
        if Path(kept).exists() and any(Path(kept).iterdir()):
            if not (Path(kept) / KEPT_MARKER).is_file():
                pytest.fail(f"${KEEP_WORKDIR}={kept} is not empty and was not made by this test")
            shutil.rmtree(kept)
        Path(kept).mkdir(parents=True, exist_ok=True)
        (Path(kept) / KEPT_MARKER).touch()
    root = Path(kept) if kept else tmp_path_factory.mktemp("uicap-run")
    folder = root / "work"
    source = Path(local_profile.settings.workdir)
    for part in ("data", "general", "base-model"):
        shutil.copytree(source / part, folder / part)
    return folder


@pytest.fixture(scope="module")
def first(workdir: Path) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    return _uicap_run(workdir)


@pytest.fixture(scope="module")
def second(workdir: Path, first) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    return _uicap_run(workdir, "--verbose")


@pytest.fixture(scope="module")
def same_records(workdir: Path, second) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    """The sample data copied to another folder (same content hash), one epoch of training:
    the settings changed, so it retrains, but prepare and two of evaluate's three models
    have nothing new to do."""
    copy = shutil.copytree(workdir / "data" / "ui", workdir.parent / "same-records")
    return _uicap_run(workdir, "--dataset", str(copy), "--set", "train.schedule.epochs=1")


@pytest.fixture(scope="module")
def third(workdir: Path, same_records) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    """New records: it retrains and gates against the champion (one epoch is enough to
    check that path; the champion stays the first run's unless this one beats it)."""
    dataset = _script_dataset(workdir.parent / "new-data")
    return _uicap_run(workdir, "--dataset", str(dataset), "--set", "train.schedule.epochs=1")


def test_first_run_promotes_a_champion_and_says_so(workdir: Path, first) -> None:
    done, outcome = first
    assert done.returncode == 0, done.stderr[-3000:]
    assert outcome.status == "SUCCEEDED"
    assert outcome.decision == "promoted", outcome.reasons
    champion = _registry(workdir).get_model_version_by_alias("ui-element-captioner", "champion")
    assert str(champion.version) == outcome.model_version == "1"
    assert champion.tags["uicap.gate.decision"] == "passed"
    assert champion.tags["uicap.lineage.key"]
    # The local base is pinned by the content hash of its files, never left empty.
    assert champion.tags["uicap.base.revision"].startswith("sha256:")
    # The summary: the metric table, the decision with reasons, the report, MLflow.
    assert "candidate vs base" in done.stdout
    assert "promoted" in done.stdout
    report = outcome_folder(workdir) / "report.html"
    assert report.read_bytes() == Path(outcome.report).read_bytes()
    assert "report.html" in done.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in done.stdout


def test_first_run_prints_one_line_per_step_start_and_end_and_logs_the_rest(
    workdir: Path, first
) -> None:
    done, outcome = first
    output = done.stdout + done.stderr
    assert len(output.splitlines()) + LOCAL_ASSET_LINES < 60, output
    assert "KFP Executor" not in output and "executor_input" not in output
    assert "\x1b" not in output  # not a terminal: plain lines
    # Promote runs only when the gate passes (whether it does is the test above's matter).
    ran = FIRST_RUN_STEPS if outcome.decision == "promoted" else FIRST_RUN_STEPS - {"promote"}
    assert sorted(started(done.stdout)) == sorted(ran)
    lines = {step: (status, figure) for step, status, figure in ended(done.stdout)}
    assert len(ended(done.stdout)) == len(ran) and set(lines) == ran
    assert all(status == "succeeded" for status, _ in lines.values()), lines
    # The figures are the steps' real outputs.
    assert re.fullmatch(r"(\d+) of \1 records kept, 0 quarantined", lines["ingest"][1])
    evaluation = json.loads(Path(outcome.steps["gate"]["evaluation"]).read_text())
    cider = evaluation["models"]["candidate"]["test"]["CIDEr"]
    assert lines["evaluate"][1].startswith(f"CIDEr {cider:.3f} vs base ")
    assert lines["register"][1] == f"version {outcome.model_version}"
    assert lines["notify"][1] == f"outcome: {outcome.decision}"
    if "promote" in ran:
        assert lines["promote"][1] == "promoted"
    assert "best val loss" in lines["train"][1]
    # The rest is in the run's logs: one file per step, holding the executor's output.
    logs = outcome_folder(workdir) / "logs"
    assert f"logs: {logs}" in done.stdout
    for step in ran - {"general-holdout"}:
        text = (logs / f"{step}.log").read_text()
        assert "Executing task" in text and "[KFP Executor" in text, step
        assert "finished with status SUCCESS" in text, step
    assert "Executing task 'importer'" in (logs / "general-holdout.log").read_text()
    rows = json.loads((logs / "steps.json").read_text())
    assert {row["step"] for row in rows} == ran


def test_unchanged_rerun_stops_before_ingest(workdir: Path, first, second) -> None:
    done, outcome = second
    assert done.returncode == 0, done.stderr[-3000:]
    assert outcome.decision == "no new data"
    assert set(outcome.steps) == {"lineage"}  # nothing after the check ran
    assert "champion version 1" in outcome.reasons[0]
    # --verbose: kfp.local's stream as it prints it, and the logs all the same.
    assert "Executing task" in done.stdout and "[KFP Executor" in done.stdout
    logs = outcome_folder(workdir) / "logs"
    assert (logs / "lineage.log").is_file() and not (logs / "ingest.log").exists()
    versions = _registry(workdir).search_model_versions("name='ui-element-captioner'")
    assert [str(v.version) for v in versions] == ["1"]


def test_the_same_records_reuse_prepared_data_and_the_champions_captions(
    workdir: Path, first, same_records
) -> None:
    done, outcome = same_records
    assert done.returncode == 0, done.stderr[-3000:]
    lineage = outcome.steps["lineage"]
    assert lineage["changed"] is True
    assert lineage["reasons"] == ["train settings changed: schedule"]
    lines = {step: (status, figure) for step, status, figure in ended(done.stdout)}
    # ingest ran (another folder), and prepare copied the first run's output.
    assert lines["ingest"][0] == lines["prepare"][0] == "succeeded"
    assert lines["prepare"][1].endswith("reused from an earlier run")
    evaluation = json.loads(Path(outcome.steps["gate"]["evaluation"]).read_text())
    models = evaluation["models"]
    assert models["champion"]["reused_captions"] == ["test", "general"]
    assert models["base"]["reused_captions"] == ["test", "general"]
    assert models["candidate"]["reused_captions"] == []
    assert models["champion"]["generation_seconds"] == {"test": None, "general": None}
    assert models["candidate"]["generation_seconds"]["test"] > 0
    first_evaluation = json.loads(Path(first[1].steps["gate"]["evaluation"]).read_text())
    # Reused captions score as the champion's own did when it was the candidate.
    assert models["champion"]["test"] == first_evaluation["models"]["candidate"]["test"]
    assert models["base"]["test"] == first_evaluation["models"]["base"]["test"]
    figure = lines["evaluate"][1]
    assert figure.endswith("; reused captions: champion test+general, base test+general")


def test_new_data_retrains_and_gates_and_the_report_shows_scripts_as_text(
    workdir: Path, third
) -> None:
    done, outcome = third
    assert done.returncode == 0, done.stderr[-3000:]
    assert outcome.decision in ("promoted", "rejected")
    assert outcome.steps["lineage"]["changed"] is True
    assert any("data revision" in reason for reason in outcome.steps["lineage"]["reasons"])
    assert outcome.model_version == "3"
    evaluation = json.loads(Path(outcome.steps["gate"]["evaluation"]).read_text())
    assert evaluation["baseline_role"] == "champion"
    html = Path(outcome.report).read_text()
    assert PAYLOAD not in html
    assert "&lt;script&gt;window.__uicap_pwned = 1&lt;/script&gt;" in html
    version = _registry(workdir).get_model_version("ui-element-captioner", "3")
    assert version.tags["uicap.gate.decision"] in ("passed", "rejected")


def test_a_failing_run_exits_non_zero_and_names_the_failure(workdir: Path, third) -> None:
    done, outcome = _uicap_run(workdir, "--dataset", str(workdir.parent / "does-not-exist"))
    assert done.returncode == 1
    assert outcome.status == "FAILED" and outcome.decision == "failed"
    assert "does-not-exist" in done.stdout + done.stderr
    assert ("lineage", "failed", "") in ended(done.stdout)
    assert started(done.stdout) == ["lineage", "notify"]  # nothing after lineage ran
    # The failed step's last 30 log lines, with the log's path, under its end line.
    log = outcome_folder(workdir) / "logs" / "lineage.log"
    assert f"last 30 lines of {log}:" in done.stdout
    tail = [line[4:] for line in done.stdout.splitlines() if line.startswith("  | ")]
    assert tail == [line.rstrip() for line in log.read_text().rstrip().splitlines()[-30:]]
    assert any("does-not-exist" in line for line in tail)
