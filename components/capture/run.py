"""`capture`: flows in, a dataset and capture.json out; the plain function the CLI calls.

Everything is written before the failure gate is judged, so a run with too many failures
still leaves the records and the reasons to read; it then raises FailureThresholdError.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.capture import dataset
from components.capture.browser import launch
from components.capture.flow import Flow, load_flows, rewrite_origin
from components.capture.labels import load_labels
from components.capture.privacy import Secrets
from components.capture.records import CaptureRecord, Failure, Timings
from components.capture.replay import ReplaySettings, rendering_for, replay_flow

DEFAULT_MAX_FAILURE_FRACTION = 0.1


@dataclass(frozen=True)
class CaptureResult:
    records: list[CaptureRecord]
    failures: list[Failure]
    report: dict[str, Any]


class FailureThresholdError(RuntimeError):
    """More element steps failed than allowed; the output was still written."""

    def __init__(self, result: CaptureResult, output: Path) -> None:
        counts = result.report["counts"]
        super().__init__(
            f"{counts['failed']} of {counts['element_steps']} element steps failed "
            f"({result.report['failure_fraction']:.1%}), above the allowed "
            f"{result.report['settings']['max_failure_fraction']:.1%}; every failure and its "
            f"reason is in {output / dataset.REPORT_NAME}"
        )
        self.result = result


def parse_rewrites(specs: list[str]) -> dict[str, str]:
    """`OLD=NEW` origin pairs."""
    rewrites = {}
    for spec in specs:
        old, sep, new = spec.partition("=")
        if not sep or not old or not new:
            raise ValueError(
                f"--rewrite-origin {spec!r}: expected OLD=NEW, e.g. "
                "http://127.0.0.1:8765=http://localhost:3000"
            )
        rewrites[old] = new
    return rewrites


def capture(
    flow_paths: list[Path],
    output: Path,
    labels_path: Path | None = None,
    settings: ReplaySettings | None = None,
    max_failure_fraction: float = DEFAULT_MAX_FAILURE_FRACTION,
    rewrites: dict[str, str] | None = None,
) -> CaptureResult:
    """Replay every flow, write DIR (dataset + capture.json), then judge the failure gate."""
    from playwright.sync_api import sync_playwright

    settings = settings or ReplaySettings()
    output = Path(output)
    dataset.check_replaceable(output)  # before minutes of replay, not after
    flows = [rewrite_origin(flow, rewrites or {}) for flow in load_flows(list(flow_paths))]
    labels = load_labels(labels_path, flows) if labels_path else {}
    secrets, timings = Secrets(), Timings()
    records: list[CaptureRecord] = []
    failures: list[Failure] = []
    stopped: list[Failure] = []
    per_flow: list[dict[str, Any]] = []
    start = time.perf_counter()
    with sync_playwright() as playwright:
        with timings.phase("browser start"):
            browser = launch(playwright)
        version = browser.version
        try:
            for flow in flows:
                result = replay_flow(browser, flow, settings, secrets, timings)
                records += result.records
                failures += result.failures
                stopped += result.stopped
                per_flow.append(_flow_summary(flow, settings, result.records, result.failures))
        finally:
            browser.close()
    replay_s = time.perf_counter() - start
    for record in records:
        record.summary = labels.get((record.flow, record.step), "")
    _scrub(records, secrets)
    captured = {(r.flow, r.step) for r in records}
    report = _report(
        flows,
        per_flow,
        records,
        failures,
        stopped,
        labels,
        captured,
        settings,
        max_failure_fraction,
        labels_path,
        timings,
        replay_s,
        version,
    )
    report = secrets.scrub_tree(report)
    with timings.phase("write"):
        dataset.write(records, report, output)
    result = CaptureResult(records, failures, report)
    if report["failure_fraction"] > max_failure_fraction:
        raise FailureThresholdError(result, output)
    return result


def _scrub(records: list[CaptureRecord], secrets: Secrets) -> None:
    for record in records:
        for name in ("text", "html", "page_url", "screen_id", "summary"):
            setattr(record, name, secrets.scrub(getattr(record, name)))
        record.evidence = secrets.scrub_tree(record.evidence)


def _flow_summary(
    flow: Flow, settings: ReplaySettings, records: list[CaptureRecord], failures: list[Failure]
) -> dict[str, Any]:
    return {
        "name": flow.name,
        "title": flow.title,
        "steps": len(flow.steps),
        "captured": len(records),
        "failed": len(failures),
        "rendering": dataclasses.asdict(rendering_for(flow, settings)),
    }


def _report(
    flows: list[Flow],
    per_flow: list[dict[str, Any]],
    records: list[CaptureRecord],
    failures: list[Failure],
    stopped: list[Failure],
    labels: dict[tuple[str, int], str],
    captured: set[tuple[str, int]],
    settings: ReplaySettings,
    max_failure_fraction: float,
    labels_path: Path | None,
    timings: Timings,
    replay_s: float,
    chromium: str,
) -> dict[str, Any]:
    labelled = sum(1 for r in records if r.summary)
    element_steps = len(records) + len(failures)
    unused = sorted(key for key in labels if key not in captured)
    return {
        "counts": {
            "element_steps": element_steps,
            "captured": len(records),
            "labelled": labelled,
            "unlabelled": len(records) - labelled,
            "failed": len(failures),
        },
        "failure_fraction": len(failures) / element_steps if element_steps else 0.0,
        "failures": [f.record() for f in failures],
        "flows_stopped": [f.record() for f in stopped],
        "labels": {
            "file": str(labels_path) if labels_path else None,
            "given": len(labels),
            "used": len(labels) - len(unused),
            "for_failed_steps": [{"flow": flow, "step": step} for flow, step in unused],
        },
        "flows": per_flow,
        "settings": {
            "viewport": list(settings.viewport) if settings.viewport else None,
            "device_scale_factor": settings.scale,
            "redact": list(settings.redact),
            "step_timeout_s": settings.step_timeout_s,
            "max_failure_fraction": max_failure_fraction,
        },
        "chromium": chromium,
        "seconds": round(replay_s, 3),
        "records_per_s": round(len(records) / replay_s, 3) if replay_s else None,
        "timings_s": timings.rounded(),
    }
