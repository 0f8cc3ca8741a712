"""The test servers are real: MLflow over HTTP, kfp.local running our package, clean stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.servers import MlflowServer, kill_stray_children, start_server, stray_children


def test_mlflow_run_logged_over_http_reads_back_the_same(
    mlflow_tracking: str, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    experiment = f"servers-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(experiment)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"cider": 1.25, "note": "caf\u00e9"}))
    with mlflow.start_run() as run:
        mlflow.log_params({"lora.rank": 16, "base": "tiny"})
        for step, loss in enumerate([2.5, 1.75, 1.125]):
            mlflow.log_metric("train_loss", loss, step=step)
        mlflow.log_artifact(str(report), artifact_path="eval")

    client = MlflowClient(tracking_uri=mlflow_tracking)
    stored = client.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"lora.rank": "16", "base": "tiny"}
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (0, 2.5),
        (1, 1.75),
        (2, 1.125),
    ]
    # Artifacts travel through the server's proxy into its artifacts destination.
    assert stored.info.artifact_uri.startswith("mlflow-artifacts:")
    assert [a.path for a in client.list_artifacts(run.info.run_id, "eval")] == ["eval/report.json"]
    fetched = client.download_artifacts(run.info.run_id, "eval/report.json", str(tmp_path / "dl"))
    assert Path(fetched).read_bytes() == report.read_bytes()
    on_server = list(mlflow_server.artifacts_destination.rglob("report.json"))
    assert len(on_server) == 1 and on_server[0].read_bytes() == report.read_bytes()


def test_kfp_local_runs_our_package_in_a_subprocess(kfp_local: Path) -> None:
    from tests.support.kfp_probe import write_marker

    task = write_marker(text="hello")
    artifact_path = Path(task.outputs["marker"].path)
    assert artifact_path.is_relative_to(kfp_local)
    written = artifact_path.read_text()
    text, _, pid = written.partition(" from pid ")
    assert text == "hello"
    assert int(pid) != os.getpid()
    # The runner's scratch folders went to this test's TMPDIR, not the machine's /tmp.
    assert any((kfp_local.parent / "tmp").iterdir())


def test_server_stop_ends_its_whole_process_group(tmp_path: Path) -> None:
    # A parent that forks a long-lived child, like uvicorn or gunicorn with workers.
    script = (
        "import http.server, subprocess, sys;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        "http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler,"
        " port=int(sys.argv[1]), bind='127.0.0.1')"
    )
    server = start_server(
        "forking server",
        lambda port: [sys.executable, "-c", script, str(port)],
        health_path="/",
        log_path=tmp_path / "server.log",
        cwd=tmp_path,
    )
    assert requests.get(server.url + "/", timeout=5).status_code == 200
    group = [p for p in psutil.process_iter() if _pgid(p.pid) == server.pid]
    assert len(group) == 2

    server.stop()
    assert not [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert server.process.poll() is not None


def test_a_server_that_exits_fails_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"(?s)did not start.*exited with code 3.*boom"):
        start_server(
            "broken",
            lambda port: [sys.executable, "-c", "print('boom'); raise SystemExit(3)"],
            health_path="/",
            log_path=tmp_path / "server.log",
        )


def test_straggler_check_finds_and_kills_a_leftover_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert child.pid in [p.pid for p in stray_children()]
        killed = kill_stray_children()
        assert any(line.startswith(f"{child.pid}: ") for line in killed)
        deadline = time.monotonic() + 5
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.returncode is not None
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
