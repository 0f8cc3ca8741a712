"""The gke recipe on a GPU: uicap's trainer vs TRL's SFTTrainer on a random MiniCPM-V 4.6
of the published size, with the plan's predictions beside the measurements.

For a GPU that a session is lent (`run` tool, see the device README). It needs nothing
from the network: the base model is built from the published config in
components/plan/published/ (1.3B parameters, random weights, bf16), the tokenizer and
chat template are the tiny model's, and the image processor slices as the published one
does (448 px slices, up to 9), so 1344 px screenshots become hundreds of image tokens.

Both arms run the gke recipe: LoRA rank 16 on every text linear, bf16, gradient
checkpointing, batch 4, for STEPS steps (grad_accum 1, so the steps are quick), each in
its own process so CUDA's peak-memory counter is its own. Printed per arm: tokens/s,
peak memory (torch.cuda.max_memory_allocated), MFU (tokens/s x the plan's traced FLOPs
per token over the card's dense bf16 peak). Then the plan's peak and step time for the
same settings. `--smoke` runs a shrunken model for 3 steps on the CPU, to check the
script itself.

Usage: python bench/gpu_train.py [--smoke] [--steps N]. JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PUBLISHED = ROOT / "components/plan/published/openbmb--MiniCPM-V-4.6"
RECORDS = 480
STEPS = 200
BATCH = 4
SMOKE_TEXT = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 4}
SMOKE_VISION = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 7}


def build_inputs(root: Path, smoke: bool) -> tuple[Path, Path]:
    """Sample UI data prepared at 1344 px, and the published-size base model."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
    from transformers.models.minicpmv4_6.image_processing_minicpmv4_6 import (
        MiniCPMV4_6ImageProcessor,
    )

    from components.demo.samples import write_sample_dataset
    from components.demo.tiny_model import build_tiny_model, corpus_from_dataset
    from components.ingest import ingest
    from components.prepare import prepare
    from components.prepare.config import PrepareConfig
    from components.prepare.token_count import BaseTokenizer

    records = 24 if smoke else RECORDS
    write_sample_dataset(root / "sample", kind="ui", records=records, seed=0)
    ingest(str(root / "sample"), root / "ingested")
    tiny = build_tiny_model(root / "tiny", corpus_from_dataset(root / "sample"))
    prepare(
        root / "ingested",
        root / "prepared",
        PrepareConfig(
            max_image_side=1344, html_budget_tokens=256, workers=min(8, os.cpu_count() or 1)
        ),
        tokenizer=BaseTokenizer(str(tiny)),
    )
    tiny_config = AutoConfig.from_pretrained(tiny)
    config = AutoConfig.from_pretrained(PUBLISHED)
    if smoke:
        text = config.text_config
        for key, value in SMOKE_TEXT.items():
            setattr(text, key, value)
        text.layer_types = text.layer_types[: SMOKE_TEXT["num_hidden_layers"]]
        for key, value in SMOKE_VISION.items():
            setattr(config.vision_config, key, value)
    # The tiny tokenizer's ids: its image and video placeholders, end and padding tokens.
    config.image_token_id = tiny_config.image_token_id
    config.video_token_id = tiny_config.video_token_id
    for key in ("eos_token_id", "pad_token_id"):
        setattr(config.text_config, key, getattr(tiny_config.text_config, key))
    base = root / "base"
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(base)
    processor = AutoProcessor.from_pretrained(tiny)
    published = json.loads((PUBLISHED / "preprocessor_config.json").read_text())
    processor.image_processor = MiniCPMV4_6ImageProcessor(
        **{k: v for k, v in published.items() if not k.endswith(("_type", "_class"))}
    )
    processor.save_pretrained(base)
    return root / "prepared", base


def _recipe(steps: int) -> Any:
    from pipelines.settings import load_settings

    config = load_settings("gke").train.config()
    return config.model_copy(
        update={
            "batch": config.batch.model_copy(update={"batch_size": BATCH, "grad_accum": 1}),
            "schedule": config.schedule.model_copy(
                update={
                    "max_steps": steps,
                    "eval_steps": steps,
                    "save_steps": steps,
                    "eval_at_start": False,
                }
            ),
        }
    )


def _peak_gib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def arm_uicap(prepared: Path, base: Path, output: Path, steps: int) -> dict[str, Any]:
    from components.train.recipe import RunInputs, TrainRecipe

    inputs = RunInputs(prepared, str(base), output, tracking=False, progress=False, resume=False)
    recipe = TrainRecipe(_recipe(steps), inputs)
    recipe.setup()
    recipe.train()
    state = recipe.state
    return {
        "tokens": state.tokens,
        "seconds": state.runtime_s,
        "tokens_per_s": state.tokens / state.runtime_s,
        "peak_gib": _peak_gib(),
        "final_train_loss": state.loss_curve[-1][1],
    }


def arm_trl(prepared: Path, base: Path, output: Path, steps: int) -> dict[str, Any]:
    import torch
    from train_throughput import sft_trainer

    from components.captioner.families import get_family

    model, processor = get_family("minicpmv4_6").load(base, dtype=torch.bfloat16)
    trainer = sft_trainer(
        model,
        processor,
        prepared,
        output,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        max_steps=steps,
        learning_rate=1e-4,
        warmup_steps=0.03,
        bf16=True,
        gradient_checkpointing=True,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=10,
    )
    result = trainer.train()
    seconds = result.metrics["train_runtime"]
    tokens = int(trainer.state.num_input_tokens_seen)
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "peak_gib": _peak_gib(),
        "final_train_loss": result.training_loss,
    }


def plan_for(base: Path, steps: int) -> Any:
    """The plan of the arms' settings (batch 4, no accumulation) for this base."""
    from pipelines.planning import plan_training
    from pipelines.settings import load_settings

    settings = load_settings(
        "gke",
        [
            f"plan.model_config_path={base}",
            f"train.batch.batch_size={BATCH}",
            "train.batch.grad_accum=1",
            f"train.schedule.max_steps={steps}",
        ],
    )
    return settings, plan_training(settings)


def run_arm(arm: str, prepared: Path, base: Path, output: Path, steps: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--arm", arm, str(prepared), str(base), str(output)]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        [*command, str(steps)], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"arm {arm} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--arm", nargs=5, metavar=("ARM", "PREPARED", "BASE", "OUT", "STEPS"))
    args = parser.parse_args()
    if args.arm:
        arm, prepared, base, output, steps = args.arm
        run = arm_uicap if arm == "uicap" else arm_trl
        print(json.dumps(run(Path(prepared), Path(base), Path(output), int(steps))))
        return
    steps = args.steps or (3 if args.smoke else STEPS)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="uicap-gpu-train-") as scratch:
        root = Path(scratch)
        prepared, base = build_inputs(root, args.smoke)
        print(f"inputs ready in {time.perf_counter() - started:.0f} s", flush=True)
        settings, plan = plan_for(base, steps)
        flops_per_token = plan.step_seconds * settings.plan.peak_tflops * 1e12 * settings.plan.mfu
        flops_per_token /= BATCH * plan.sequence_tokens
        peak_flops = settings.plan.peak_tflops * 1e12
        arms = {}
        for arm in ("uicap", "trl"):
            arms[arm] = run_arm(arm, prepared, base, root / arm, steps)
            arms[arm]["mfu"] = arms[arm]["tokens_per_s"] * flops_per_token / peak_flops
            print(
                f"{arm:6s} {arms[arm]['tokens_per_s']:9.0f} tokens/s  peak "
                f"{arms[arm]['peak_gib']:6.2f} GiB  MFU {arms[arm]['mfu']:.1%}",
                flush=True,
            )
    result = {
        "steps": steps,
        "batch_size": BATCH,
        "smoke": args.smoke,
        "uicap": arms["uicap"],
        "trl": arms["trl"],
        "ratio_vs_trl": round(arms["uicap"]["tokens_per_s"] / arms["trl"]["tokens_per_s"], 2),
        "plan": {
            "peak_memory_gib": plan.memory.peak_memory_gib,
            "sequence_tokens": plan.sequence_tokens,
            "step_seconds": plan.step_seconds,
            "assumed_mfu": settings.plan.mfu,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
