"""Local pipeline wall time: `uicap run` from an empty work folder, then again unchanged.

The first run makes everything: the sample data, a tiny MiniCPM-V 4.6 warmed on the
general set, then lineage, ingest, prepare, train, evaluate, register, gate and promote
through kfp.local. The second run has nothing new: it must stop at the lineage check,
before ingest.
Both are the real console script in a subprocess, as `make run` starts it. Prints both
wall times, their ratio, the decisions, and the first run's step times (from the run's
`logs/steps.json`), as JSON on the last line.

Targets: first run ≤ 180 s on 2 cores; the unchanged rerun ≤ 15% of it.

Usage: python bench/pipeline.py [WORKDIR]   (default: a fresh temporary folder)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

UICAP = str(Path(sys.executable).with_name("uicap"))


def step_seconds(records: Path) -> dict[str, float]:
    """Each step's wall time, from the `logs/steps.json` that `uicap run` writes."""
    rows = json.loads((records / "logs" / "steps.json").read_text())
    return {row["step"]: round(row["seconds"], 1) for row in rows}


def timed_run(
    workdir: Path, extra_args: tuple[str, ...] = ()
) -> tuple[float, dict[str, float], dict[str, Any]]:
    env = {
        **os.environ,
        "TMPDIR": str(workdir.parent / "tmp"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    (workdir.parent / "tmp").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run(
        [UICAP, "run", "--workdir", str(workdir), *extra_args],
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"uicap run failed with exit code {done.returncode}")
    newest = sorted((workdir / "runs").iterdir())[-1]
    outcome = json.loads(next(newest.glob("*/outcome.json")).read_text())
    return seconds, step_seconds(newest), outcome


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="uicap-b-"))
    workdir = root / "work"
    if workdir.exists() and any(workdir.iterdir()):
        raise SystemExit(f"{workdir} is not empty: the first run must start from nothing")
    first, first_steps, first_outcome = timed_run(workdir)
    second, _, second_outcome = timed_run(workdir)
    result = {
        "first_run_s": round(first, 1),
        "rerun_s": round(second, 1),
        "rerun_ratio": round(second / first, 3),
        "first_decision": first_outcome["decision"],
        "rerun_decision": second_outcome["decision"],
        "first_run_steps_s": first_steps,
        "cpu_count": os.cpu_count(),
    }
    print(f"first run (empty work folder): {result['first_run_s']} s, {result['first_decision']}")
    print(f"unchanged rerun:               {result['rerun_s']} s, {result['rerun_decision']}")
    print(f"rerun / first:                 {result['rerun_ratio']:.1%}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
