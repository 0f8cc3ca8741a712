"""How close `uicap plan`'s memory prediction is to a real training step, on this CPU.

For each case (a MiniCPM-V 4.6 of reduced size, a recipe, a screenshot size) the plan's
fake-tensor trace predicts the step's peak: weights + optimizer state + what the step
allocates. The same step then runs for real in a fresh process, measured two ways that
do not use the plan's own counter:

- allocated: glibc's count of bytes in use (mallinfo2: heap blocks in use + mmapped
  blocks), read after every op of the step; the process's count before the model was
  built is subtracted. The step runs twice, and the second is measured: what CPU
  libraries cache for the shapes (BLAS packing buffers) is then already there. This is
  what a GPU's caching allocator reports (torch.cuda.max_memory_allocated counts bytes
  handed out, touched or not).
- resident: the peak resident set (VmHWM, reset by /proc/self/clear_refs just before
  the step) less the resident size before the model was built. Pages allocated but never
  written do not count here, so it reads lower than what was allocated.

glibc hands every block of 64 KiB or more straight back to the OS (MALLOC_MMAP_THRESHOLD_),
so neither count keeps a freed arena's high-water mark. The ratio uses the allocated count.

Last line: {"cases": [...], "predicted_over_measured": the ratio furthest from 1}.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PUBLISHED = ROOT / "components/plan/published/openbmb--MiniCPM-V-4.6"

# name: (text dims, vision dims, recipe, screenshot side, text tokens)
CASES: dict[str, dict[str, Any]] = {
    "lora-bf16-checkpointing": {
        "text": {"hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 8},
        "vision": {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 7},
        "train": {"precision": "bf16", "gradient_checkpointing": True},
        "side": 896,
        "text_tokens": 256,
    },
    "lora-fp32": {
        "text": {"hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 4},
        "vision": {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 7},
        "train": {"precision": "fp32", "gradient_checkpointing": False},
        "side": 448,
        "text_tokens": 256,
    },
    "full-fp32-checkpointing": {
        "text": {"hidden_size": 384, "intermediate_size": 1024, "num_hidden_layers": 4},
        "vision": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 7},
        "train": {"precision": "fp32", "gradient_checkpointing": True, "full": True},
        "side": 896,
        "text_tokens": 256,
    },
}


def _case(name: str) -> tuple[Any, Any, Any]:
    from transformers import AutoConfig

    from components.plan.sample_shape import worst_case_shape
    from components.train.config import TrainConfig

    case = CASES[name]
    config = AutoConfig.from_pretrained(PUBLISHED)
    text = config.text_config
    layers = case["text"]["num_hidden_layers"]
    for key, value in {
        **case["text"],
        "vocab_size": 32_000,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "linear_num_key_heads": 4,
        "linear_num_value_heads": 4,
        "linear_key_head_dim": 64,
        "linear_value_head_dim": 64,
        "layer_types": text.layer_types[:layers],
    }.items():
        setattr(text, key, value)
    for key, value in {**case["vision"], "num_attention_heads": 4}.items():
        setattr(config.vision_config, key, value)
    config.image_token_id = 31_999
    preprocessor = json.loads((PUBLISHED / "preprocessor_config.json").read_text())
    shape = worst_case_shape("minicpmv4_6", preprocessor, case["side"], case["text_tokens"])
    return config, TrainConfig(**case["train"]), shape


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = _Mallinfo2


def _allocated() -> int:
    info = _libc.mallinfo2()
    return info.uordblks + info.hblkhd


class _AllocatedPeak:
    """Peak of glibc's bytes in use, sampled after every op of the step."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        peak = self

        class Sample(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                out = func(*args, **(kwargs or {}))
                peak.value = max(peak.value, _allocated())
                return out

        self.value = 0
        self._mode = Sample()

    def __enter__(self) -> _AllocatedPeak:
        Path("/proc/self/clear_refs").write_text("5")
        self.value = _allocated()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)


def _status(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1)) * 1024


def measure(name: str) -> dict[str, Any]:
    """Run the case's step for real in this process; print its peak resident bytes."""
    import torch

    from components.plan.step_trace import measure_step

    torch.manual_seed(0)
    config, train, shape = _case(name)
    kwargs: dict[str, Any] = {
        "on_gpu": False,
        "grads_persist": False,
        "batch_size": 1,
        "gradient_checkpointing": bool(train.gradient_checkpointing),
        "fake_tensors": False,
    }
    # A first run leaves behind what CPU libraries keep for these shapes (BLAS packing
    # buffers, oneDNN caches): they are not the step's, and a GPU has none of them.
    measure_step(config, train, shape, **kwargs)
    gc.collect()
    resident_before, allocated_before = _status("VmRSS"), _allocated()
    peak = _AllocatedPeak()
    started = time.perf_counter()
    trace = measure_step(config, train, shape, around_step=peak, **kwargs)
    return {
        "measured_bytes": peak.value - allocated_before,
        "resident_bytes": _status("VmHWM") - resident_before,
        "tracked_bytes": trace.weight_bytes + trace.optimizer_bytes + trace.step_peak_bytes,
        "seconds": round(time.perf_counter() - started, 1),
    }


def predict(name: str) -> dict[str, Any]:
    from components.plan.step_trace import measure_step

    config, train, shape = _case(name)
    started = time.perf_counter()
    trace = measure_step(
        config,
        train,
        shape,
        on_gpu=False,
        grads_persist=False,
        batch_size=1,
        gradient_checkpointing=bool(train.gradient_checkpointing),
    )
    return {
        "predicted_bytes": trace.weight_bytes + trace.optimizer_bytes + trace.step_peak_bytes,
        "tokens": shape.tokens,
        "trace_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2])))
        return
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "1"}
    results = []
    for name in CASES:
        run = subprocess.run(
            [sys.executable, __file__, "--measure", name],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        predicted = predict(name)
        ratio = predicted["predicted_bytes"] / measured["measured_bytes"]
        row = {"case": name, **predicted, **measured, "ratio": round(ratio, 3)}
        results.append(row)
        print(
            f"{name:26s} {predicted['tokens']:5d} tok  predicted "
            f"{predicted['predicted_bytes'] / 2**20:8.1f} MiB  measured "
            f"{measured['measured_bytes'] / 2**20:8.1f} MiB allocated "
            f"({measured['resident_bytes'] / 2**20:.1f} resident)  ratio {ratio:.3f}",
            flush=True,
        )
    worst = max((row["ratio"] for row in results), key=lambda r: abs(r - 1))
    print(json.dumps({"cases": results, "predicted_over_measured": worst}))


if __name__ == "__main__":
    main()
