"""A real preemption from outside: SIGTERM to a `uicap train` process while a chosen step runs.

The recipe logs `step N/T loss ...` after each optimizer step (with `schedule.log_steps=1`
and no live bar) and reads stop requests once per step, right after that step's forward and
backward passes. A SIGTERM sent when the line of step N-1 appears therefore lands while
step N computes, and the run checkpoints at step N and exits with 128 + SIGTERM, unless
this process was kept off the CPU for longer than the whole of step N took. Such an attempt
is visible (the run stops at another step) and is discarded and repeated, so the caller
sees the stop at the chosen step or every attempt's outcome.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

STEP_LINE = re.compile(r"\bstep (\d+)/\d+ loss\b")
# The CLI's message; rich may wrap it (a long checkpoint path) at any space.
STOPPED = re.compile(r"SIGTERM received: saved\s+checkpoint\s.*?\bat\s+step\s+(\d+)", re.DOTALL)
PREEMPTED_EXIT = 128 + signal.SIGTERM


@dataclass(frozen=True)
class Preemption:
    """One run of the child: how it ended, all it printed, and where it stopped."""

    returncode: int
    output: str
    stopped_at: int | None  # the step of the checkpoint its SIGTERM message names
    attempts: list[int | None]  # `stopped_at` of every attempt, this one last


def uicap_command(args: Sequence[str]) -> list[str]:
    """`uicap ARGS` as a child of this interpreter (the same venv, no console script needed)."""
    return [sys.executable, "-m", "pipelines.cli", *args]


def sigterm_during_step(
    command: Sequence[str],
    step: int,
    *,
    reset: Callable[[], None],
    env: dict[str, str] | None = None,
    unset: Sequence[str] = (),
    attempts: int = 3,
    timeout_s: float = 300,
) -> Preemption:
    """Run `command` and send it a real SIGTERM while its optimizer step `step` runs.

    `reset` removes what a discarded attempt left (output folder, checkpoint mirror), so the
    next attempt starts from nothing, as the first did. The child gets this environment
    plus `env`, less the variables named in `unset`.
    """
    if step < 2:
        raise ValueError("the signal is sent on the line of step `step - 1`: choose step >= 2")
    child_env = {k: v for k, v in os.environ.items() if k not in unset} | (env or {})
    seen: list[int | None] = []
    for attempt in range(attempts):
        if attempt:
            reset()
        result = _one_attempt(command, step, child_env, timeout_s)
        seen.append(result.stopped_at)
        if result.returncode != PREEMPTED_EXIT or result.stopped_at == step:
            break
    return Preemption(result.returncode, result.output, result.stopped_at, seen)


def _one_attempt(
    command: Sequence[str], step: int, env: dict[str, str], timeout_s: float
) -> Preemption:
    child = subprocess.Popen(
        list(command),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    watchdog = threading.Timer(timeout_s, child.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line)
            found = STEP_LINE.search(line)
            if found and int(found.group(1)) == step - 1:
                child.send_signal(signal.SIGTERM)
        returncode = child.wait()
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
    output = "".join(lines)
    stopped = STOPPED.search(output)
    return Preemption(returncode, output, int(stopped.group(1)) if stopped else None, [])
