"""Step records and the run outcome built from them.

A record is `<run_root>/steps/<step>.json`. The outcome's decision is the most specific
one any step stated: the gate's (promoted / rejected / stale evaluation) over the
lineage check's ("no new data") over nothing at all ("failed" when the run failed).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from components import storage

STEPS_DIR = "steps"
OUTCOME_FILE = "outcome.json"
# Later steps know more: their decision wins.
_DECISION_ORDER = ("lineage", "evaluate", "register", "gate", "promote")


class Outcome(BaseModel):
    """One run, as the platform team reads it in a notification or a terminal."""

    run_id: str
    status: str  # the pipeline's final state: SUCCEEDED, FAILED, ...
    decision: str  # no new data | promoted | rejected | stale evaluation | failed | ...
    reasons: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    model_version: str | None = None
    report: str | None = None
    error: str | None = None
    steps: dict[str, dict[str, Any]] = Field(default_factory=dict)


def write_step_record(run_root: str, step: str, record: dict[str, Any]) -> str:
    """Store what `step` decided or produced, for the exit handler and `uicap run`."""
    location = storage.join(run_root, STEPS_DIR, f"{step}.json")
    storage.write_text(location, json.dumps(record, indent=2, sort_keys=True, default=str))
    return location


def run_folder(records_root: str, run_id: str) -> str:
    """Where one run's records live: `<records_root>/<run_id>`."""
    if not run_id:
        raise ValueError("a run id is required to file step records")
    return storage.join(records_root, run_id)


def record_step(records_root: str, run_id: str, step: str, record: dict[str, Any]) -> None:
    """File a step's record when the pipeline keeps records (`records_root` set)."""
    if records_root:
        write_step_record(run_folder(records_root, run_id), step, record)


def read_step_records(run_root: str) -> dict[str, dict[str, Any]]:
    folder = storage.join(run_root, STEPS_DIR)
    if not storage.exists(folder):
        return {}
    records: dict[str, dict[str, Any]] = {}
    for location in storage.list_files(folder):
        name = location.rsplit("/", 1)[-1]
        if name.endswith(".json"):
            records[name[: -len(".json")]] = json.loads(storage.read_text(location))
    return records


def summarize_run(run_root: str, run_id: str, status: str, error: str | None = None) -> Outcome:
    """Fold the step records into the outcome and store it next to them."""
    steps = read_step_records(run_root)
    decision, reasons = ("failed" if status != "SUCCEEDED" else "unknown"), []
    metrics: dict[str, float] = {}
    version = report = None
    for step in _DECISION_ORDER:
        record = steps.get(step, {})
        if record.get("decision"):
            decision = record["decision"]
            reasons = list(record.get("reasons", []))
        metrics.update({k: float(v) for k, v in record.get("metrics", {}).items()})
        version = record.get("model_version", version)
        report = record.get("report", report)
    if status != "SUCCEEDED" and decision not in ("failed",):
        # A step decided, then a later one failed: the run still failed.
        reasons = [f"run {status.lower()} after: {decision}", *reasons]
        decision = "failed"
    elif decision == "failed":
        # Only the steps that finished leave a record: the failure came after the last.
        done = [step for step in _DECISION_ORDER if step in steps]
        reasons = [f"the run {status.lower()} after: {', '.join(done) or 'no recorded step'}"]
    outcome = Outcome(
        run_id=run_id,
        status=status,
        decision=decision,
        reasons=reasons,
        metrics=metrics,
        model_version=version,
        report=report,
        error=error,
        steps=steps,
    )
    storage.write_text(storage.join(run_root, OUTCOME_FILE), outcome.model_dump_json(indent=2))
    return outcome


def read_outcome(run_root: str) -> Outcome:
    return Outcome.model_validate_json(storage.read_text(storage.join(run_root, OUTCOME_FILE)))
