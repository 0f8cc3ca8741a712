"""Evaluation throughput: captions one record at a time vs batched, and the time to score.

Generates the UI sample (600 records), ingests and prepares it as the local profile does
(224 px images, 128-token HTML budget), builds the tiny MiniCPM-V 4.6 from its text, then
captions the prepared test split with that model through `generate_captions`:
1. `one_at_a_time`: one record per `generate` call, the seed's chat-loop style;
2. `batched`: batches of 16, longest prompt first, left padding, KV cache.
Both decode greedily up to MAX_NEW_TOKENS and stop at the end of turn. The random tiny
model rarely ends a turn early, so every caption runs close to the full length: the
heaviest case for the bench. The two must give identical captions.

Each mode runs ROUNDS times, the modes taking turns, and the fastest run counts (other
work on a shared machine only ever adds time). Then `time_scoring` scores 5,000 caption
pairs (COCO metrics, similarity, format) and bootstraps CIDEr on them.

Usage: python bench/eval_throughput.py [RECORDS] [ROUNDS] [BATCH]. JSON on the last line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sample_inputs import build_inputs

RECORDS = 600
ROUNDS = 3
BATCH = 16
MAX_NEW_TOKENS = 32
SCORED_PAIRS = 5000


def main() -> None:
    import torch
    from score_pairs import time_scoring

    from components.evaluate.generation import generate_captions
    from components.evaluate.models import resolve_model
    from components.prepare.conversations import read_split

    records_wanted = int(sys.argv[1]) if len(sys.argv) > 1 else RECORDS
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else ROUNDS
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else BATCH
    with tempfile.TemporaryDirectory(prefix="uicap-eval-bench-") as scratch:
        started = time.perf_counter()
        prepared, base = build_inputs(Path(scratch), records_wanted)
        print(f"sample, prepare and tiny model: {time.perf_counter() - started:.1f}s", flush=True)
        records = read_split(prepared, "test")
        captioning = resolve_model(str(base)).load("cpu", torch.float32)
        generate_captions(captioning, records[:2], batch_size=2, max_new_tokens=4)  # warm-up

        best: dict[str, Any] = {}
        captions: dict[str, dict[str, str]] = {}
        for round_index in range(rounds):
            for mode in ("one_at_a_time", "batched"):
                run = generate_captions(
                    captioning,
                    records,
                    batch_size=batch,
                    max_new_tokens=MAX_NEW_TOKENS,
                    one_at_a_time=mode == "one_at_a_time",
                )
                print(
                    f"round {round_index + 1} {mode}: {run.seconds:.2f}s "
                    f"({run.records_per_second:.1f} records/s)",
                    flush=True,
                )
                if mode not in best or run.seconds < best[mode].seconds:
                    best[mode] = run
                if captions.setdefault(mode, run.captions) != run.captions:
                    raise SystemExit(f"{mode}: captions changed between rounds")
        identical = captions["one_at_a_time"] == captions["batched"]
        differing = [
            i for i in captions["batched"] if captions["batched"][i] != captions["one_at_a_time"][i]
        ]
        single, batched = best["one_at_a_time"], best["batched"]
        generated_words = sum(len(c.split()) for c in captions["batched"].values())
        print(f"scoring {SCORED_PAIRS} pairs ...", flush=True)
        scoring = time_scoring(SCORED_PAIRS)

    result = {
        "records": len(records),
        "max_new_tokens": MAX_NEW_TOKENS,
        "batch_size": batch,
        "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        "one_at_a_time_records_per_s": round(single.records_per_second, 2),
        "batched_records_per_s": round(batched.records_per_second, 2),
        "one_at_a_time_seconds": round(single.seconds, 3),
        "batched_seconds": round(batched.seconds, 3),
        "speedup": round(batched.records_per_second / single.records_per_second, 2),
        "identical_captions": identical,
        "differing_ids": differing[:20],
        "mean_caption_words": round(generated_words / len(records), 2),
        "score_5000_pairs_seconds": scoring["score_seconds"],
        "scoring": scoring,
    }
    print(json.dumps(result))
    if not identical:
        raise SystemExit(f"batched captions differ from one-at-a-time ones: {differing[:20]}")


if __name__ == "__main__":
    main()
