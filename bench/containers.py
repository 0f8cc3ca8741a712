"""Containers' cost: `make images` warm, and the local pipeline in its images vs without.

Runs, side by side on this machine: `make images` with nothing changed (every layer
cached: what a developer pays after a code edit is measured by touching a component),
then the whole local pipeline from an empty work folder twice, once as `make run` runs it
(kfp.local's SubprocessRunner) and once with every step in its image (`--runner docker`),
with the same settings. Prints each run's wall time, their ratio and the per-step times,
as JSON on the last line. The cold build's time is what `make images` printed on a fresh
machine (`.ci/run` prints it too); this script does not wipe podman's store.

Usage: python bench/containers.py [--set key=value ...]   (passed to both runs)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline import timed_run

REPO = Path(__file__).resolve().parents[1]


def make_images() -> float:
    start = time.perf_counter()
    subprocess.run(["make", "--no-print-directory", "images"], cwd=REPO, check=True)
    return time.perf_counter() - start


def main() -> None:
    extra = tuple(sys.argv[1:])
    warm_build = make_images()
    images = ("--runner", "docker", "--images", str(REPO / "images" / "built.json"))
    results = {}
    for name, args in (("subprocess", extra), ("docker", (*images, *extra))):
        root = Path(tempfile.mkdtemp(prefix=f"uicap-bench-{name}-"))
        seconds, steps, outcome = timed_run(root / "work", args)
        results[name] = {
            "seconds": round(seconds, 1),
            "decision": outcome["decision"],
            "steps_s": steps,
        }
        print(f"{name:<10} {seconds:7.1f} s  {outcome['decision']}")
        subprocess.run(["rm", "-rf", str(root)], check=True)
    ratio = results["docker"]["seconds"] / results["subprocess"]["seconds"]
    print(f"warm `make images`: {warm_build:.1f} s; containers / subprocess: {ratio:.2f}x")
    for step, subprocess_s in results["subprocess"]["steps_s"].items():
        docker_s = results["docker"]["steps_s"].get(step, float("nan"))
        print(
            f"  {step:<16} {subprocess_s:7.1f} s  {docker_s if docker_s is not None else '-':>7} s"
        )
    print(
        json.dumps(
            {
                "warm_images_s": round(warm_build, 1),
                "ratio": round(ratio, 3),
                "cpu_count": os.cpu_count(),
                **results,
            }
        )
    )


if __name__ == "__main__":
    main()
