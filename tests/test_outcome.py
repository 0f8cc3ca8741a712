"""The run outcome the exit handler builds from step records, and the webhook it posts to."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from components.outcome import (
    WebhookError,
    post_outcome,
    read_outcome,
    record_step,
    run_folder,
    summarize_run,
)


def test_the_gates_decision_wins_and_metrics_and_report_are_kept(tmp_path: Path) -> None:
    root = str(tmp_path)
    record_step(root, "run-1", "lineage", {"decision": None, "reasons": ["no champion yet"]})
    record_step(root, "run-1", "register", {"model_version": "3"})
    record_step(
        root,
        "run-1",
        "gate",
        {
            "decision": None,
            "reasons": ["CIDEr gain +0.1"],
            "metrics": {"candidate_CIDEr": 0.4, "base_CIDEr": 0.1},
            "report": "/r/report",
        },
    )
    record_step(root, "run-1", "promote", {"decision": "promoted", "reasons": ["CIDEr gain +0.1"]})
    outcome = summarize_run(run_folder(root, "run-1"), "run-1", "SUCCEEDED")
    assert outcome.decision == "promoted"
    assert outcome.model_version == "3"
    assert outcome.metrics == {"candidate_CIDEr": 0.4, "base_CIDEr": 0.1}
    assert outcome.report == "/r/report"
    assert read_outcome(run_folder(root, "run-1")) == outcome


def test_a_skipped_run_says_no_new_data(tmp_path: Path) -> None:
    record_step(str(tmp_path), "r", "lineage", {"decision": "no new data", "reasons": ["same"]})
    outcome = summarize_run(run_folder(str(tmp_path), "r"), "r", "SUCCEEDED")
    assert (outcome.decision, outcome.reasons) == ("no new data", ["same"])


def test_a_run_that_failed_after_a_decision_is_still_a_failure(tmp_path: Path) -> None:
    record_step(str(tmp_path), "r", "gate", {"decision": "rejected", "reasons": ["worse"]})
    outcome = summarize_run(run_folder(str(tmp_path), "r"), "r", "FAILED", "task promote failed")
    assert outcome.decision == "failed"
    assert outcome.reasons == ["run failed after: rejected", "worse"]
    assert outcome.error == "task promote failed"


def test_a_failure_names_the_steps_that_had_finished(tmp_path: Path) -> None:
    record_step(str(tmp_path), "r", "lineage", {"decision": None, "reasons": ["new data"]})
    outcome = summarize_run(run_folder(str(tmp_path), "r"), "r", "FAILED", "task failed")
    assert (outcome.decision, outcome.reasons) == ("failed", ["the run failed after: lineage"])
    empty = summarize_run(run_folder(str(tmp_path), "none"), "none", "FAILED")
    assert empty.reasons == ["the run failed after: no recorded step"]


def test_without_records_root_nothing_is_written(tmp_path: Path) -> None:
    record_step("", "r", "gate", {"decision": "rejected"})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="run id"):
        run_folder(str(tmp_path), "")


class _Hook(BaseHTTPRequestHandler):
    replies: ClassVar[list[int]] = []
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).replies.pop(0) if type(self).replies else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"replies": [], "received": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/services/T000/secret-path", handler
    server.shutdown()


def _outcome(tmp_path: Path):
    record_step(str(tmp_path), "r", "gate", {"decision": "rejected", "reasons": ["forgetting"]})
    return summarize_run(run_folder(str(tmp_path), "r"), "r", "SUCCEEDED")


def test_webhook_gets_a_readable_message_and_the_outcome(tmp_path: Path, hook) -> None:
    url, handler = hook
    assert post_outcome(url, _outcome(tmp_path)) == 200
    [payload] = handler.received
    assert payload["text"].startswith("uicap run r: SUCCEEDED — rejected")
    assert "• forgetting" in payload["text"]
    assert payload["outcome"]["decision"] == "rejected"


def test_webhook_retries_server_errors_and_never_leaks_the_url(tmp_path: Path, hook) -> None:
    url, handler = hook
    handler.replies = [503, 200]
    assert post_outcome(url, _outcome(tmp_path)) == 200
    assert len(handler.received) == 2
    handler.replies = [404]
    with pytest.raises(WebhookError) as raised:
        post_outcome(url, _outcome(tmp_path))
    assert "HTTP 404" in str(raised.value)
    assert "secret-path" not in str(raised.value)
