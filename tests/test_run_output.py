"""What `uicap run` prints and logs, on small real pipelines through kfp.local.

The components here are real lightweight components, run as subprocesses by
SubprocessRunner, with kfp.local's cache on: one start and one end line per task, the
executor's output in `logs/<step>.log`, a failed step's last 30 lines with its path, and
`--verbose` keeping kfp.local's stream. The whole retraining pipeline's output is checked
in test_pipeline_local.py.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations.

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl, local
from rich.console import Console

from pipelines.run_display import (
    LOGS_DIR,
    STEPS_FILE,
    TAIL_LINES,
    RunDisplay,
    StepLogs,
    _Capture,
    step_figure,
)
from tests.support.run_output import END, START, ended, started


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_op(start: int) -> int:
    print(f"counting from {start}")
    return start + 1


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def explode_op(start: int) -> int:
    for index in range(45):
        print(f"working on item {index}")
    raise RuntimeError(f"item {start} is broken")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def final_op(status: dsl.PipelineTaskFinalStatus) -> str:
    print(f"the run ended {status.state}")
    return status.state


def _pipeline(fail: bool) -> Any:
    @dsl.pipeline(name="run-output")
    def pipeline() -> None:
        final = final_op().set_display_name("finally")
        with dsl.ExitHandler(final):
            first = count_op(start=1).set_display_name("first")
            second = count_op(start=first.output).set_display_name("second")
            if fail:
                explode_op(start=second.output).set_display_name("explode")

    return pipeline


def _run(root: Path, name: str, *, fail: bool, console: Console, **options: Any) -> RunDisplay:
    records = root / "runs" / name
    records.mkdir(parents=True)
    display = RunDisplay(console, records, **options)
    # The runner writes each task's program into `mktemp -d` folders it never removes.
    scratch = root / "tmp"
    scratch.mkdir(exist_ok=True)
    with display.capture(), pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(scratch))
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root / "pipeline-root"),
            enable_caching=True,
            cache_root=str(root / "kfp-cache"),
            raise_on_error=False,
        )
        _pipeline(fail)()
    return display


def _plain() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80), out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A passing run, then a failing one on the same cache (first and second are hits)."""
    root = tmp_path_factory.mktemp("run-output")
    passing_console, passing = _plain()
    passed = _run(root, "passing", fail=False, console=passing_console)
    failing_console, failing = _plain()
    failed = _run(root, "failing", fail=True, console=failing_console)
    return {
        "passed": (passed, passing.getvalue()),
        "failed": (failed, failing.getvalue()),
        "root": root,
    }


def test_each_task_gets_one_start_and_one_end_line_with_status_and_duration(runs) -> None:
    display, out = runs["passed"]
    assert started(out) == ["first", "second", "finally"]
    assert [(step, status) for step, status, _ in ended(out)] == [
        ("first", "succeeded"),
        ("second", "succeeded"),
        ("finally", "succeeded"),
    ]
    # Nothing else: kfp.local's stream went to the logs.
    assert len(out.splitlines()) == 6, out
    assert "\x1b" not in out  # not a terminal: plain lines, no control codes
    assert [(r.step, r.status) for r in display.results] == [
        ("first", "succeeded"),
        ("second", "succeeded"),
        ("finally", "succeeded"),
    ]


def test_step_logs_hold_the_executor_output_and_steps_json_the_lines(runs) -> None:
    display, _ = runs["passed"]
    logs = display.records / LOGS_DIR
    first = (logs / "first.log").read_text()
    assert "Executing task 'count-op'" in first
    assert "[KFP Executor" in first and "counting from 1" in first
    assert "\x1b" not in first  # kfp.local's colours are stripped from the files
    assert "counting from 2" in (logs / "second.log").read_text()
    assert "the run ended SUCCEEDED" in (logs / "finally.log").read_text()
    assert "Running pipeline" in (logs / "pipeline.log").read_text()
    rows = json.loads((logs / STEPS_FILE).read_text())
    assert [row["step"] for row in rows] == ["first", "second", "finally"]
    assert all(row["seconds"] > 0 and Path(row["log"]).is_file() for row in rows)


def test_a_failed_step_prints_its_last_30_log_lines_and_path(runs) -> None:
    display, out = runs["failed"]
    assert {step: status for step, status, _ in ended(out)} == {
        "first": "cached",
        "second": "cached",
        "explode": "failed",
        "finally": "succeeded",
    }
    log = display.records / LOGS_DIR / "explode.log"
    assert f"last {TAIL_LINES} lines of {log}:" in out
    printed = [line[4:] for line in out.splitlines() if line.startswith("  | ")]
    assert printed == [line.rstrip() for line in log.read_text().rstrip().splitlines()[-30:]]
    assert any("RuntimeError: item 3 is broken" in line for line in printed)
    # The tail follows the failed step's end line, before the exit handler runs.
    lines = out.splitlines()
    failed_at = next(i for i, line in enumerate(lines) if END.match(line) and "explode" in line)
    assert "last 30 lines of" in lines[failed_at + 1]
    assert START.match(lines[failed_at + 2 + TAIL_LINES]).group(1) == "finally"


def test_verbose_keeps_kfp_locals_stream_and_still_writes_the_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    console, out = _plain()
    display = _run(tmp_path, "verbose", fail=False, console=console, verbose=True)
    streamed = capsys.readouterr().out
    assert "Executing task" in streamed and "[KFP Executor" in streamed
    assert "counting from 1" in streamed
    assert len(ended(out.getvalue())) == 3
    assert (display.records / LOGS_DIR / "first.log").is_file()


def test_a_terminal_gets_a_live_line_and_the_same_step_lines(runs) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    display = _run(runs["root"], "terminal", fail=False, console=console)
    assert display.live
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    for step in ("first", "second", "finally"):
        assert re.search(rf"\d\d:\d\d:\d\d {step}\s+started", text)
        assert re.search(rf"\d\d:\d\d:\d\d {step}\s+(succeeded|cached)\s+\d+\.\ds", text)


def test_the_streams_are_given_back_after_the_run(tmp_path: Path) -> None:
    before_out, before_err = sys.stdout, sys.stderr
    console, _ = _plain()
    display = RunDisplay(console, tmp_path)
    with display.capture():
        assert sys.stdout is not before_out and sys.stderr is not before_err
        print("inside, to the pipeline log")
    assert sys.stdout is before_out and sys.stderr is before_err
    assert "inside" in (tmp_path / LOGS_DIR / "pipeline.log").read_text()


def test_a_stream_a_library_kept_passes_writes_on_once_released(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = StepLogs(tmp_path)
    kept = _Capture(logs, "stdout", echo=None)
    with logs.step("train"):
        kept.write("epoch 1\n")
    kept.release()
    logs.close()
    kept.write("after the run\n")
    assert capsys.readouterr().out == "after the run\n"
    assert (tmp_path / "train.log").read_text() == "epoch 1\n"


def _artifact(cls: type, name: str, metadata: dict[str, Any]) -> Any:
    return cls(name=name, uri=f"/x/{name}", metadata=metadata)


def test_figures_come_from_the_steps_outputs_and_records(tmp_path: Path) -> None:
    counts = {"records_in": 600.0, "records_kept": 590.0, "records_quarantined": 10.0}
    assert (
        step_figure("ingest", {"counts": _artifact(dsl.Metrics, "counts", counts)}, tmp_path)
        == "590 of 600 records kept, 10 quarantined"
    )
    splits = {"records_train": 473.0, "records_val": 66.0, "records_test": 61.0}
    prepared = {"counts": _artifact(dsl.Metrics, "counts", splits)}
    assert step_figure("prepare", prepared, tmp_path) == "train 473 · val 66 · test 61 records"
    prepared["prepared"] = _artifact(dsl.Dataset, "prepared", {"reuse": {"reused": True}})
    assert step_figure("prepare", prepared, tmp_path).endswith(", reused from an earlier run")
    model = {"final_step": 240, "best_val_loss": 1.23456, "best_step": 220}
    trained = {"model": _artifact(dsl.Model, "model", model)}
    assert step_figure("train", trained, tmp_path) == "240 steps, best val loss 1.235 at step 220"
    evaluated = {
        "metrics": _artifact(dsl.Metrics, "metrics", {"candidate_CIDEr": 0.61, "base_CIDEr": 0.04}),
        "evaluation": _artifact(dsl.Artifact, "evaluation", {"baseline_role": "base"}),
    }
    assert step_figure("evaluate", evaluated, tmp_path) == "CIDEr 0.610 vs base 0.040 (+0.570)"
    reused = {
        "baseline_role": "champion",
        # Key-sorted, as step metadata comes back: the figure still names the champion first.
        "reused_captions": {"base": ["general"], "candidate": [], "champion": ["test", "general"]},
    }
    evaluated["evaluation"] = _artifact(dsl.Artifact, "evaluation", reused)
    evaluated["metrics"].metadata["champion_CIDEr"] = 0.5
    assert step_figure("evaluate", evaluated, tmp_path) == (
        "CIDEr 0.610 vs champion 0.500 (+0.110); reused captions: champion test+general, "
        "base general"
    )
    (tmp_path / "run-1" / "steps").mkdir(parents=True)
    record = {"reasons": ["data revision changed"]}
    (tmp_path / "run-1" / "steps" / "lineage.json").write_text(json.dumps(record))
    lineage = step_figure("lineage", {"Output": True}, tmp_path)
    assert lineage == "new data: data revision changed"
    assert step_figure("register", {"Output": "3"}, tmp_path) == "version 3"
    outcome = json.dumps({"status": "SUCCEEDED", "decision": "rejected"})
    assert step_figure("notify", {"Output": outcome}, tmp_path) == "outcome: rejected"
    outcome = json.dumps({"status": "FAILED", "decision": "failed"})
    assert step_figure("notify", {"Output": outcome}, tmp_path) == "outcome: failed"
    decision = _artifact(dsl.Artifact, "decision", {"outcome": "rejected"})
    assert step_figure("gate", {"Output": False, "decision": decision}, tmp_path) == "rejected"
    assert step_figure("general-holdout", {}, tmp_path) is None


def test_a_step_whose_outputs_changed_shape_keeps_its_line_without_a_figure(
    tmp_path: Path,
) -> None:
    console, _ = _plain()
    display = RunDisplay(console, tmp_path)
    outputs = {"counts": _artifact(dsl.Metrics, "counts", {"rows": 3.0})}
    with pytest.raises(KeyError):
        step_figure("ingest", outputs, tmp_path)
    assert display._figure("ingest", outputs) is None
