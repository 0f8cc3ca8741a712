"""`uicap run`, three times in a row, as the platform team's scheduler would run it.

Every step is real: kfp.local runs each component as a subprocess of this venv, the
models train and generate on the CPU, and MLflow is the SQLite file in the work folder.
The runs share one work folder, in order: the first promotes a champion, the second
finds nothing new and stops after ingest, the third gets new data (whose rows carry
`<script>` in html and summary) and retrains and gates.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.demo.samples.hub_layout import write_hub_dataset
from components.demo.samples.sample_dataset import ui_card, ui_features, ui_records
from components.outcome import OUTCOME_FILE, Outcome

PAYLOAD = "<script>window.__uicap_pwned = 1</script>"
UICAP = str(Path(sys.executable).with_name("uicap"))

pytestmark = pytest.mark.timeout(900)


def _uicap_run(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    tmp = workdir.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run(
        [UICAP, "run", "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
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


@pytest.fixture(scope="module")
def workdir(local_profile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder holding the session's warmed base and sample data, nothing else."""
    folder = tmp_path_factory.mktemp("uicap-run") / "work"
    source = Path(local_profile.settings.workdir)
    for part in ("data", "general", "base-model"):
        shutil.copytree(source / part, folder / part)
    return folder


@pytest.fixture(scope="module")
def first(workdir: Path) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    return _uicap_run(workdir)


@pytest.fixture(scope="module")
def second(workdir: Path, first) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    return _uicap_run(workdir)


@pytest.fixture(scope="module")
def third(workdir: Path, second) -> tuple[subprocess.CompletedProcess[str], Outcome]:
    dataset = _script_dataset(workdir.parent / "new-data")
    return _uicap_run(workdir, "--dataset", str(dataset))


def test_first_run_promotes_a_champion_and_says_so(workdir: Path, first) -> None:
    done, outcome = first
    assert done.returncode == 0, done.stderr[-3000:]
    assert outcome.status == "SUCCEEDED"
    assert outcome.decision == "promoted", outcome.reasons
    champion = _registry(workdir).get_model_version_by_alias("ui-element-captioner", "champion")
    assert str(champion.version) == outcome.model_version == "1"
    assert champion.tags["uicap.gate.decision"] == "passed"
    assert champion.tags["uicap.lineage.key"]
    # The summary: the metric table, the decision with reasons, the report, MLflow.
    assert "candidate vs base" in done.stdout
    assert "promoted" in done.stdout
    report = outcome_folder(workdir) / "report.html"
    assert report.read_bytes() == Path(outcome.report).read_bytes()
    assert "report.html" in done.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in done.stdout


def test_unchanged_rerun_skips_after_ingest(workdir: Path, first, second) -> None:
    done, outcome = second
    assert done.returncode == 0, done.stderr[-3000:]
    assert outcome.decision == "no new data"
    assert set(outcome.steps) == {"lineage"}  # nothing after the check ran
    assert "champion version 1" in outcome.reasons[0]
    versions = _registry(workdir).search_model_versions("name='ui-element-captioner'")
    assert [str(v.version) for v in versions] == ["1"]


def test_new_data_retrains_and_gates_and_the_report_shows_scripts_as_text(
    workdir: Path, third
) -> None:
    done, outcome = third
    assert done.returncode == 0, done.stderr[-3000:]
    assert outcome.decision in ("promoted", "rejected")
    assert outcome.steps["lineage"]["changed"] is True
    assert any("data fingerprint" in reason for reason in outcome.steps["lineage"]["reasons"])
    assert outcome.model_version == "2"
    evaluation = json.loads(Path(outcome.steps["gate"]["evaluation"]).read_text())
    assert evaluation["baseline_role"] == "champion"
    html = Path(outcome.report).read_text()
    assert PAYLOAD not in html
    assert "&lt;script&gt;window.__uicap_pwned = 1&lt;/script&gt;" in html
    version = _registry(workdir).get_model_version("ui-element-captioner", "2")
    assert version.tags["uicap.gate.decision"] in ("passed", "rejected")


def test_a_failing_run_exits_non_zero_and_names_the_failure(workdir: Path, third) -> None:
    done, outcome = _uicap_run(workdir, "--dataset", str(workdir.parent / "does-not-exist"))
    assert done.returncode == 1
    assert outcome.status == "FAILED" and outcome.decision == "failed"
    assert "ingest" in done.stdout + done.stderr
