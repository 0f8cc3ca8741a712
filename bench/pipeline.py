"""Local pipeline wall time: `uicap run` from an empty work folder, then again unchanged.

The first run makes everything: the sample data, a tiny MiniCPM-V 4.6 warmed on the
general set, then ingest, lineage, prepare, train, evaluate, register, gate and promote
through kfp.local. The second run has nothing new: it must stop after the lineage check.
Both are the real console script in a subprocess, as `make run` starts it. Prints both
wall times, their ratio, the decisions, and the first run's step times (from kfp.local's
task log), as JSON on the last line.

Targets: first run ≤ 180 s on 2 cores; the unchanged rerun ≤ 15% of it.

Usage: python bench/pipeline.py [WORKDIR]   (default: a fresh temporary folder)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

UICAP = str(Path(sys.executable).with_name("uicap"))
TASK_LINE = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d+) - \w+ - (?:Executing task|Task) \S*'([\w-]+)'\S*( finished)?"
)


def step_seconds(log: str) -> dict[str, float]:
    """Each task's wall time from kfp.local's 'Executing task' / 'finished' lines."""
    started: dict[str, datetime] = {}
    took: dict[str, float] = {}
    for line in log.splitlines():
        match = TASK_LINE.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if not match:
            continue
        at = datetime.strptime(match.group(1), "%H:%M:%S.%f")
        if match.group(3):
            if match.group(2) in started:
                took[match.group(2)] = round((at - started[match.group(2)]).total_seconds(), 1)
        else:
            started[match.group(2)] = at
    return took


def timed_run(workdir: Path) -> tuple[float, str, dict[str, Any]]:
    env = {
        **os.environ,
        "TMPDIR": str(workdir.parent / "tmp"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    (workdir.parent / "tmp").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run(
        [UICAP, "run", "--workdir", str(workdir)], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"uicap run failed with exit code {done.returncode}")
    newest = sorted((workdir / "runs").iterdir())[-1]
    outcome = json.loads(next(newest.glob("*/outcome.json")).read_text())
    return seconds, done.stdout + done.stderr, outcome


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="uicap-b-"))
    workdir = root / "work"
    if workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"{workdir} is not empty: the first run must start from nothing")
    first, first_log, first_outcome = timed_run(workdir)
    second, _, second_outcome = timed_run(workdir)
    result = {
        "first_run_s": round(first, 1),
        "rerun_s": round(second, 1),
        "rerun_ratio": round(second / first, 3),
        "first_decision": first_outcome["decision"],
        "rerun_decision": second_outcome["decision"],
        "first_run_steps_s": step_seconds(first_log),
        "cpu_count": os.cpu_count(),
    }
    print(f"first run (empty work folder): {result['first_run_s']} s, {result['first_decision']}")
    print(f"unchanged rerun:               {result['rerun_s']} s, {result['rerun_decision']}")
    print(f"rerun / first:                 {result['rerun_ratio']:.1%}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
