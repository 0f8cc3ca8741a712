"""Capture throughput: records per second on the demo flows, and where the time goes.

Serves the demo product on loopback and captures its three recorded flows with one
headless Chromium at each device scale factor given (default 1 and 2), writing the
dataset as `uicap capture` does. Prints, per scale, the records, wall seconds,
records/s and the seconds per phase measured in that same run (locate, box, html,
screenshot, action, settle, other steps, browser start; the rest is Playwright's driver,
the browser contexts and the dataset write); the JSON on the last
line holds the same figures. Goal: at least 2 records/s on 2 cores.

Usage: python bench/capture.py [SCALE ...]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from components.capture.replay import ReplaySettings
from components.capture.run import capture
from components.demo.site_server import FLOWS_DIR, RECORDED_ORIGIN, DemoSite, demo_flows


def main(scales: list[float]) -> dict[str, object]:
    results: dict[str, object] = {"cores": os.cpu_count()}
    with DemoSite() as site, tempfile.TemporaryDirectory() as scratch:
        for scale in scales:
            output = Path(scratch) / f"x{scale:g}"
            start = time.perf_counter()
            result = capture(
                demo_flows(),
                output,
                labels_path=FLOWS_DIR / "labels.jsonl",
                settings=ReplaySettings(scale=scale),
                rewrites={RECORDED_ORIGIN: site.origin},
            )
            wall = time.perf_counter() - start
            report = result.report
            count = report["counts"]["captured"]
            phases = report["timings_s"]
            print(f"scale {scale:g}: {count} records in {wall:.2f}s = {count / wall:.2f} records/s")
            for phase, seconds in phases.items():
                print(f"  {phase:<14} {seconds:6.2f}s  {seconds / wall:5.1%}")
            rest = wall - sum(phases.values())
            print(f"  {'unphased':<14} {rest:6.2f}s  {rest / wall:5.1%}  (driver, contexts, write)")
            results[f"x{scale:g}"] = {
                "records": count,
                "wall_s": round(wall, 2),
                "records_per_s": round(count / wall, 2),
                "phases_s": phases,
            }
    return results


if __name__ == "__main__":
    print(json.dumps(main([float(a) for a in sys.argv[1:]] or [1.0, 2.0])))
