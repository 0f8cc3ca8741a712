"""Training throughput: the `uicap train` recipe vs TRL's SFTTrainer, same model, data and samples.

Builds the UI sample, ingests and prepares it (224 px images, as the local profile does),
builds the tiny MiniCPM-V 4.6 from its text, then trains LoRA adapters twice, each arm in
its own process (so peak RSS is its own):
1. `uicap`: the recipe of `uicap train` with its defaults (length-grouped batches; on a
   CPU-only machine images are encoded in the main process, see BatchConfig.num_workers);
2. `trl`: `SFTTrainer` as TRL documents it for VLMs: a prompt-completion dataset with an
   `images` column, `processing_class=processor`, `peft_config`, `max_length=None`, and
   SFTConfig's defaults otherwise (gradient checkpointing on, no dataloader workers,
   no length grouping). Only what must match for a fair race is set: learning rate and
   schedule, batch size, steps, seed, fp32 on the CPU, LoRA settings.
A third arm, `trl-no-gc`, is TRL with gradient checkpointing off, to show how much of
the gap that default alone explains. Two more race the gke recipe's numerics: `uicap-gke`
(`precision: bf16`, `gradient_checkpointing: true`: a bf16 base under fp32 adapters) and
`trl-gke` (the base loaded in bf16, `bf16=True`, gradient checkpointing on).

Tokens/s counts non-padding tokens (attention mask) per second of training: for TRL the
Trainer's own `train_runtime`, for uicap the step time plus the one-off length-indexing
pass. The final loss of each arm is its token-mean validation loss on the answer tokens.

Each arm runs ROUNDS times, the arms taking turns, and the medians are reported: the
figures come from a shared 2-core machine where other work comes and goes.

Usage: python bench/train_throughput.py [RECORDS] [EPOCHS] [ROUNDS]. JSON on the last line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sample_inputs import build_inputs

RECORDS = 240
EPOCHS = 2
ROUNDS = 3
BATCH = 8
# The recipe's default: None picks 0 workers on a CPU-only machine (see BatchConfig).
UICAP_WORKERS = None
LR = 1e-3
WARMUP = 0.05
LORA = {"rank": 16, "alpha": 32.0, "dropout": 0.05}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def arm_uicap(prepared: Path, base: Path, output: Path, steps: int, gke: bool) -> dict[str, Any]:
    from components.train.config import TrainConfig
    from components.train.recipe import RunInputs, TrainRecipe

    numerics = {"precision": "bf16", "gradient_checkpointing": True} if gke else {}
    config = TrainConfig.model_validate(
        {
            **numerics,
            "lora": LORA,
            "optim": {"lr": LR, "warmup_ratio": WARMUP, "weight_decay": 0.0},
            "batch": {"batch_size": BATCH, "grad_accum": 1, "num_workers": UICAP_WORKERS},
            "schedule": {
                "max_steps": steps,
                "eval_steps": steps,
                "save_steps": steps,
                "eval_at_start": False,
            },
        }
    )
    inputs = RunInputs(prepared, str(base), output, tracking=False, progress=False, resume=False)
    recipe = TrainRecipe(config, inputs)
    recipe.setup()
    recipe.train()
    state = recipe.state
    seconds = recipe.index_seconds + state.runtime_s
    return {
        "samples": state.samples,
        "tokens": state.tokens,
        "seconds": seconds,
        "loop_seconds": state.runtime_s,
        "index_seconds": recipe.index_seconds,
        "tokens_per_s": state.tokens / seconds,
        "final_val_loss": state.best_val_loss,
        "final_train_loss": state.loss_curve[-1][1],
        "peak_rss_mb": peak_rss_mb(),
    }


def _trl_records(prepared: Path, split: str) -> Any:
    """The prepared split as TRL's documented VLM prompt-completion dataset."""
    from datasets import Dataset, Features, Image, Sequence, Value

    from components.prepare.conversations import read_split

    rows = [
        {
            "prompt": [{"role": "user", "content": record.prompt}],
            "completion": [{"role": "assistant", "content": record.answer}],
            "images": [str(record.image)],
        }
        for record in read_split(prepared, split)
    ]
    message = {"role": Value("string"), "content": Value("string")}
    features = Features({"prompt": [message], "completion": [message], "images": Sequence(Image())})
    return Dataset.from_list(rows, features=features)


def _token_mean_loss(trainer: Any, dataset: Any) -> float:
    import torch

    model = trainer.model.eval()
    total = count = 0.0
    with torch.no_grad():
        for batch in trainer.get_eval_dataloader(dataset):
            batch = trainer._prepare_inputs(batch)
            n = (batch["labels"][:, 1:] != -100).sum().item()
            total += model(**batch).loss.item() * n
            count += n
    return total / count


def sft_trainer(model: Any, processor: Any, prepared: Path, output: Path, **settings: Any) -> Any:
    """TRL's SFTTrainer as its docs set it up for VLMs, with the LoRA of both benches.

    `settings` are SFTConfig fields on top of what every TRL arm shares (batch size, steps,
    learning rate, precision); the rest stays at SFTConfig's defaults.
    """
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from components.captioner.families import get_family

    args = SFTConfig(
        output_dir=str(output),
        max_length=None,  # the VLM docs: never truncate image tokens
        lr_scheduler_type="cosine",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=0,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        **settings,
    )
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=_trl_records(prepared, "train"),
        processing_class=processor,
        peft_config=LoraConfig(
            r=LORA["rank"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=get_family("minicpmv4_6").lora_target_regex,
        ),
    )


def arm_trl(
    prepared: Path,
    base: Path,
    output: Path,
    steps: int,
    gradient_checkpointing: bool | None,
    bf16: bool = False,
) -> dict[str, Any]:
    import torch

    from components.captioner.families import get_family

    dtype = torch.bfloat16 if bf16 else None
    model, processor = get_family("minicpmv4_6").load(base, dtype=dtype)
    overrides = {} if gradient_checkpointing is None else {"gradient_checkpointing": False}
    trainer = sft_trainer(
        model,
        processor,
        prepared,
        output,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        max_steps=steps,
        learning_rate=LR,
        warmup_steps=WARMUP,  # a float below 1 is a ratio of the steps
        weight_decay=0.0,
        bf16=bf16,  # fp32 on the CPU, as the uicap arm, unless racing the gke recipe
        use_cpu=True,
        logging_steps=1,
        **overrides,
    )
    result = trainer.train()
    seconds = result.metrics["train_runtime"]
    tokens = int(trainer.state.num_input_tokens_seen)
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    return {
        "samples": steps * BATCH,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "final_val_loss": _token_mean_loss(trainer, _trl_records(prepared, "val")),
        "final_train_loss": sum(losses) / len(losses),
        "gradient_checkpointing": trainer.args.gradient_checkpointing,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_arm(arm: str, prepared: Path, base: Path, output: Path, steps: int) -> dict[str, Any]:
    """One arm in a fresh process; its JSON result is the last line of its stdout."""
    command = [sys.executable, __file__, "--arm", arm, str(prepared), str(base), str(output)]
    command.append(str(steps))
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"arm {arm} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(arm: str, prepared: str, base: str, output: str, steps: str) -> None:
    paths = Path(prepared), Path(base), Path(output)
    if arm.startswith("uicap"):
        result = arm_uicap(*paths, int(steps), gke=arm == "uicap-gke")
    else:
        gc = False if arm == "trl-no-gc" else None
        result = arm_trl(*paths, int(steps), gradient_checkpointing=gc, bf16=arm == "trl-gke")
    print(json.dumps(result))


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else RECORDS
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else EPOCHS
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else ROUNDS
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory(prefix="uicap-bench-train-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        prepared, base = build_inputs(root, records)
        train_records = len(json.loads((prepared / "train.json").read_text()))
        steps = epochs * train_records // BATCH
        print(
            f"inputs ready in {time.perf_counter() - started:.0f}s: {train_records} train records"
        )
        # Arms alternate, round after round, so a busy spell on a shared machine hits all.
        for round_ in range(rounds):
            for arm in ARMS:
                outcome = run_arm(arm, prepared, base, root / f"{arm}-{round_}", steps)
                runs[arm].append(outcome)
                print(
                    f"round {round_ + 1} {arm:10s} {outcome['tokens_per_s']:8.0f} tokens/s"
                    f"  val loss {outcome['final_val_loss']:.4f}"
                    f"  peak RSS {outcome['peak_rss_mb']:.0f} MB"
                )
    speed = {arm: median([r["tokens_per_s"] for r in results]) for arm, results in runs.items()}
    loss = {arm: median([r["final_val_loss"] for r in results]) for arm, results in runs.items()}
    rss = {arm: max(r["peak_rss_mb"] for r in results) for arm, results in runs.items()}
    result = {
        "records_train": train_records,
        "steps": steps,
        "samples_per_arm": steps * BATCH,
        "rounds": rounds,
        "cpu_count": os.cpu_count(),
        "uicap_tokens_per_s": round(speed["uicap"], 1),
        "trl_tokens_per_s": round(speed["trl"], 1),
        "trl_no_gc_tokens_per_s": round(speed["trl-no-gc"], 1),
        "ratio_vs_trl": round(speed["uicap"] / speed["trl"], 2),
        "ratio_vs_trl_no_gc": round(speed["uicap"] / speed["trl-no-gc"], 2),
        "gke_recipe_uicap_tokens_per_s": round(speed["uicap-gke"], 1),
        "gke_recipe_trl_tokens_per_s": round(speed["trl-gke"], 1),
        "gke_recipe_ratio_vs_trl": round(speed["uicap-gke"] / speed["trl-gke"], 2),
        "gke_recipe_uicap_final_val_loss": round(loss["uicap-gke"], 4),
        "gke_recipe_trl_final_val_loss": round(loss["trl-gke"], 4),
        "uicap_final_val_loss": round(loss["uicap"], 4),
        "trl_final_val_loss": round(loss["trl"], 4),
        "trl_no_gc_final_val_loss": round(loss["trl-no-gc"], 4),
        "loss_rel_diff_vs_trl": round(loss["uicap"] / loss["trl"] - 1, 4),
        "uicap_peak_rss_mb": round(rss["uicap"]),
        "trl_peak_rss_mb": round(rss["trl"]),
        "trl_no_gc_peak_rss_mb": round(rss["trl-no-gc"]),
        "uicap_tokens": runs["uicap"][0]["tokens"],
        "trl_tokens": runs["trl"][0]["tokens"],
        "uicap_index_seconds": round(median([r["index_seconds"] for r in runs["uicap"]]), 2),
        "tokens_per_s_each_round": {
            arm: [round(r["tokens_per_s"]) for r in results] for arm, results in runs.items()
        },
    }
    print(json.dumps(result))


ARMS = ("uicap", "trl", "trl-no-gc", "uicap-gke", "trl-gke")

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--arm":
        child(*sys.argv[2:7])
    else:
        main()
