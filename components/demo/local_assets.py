"""What the local profile needs before its first run: sample data and a warmed tiny base.

Nothing can be downloaded here, so the work folder gets a generated UI dataset, a
generated general-captioning set (prepared as the forgetting holdout), and a tiny
MiniCPM-V 4.6 whose weights were trained in full on the general set. That warm-up gives
the base a general skill that later LoRA training can damage, so the evaluation's
forgetting guard has something real to measure. Each piece is made once and reused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

WARM_MARKER = "uicap_base.json"
# The general set's train/val/test shares: about 110 records warm the base (and are the
# replay pool), and the forgetting guard scores the test split, about 80. With a tenth
# (10 records) the 95% interval of its CIDEr change was 1.07 wide; with 80, 0.68 at 224 px
# and 0.97 at 1344 px. Scene captions are short, so CIDEr on them stays noisy.
GENERAL_SPLITS = (0.5, 0.05, 0.45)


@dataclass(frozen=True)
class LocalAssets:
    ui_dataset: Path
    general_dataset: Path
    general_holdout: Path
    base_model: Path


def warmup_config(family: str) -> object:
    """Full training on the general set: enough to caption simple scenes."""
    from components.train.config import (
        BatchConfig,
        OptimConfig,
        ScheduleConfig,
        TrainConfig,
    )

    return TrainConfig(
        family=family,
        full=True,
        # Everything learns, the random vision tower included: the warm-up is pre-training
        # (fine-tunes leave the towers frozen by default).
        tune_vision="full",
        tune_merger="full",
        optim=OptimConfig(lr=3e-3, warmup_ratio=0.05, weight_decay=0.0),
        batch=BatchConfig(batch_size=16, grad_accum=1, num_workers=0),
        schedule=ScheduleConfig(
            epochs=5, eval_steps=20, save_steps=10_000, patience=None, eval_at_start=False
        ),
    )


def _ensure_dataset(path: Path, kind: str, console: Console) -> Path:
    from components.demo.samples import write_sample_dataset

    if not (path / "README.md").exists():
        where = escape(str(path))
        console.print(f"[cyan]making[/] the {kind} sample dataset in {where}", soft_wrap=True)
        write_sample_dataset(path, kind=kind)  # type: ignore[arg-type]
    return path


def _ensure_general_holdout(dataset: Path, output: Path, max_side: int, console: Console) -> Path:
    from components.prepare import prepare_general

    if not (output / "manifest.json").exists():
        console.print(
            f"[cyan]preparing[/] the general holdout in {escape(str(output))}", soft_wrap=True
        )
        shutil.rmtree(output, ignore_errors=True)
        prepare_general(
            str(dataset), output, max_image_side=max_side, split_fractions=GENERAL_SPLITS
        )
    return output


def _ensure_warm_base(
    workdir: Path, base: Path, general: Path, family: str, console: Console
) -> Path:
    from components.captioner.artifact import FULL_DIR
    from components.demo.samples import sample_text_corpus
    from components.demo.tiny_model import build_tiny_model
    from components.prepare.prompt import prompt_corpus
    from components.train.recipe import RunInputs, TrainRecipe

    if (base / WARM_MARKER).exists():
        return base
    console.print(
        f"[cyan]building[/] a tiny {family} and warming it on the general set", soft_wrap=True
    )
    scratch = workdir / "base-build"
    shutil.rmtree(scratch, ignore_errors=True)
    initial = build_tiny_model(
        scratch / "init", [*sample_text_corpus(), *prompt_corpus()], family=family
    )
    config = warmup_config(family)
    inputs = RunInputs(
        data=general,
        base_model=str(initial),
        output=scratch / "warm",
        tracking=False,
        resume=False,
        progress=False,
    )
    TrainRecipe(config, inputs).run()  # type: ignore[arg-type]
    warmed = scratch / "warm" / FULL_DIR
    metadata = json.loads((scratch / "warm" / "uicap_model.json").read_text())
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(warmed, base)
    (base / WARM_MARKER).write_text(
        json.dumps(
            {
                "family": family,
                "warmed_on": str(general),
                "warmup_metrics": metadata.get("metrics", {}),
            },
            indent=2,
        )
        + "\n"
    )
    shutil.rmtree(scratch, ignore_errors=True)
    return base


def ensure_local_assets(
    workdir: Path, family: str, max_image_side: int, console: Console | None = None
) -> LocalAssets:
    """Make (or reuse) the sample data, the general holdout and the warmed base.

    Each piece it makes gets one line on `console` (default: stderr); `uicap run` passes
    its own, and keeps the noise of making them in the run's logs.
    """
    console = console or Console(stderr=True)
    workdir.mkdir(parents=True, exist_ok=True)
    ui = _ensure_dataset(workdir / "data" / "ui", "ui", console)
    general = _ensure_dataset(workdir / "data" / "general", "general", console)
    holdout = _ensure_general_holdout(general, workdir / "general", max_image_side, console)
    base = _ensure_warm_base(workdir, workdir / "base-model", holdout, family, console)
    return LocalAssets(ui, general, holdout, base)
