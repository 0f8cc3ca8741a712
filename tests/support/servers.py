"""Real servers on loopback for the tests: an MLflow tracking server and a GCS emulator.

Each server runs as its own process group on a free port, is waited for until its health
endpoint answers, and is stopped by signalling the whole group (uvicorn and gunicorn fork
workers that outlive a signal sent to the parent alone). A server that dies or never
becomes healthy fails the fixture with the tail of its log, so a broken setup is visible.

`tests/conftest.py` imports the fixtures from here and checks at the end of the session
that no process started by the tests is still running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

VENV_BIN = Path(sys.executable).parent
STARTUP_SECONDS = 90.0
STOP_SECONDS = 10.0
BIND_ATTEMPTS = 3

# Process groups of the servers that are up now; their members are not stragglers.
_RUNNING_GROUPS: set[int] = set()

# Processes that a library or the interpreter keeps for the life of the test process and
# stops at interpreter exit, after pytest has finished: they are not stragglers.
PROCESS_LIFETIME_HELPERS = (
    "multiprocessing.resource_tracker",
    "multiprocessing.forkserver",
    # pycocoevalcap's METEOR JVM, cached per process by components.evaluate.coco_metrics.
    "meteor-1.5.jar",
)


def free_port() -> int:
    """A port that is free on 127.0.0.1 right now (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    """A server started in its own process group, with its output in a log file."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self, since: int = 0) -> str:
        """The server's output from byte offset `since` (see `log_size`)."""
        with self.log_path.open("rb") as handle:
            handle.seek(since)
            return handle.read().decode("utf-8", errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM to the whole group, then SIGKILL to whatever is left after `timeout`."""
        _RUNNING_GROUPS.discard(self.pid)
        members = _group_members(self.pid)
        _signal_group(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        _, alive = psutil.wait_procs(members, timeout=timeout)
        for survivor in alive:
            survivor.kill()
        psutil.wait_procs(alive, timeout=timeout)


def start_server(
    name: str,
    command: Callable[[int], list[str]],
    *,
    health_path: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    port: int | None = None,
) -> ServerProcess:
    """Start `command(port)` on a free port and wait until `health_path` answers 200.

    The port is probed free and then bound by the server, so another process may win the
    race; a server that exits early is retried on a new port a few times. With `port`
    given (a restart at the same address) there is one attempt, on that port.
    """
    failures: list[str] = []
    fixed_port = port
    for _ in range(1 if fixed_port is not None else BIND_ATTEMPTS):
        port = fixed_port if fixed_port is not None else free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        server = ServerProcess(name, f"http://127.0.0.1:{port}", process, log_path)
        _RUNNING_GROUPS.add(server.pid)
        try:
            _wait_healthy(server, health_path)
            return server
        except _ExitedEarly as error:
            server.stop()
            failures.append(str(error))
        except BaseException:
            server.stop()
            raise
    raise RuntimeError(f"{name} did not start:\n" + "\n---\n".join(failures))


class _ExitedEarly(RuntimeError):
    pass


def _wait_healthy(server: ServerProcess, health_path: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    url = server.url + health_path
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise _ExitedEarly(
                f"{server.name} exited with code {server.process.returncode}:\n"
                + _tail(server.log_text())
            )
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"{server.name} was not healthy at {url} after {STARTUP_SECONDS:.0f}s:\n"
        + _tail(server.log_text())
    )


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


# --- MLflow ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MlflowServer:
    """A running `mlflow server`; `uri` is the tracking (and registry) URI to use."""

    uri: str
    backend_store_uri: str
    artifacts_destination: Path
    server: ServerProcess

    @property
    def port(self) -> int:
        return int(self.uri.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> MlflowServer:
        """Stop (if still running) and start again on the same port and the same stores."""
        if self.server.process.poll() is None:
            self.stop()
        return start_mlflow_server(self.artifacts_destination.parent, port=self.port)


def start_mlflow_server(root: Path, port: int | None = None) -> MlflowServer:
    """SQLite backend, artifacts proxied by the server into `root/artifacts`, one worker.

    `port`: listen there (a restart keeps the URI clients already hold); default: a free one.
    """
    root.mkdir(parents=True, exist_ok=True)
    backend = f"sqlite:///{root / 'mlflow.db'}"
    artifacts = root / "artifacts"

    def command(port: int) -> list[str]:
        return [
            str(VENV_BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            backend,
            "--serve-artifacts",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]

    server = start_server(
        "mlflow server",
        command,
        health_path="/health",
        log_path=root / "server.log",
        # The job runner starts a pool of huey consumers for GenAI jobs that tracking
        # and the model registry never use.
        env={"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        cwd=root,
        port=port,
    )
    return MlflowServer(server.url, backend, artifacts, server)


# --- GCS emulator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GcsEmulator:
    """A running gcp-storage-emulator; `endpoint` is the value for STORAGE_EMULATOR_HOST."""

    endpoint: str
    server: ServerProcess


@dataclass(frozen=True)
class GcsBucket:
    """A fresh bucket on the emulator, with STORAGE_EMULATOR_HOST pointing at it."""

    name: str
    root: str
    emulator: GcsEmulator


def start_gcs_emulator(root: Path) -> GcsEmulator:
    """The emulator in memory: nothing outlives it, and each test makes its own bucket."""
    root.mkdir(parents=True, exist_ok=True)

    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
        ]

    server = start_server(
        "gcp-storage-emulator", command, health_path="/", log_path=root / "server.log", cwd=root
    )
    return GcsEmulator(server.url, server)


def create_bucket(emulator: GcsEmulator) -> str:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="uicap-tests",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": emulator.endpoint},
    )
    name = f"uicap-{uuid.uuid4().hex[:12]}"
    client.create_bucket(name)
    return name


# --- stragglers -----------------------------------------------------------------------------


def stray_children() -> list[psutil.Process]:
    """Live descendants of this process, other than running servers and lifetime helpers."""
    stray = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE or os.getpgid(child.pid) in _RUNNING_GROUPS:
                continue
            command = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, ProcessLookupError):
            continue
        if not any(helper in command for helper in PROCESS_LIFETIME_HELPERS):
            stray.append(child)
    return stray


def kill_stray_children() -> list[str]:
    """Kill every stray child; returns `pid: command` of each, for the failure message."""
    stray = stray_children()
    described = []
    for child in stray:
        try:
            described.append(f"{child.pid}: {' '.join(child.cmdline())[:300]}")
            child.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(stray, timeout=STOP_SECONDS)
    return described


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One tracking server for the session; tests use their own experiment/model names."""
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server
    finally:
        server.server.stop()


def forget_mlflow_uris() -> None:
    """Undo `mlflow.set_tracking_uri` / `mlflow.set_registry_uri` made by the code under test.

    MLflow keeps both URIs process-wide and also exports them to the environment for
    subprocesses. Setting them back to None unsets MLFLOW_TRACKING_URI but leaves
    MLFLOW_REGISTRY_URI, which would send a later test's registry calls to this test's
    store while its tracking calls go to its own. A fixture calls this before its
    monkeypatch restores the variables as they were before the test.
    """
    if "mlflow" not in sys.modules:
        return  # nothing can have set them
    import mlflow

    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    os.environ.pop("MLFLOW_REGISTRY_URI", None)


@pytest.fixture
def mlflow_tracking(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLFLOW_TRACKING_URI (and the registry URI) set to the session's server for one test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield mlflow_server.uri
    forget_mlflow_uris()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """One emulator process for the session (see `gcs_emulator` for a bucket per test)."""
    emulator = start_gcs_emulator(tmp_path_factory.mktemp("gcs"))
    try:
        yield emulator
    finally:
        emulator.server.stop()


@pytest.fixture
def gcs_emulator(gcs_server: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsBucket:
    """A fresh bucket, with STORAGE_EMULATOR_HOST set for this test only."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint)
    name = create_bucket(gcs_server)
    return GcsBucket(name=name, root=f"gs://{name}", emulator=gcs_server)


@pytest.fixture
def kfp_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """kfp.local with SubprocessRunner in this environment; yields the pipeline root.

    The runner writes each task's program into `mktemp -d` folders it never removes, so
    TMPDIR points into this test's own temporary folder while it runs.
    """
    from kfp import local
    from kfp.local import config as local_config

    pipeline_root = tmp_path / "pipeline-root"
    scratch = tmp_path / "tmp"
    workspace = tmp_path / "workspace"
    for folder in (pipeline_root, scratch, workspace):
        folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        workspace_root=str(workspace),
    )
    try:
        yield pipeline_root
    finally:
        local_config.LocalExecutionConfig.instance = None
