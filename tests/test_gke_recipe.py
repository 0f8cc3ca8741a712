"""The gke training recipe on CPU: bf16, gradient checkpointing, the default adapter
targets and 1344 px screenshots, on a production-shaped tiny MiniCPM-V 4.6.

The shape (tiny_model.PRODUCTION_SHAPE) is the real one shrunk: three gated-delta layers
then one full-attention layer, 64-wide heads, and the real processor's 448 px slices (up
to 9), so each 1344x840 screenshot becomes hundreds of image tokens, as on the H100.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from components.captioner.artifact import load_captioner, read_metadata
from components.captioner.families import Turn, get_family
from components.prepare.conversations import read_split
from tests.support.preempt import PREEMPTED_EXIT, sigterm_during_step, uicap_command
from tests.support.train_data import tiny_base, write_prepared

SCREEN = (1344, 840)
# The gke profile's recipe (bf16, checkpointing, the family's default targets), shrunk
# to a few steps; a high learning rate so four steps move the validation loss.
GKE_RECIPE = [
    "precision=bf16",
    "gradient_checkpointing=true",
    "batch.batch_size=2",
    "batch.grad_accum=1",
    "batch.num_workers=0",
    "batch.max_length=1024",
    "optim.lr=1e-2",
    "optim.warmup_ratio=0",
    "schedule.max_steps=4",
    "schedule.eval_steps=2",
    "schedule.save_steps=1",
    "schedule.keep_checkpoints=4",
]
# bf16 resolution is 2**-8 of a value; a resumed run that reordered one reduction could
# move an adapter weight by that much of its update, never more. Measured: 0.0.
BF16_RESUME_TOLERANCE = 2**-8
LAYER = re.compile(r"language_model\.layers\.(\d+)\.(self_attn|linear_attn|mlp)\.")


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gke-screens")
    return write_prepared(root, train=8, val=2, test=2, max_image_side=1344, image_size=SCREEN)


@pytest.fixture(scope="module")
def production_base(tmp_path_factory: pytest.TempPathFactory, screens: Path) -> Path:
    return tiny_base(tmp_path_factory.mktemp("gke-base"), screens, shape="production")


def _args(data: Path, base: Path, output: Path) -> list[str]:
    args = ["train", "--data", str(data), "--base-model", str(base), "--output", str(output)]
    args += ["--no-progress", "--no-tracking"]
    for override in GKE_RECIPE:
        args += ["--set", override]
    return args


def test_the_processor_slices_a_large_screenshot_into_many_image_tokens(
    production_base: Path,
) -> None:
    from transformers import AutoProcessor

    family = get_family("minicpmv4_6")
    processor = AutoProcessor.from_pretrained(production_base)

    def image_tokens(size: tuple[int, int]) -> int:
        turn = Turn("t", Image.new("RGB", size, (30, 120, 200)), "What does it do?")
        ids = family.encode(processor, turn, 4096).input_ids
        return sum(token == processor.image_token_id for token in ids)

    small, large = image_tokens((448, 280)), image_tokens(SCREEN)
    assert large >= 2 * small, (small, large)  # measured: 60 and 444


def test_bf16_checkpointed_lora_learns_resumes_and_generates(
    screens: Path, production_base: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    done = subprocess.run(
        uicap_command(_args(screens, production_base, straight)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metadata = read_metadata(straight)
    assert metadata.train_config["precision"] == "bf16"
    assert metadata.train_config["gradient_checkpointing"] is True
    metrics = metadata.metrics
    assert metrics.skipped == {"train": {}, "val": {}}
    assert metrics.best_val_loss < metrics.initial_val_loss, metrics.loss_curve

    # Adapters in every text layer, in its token mixer and its MLP; the towers untouched.
    weights = load_file(straight / "adapter" / "adapter_model.safetensors")
    kinds: dict[int, set[str]] = {}
    for key in weights:
        match = LAYER.search(key)
        if match:
            kinds.setdefault(int(match[1]), set()).add(match[2])
        else:
            assert "vision_tower" not in key and "merger" not in key, key
    layer_types = json.loads((production_base / "config.json").read_text())["text_config"][
        "layer_types"
    ]
    assert layer_types == ["linear_attention"] * 3 + ["full_attention"]
    mixer = {"linear_attention": "linear_attn", "full_attention": "self_attn"}
    assert kinds == {i: {mixer[kind], "mlp"} for i, kind in enumerate(layer_types)}

    # A real SIGTERM while step 3 runs, then a rerun: the same adapter as the straight run.
    command = uicap_command(_args(screens, production_base, interrupted))
    first = sigterm_during_step(
        command, 3, reset=lambda: shutil.rmtree(interrupted, ignore_errors=True), timeout_s=600
    )
    assert first.returncode == PREEMPTED_EXIT and first.stopped_at == 3, first.output[-3000:]
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from" in second.stderr and "(step 3 of 4)" in second.stderr
    resumed = load_file(interrupted / "adapter" / "adapter_model.safetensors")
    worst = max(
        ((weights[k] - resumed[k]).abs().max() / weights[k].abs().max().clamp(min=1e-12)).item()
        for k in weights
    )
    assert worst <= BF16_RESUME_TOLERANCE, worst
    print(f"bf16 resume: worst relative adapter difference {worst:.3g}", file=sys.stderr)

    # The bf16 adapter captions a 1344 px screenshot on its base.
    captioner = load_captioner(straight, dtype=torch.bfloat16)
    record = read_split(screens, "test")[0]
    (caption,) = captioner.caption([record.turn()], max_new_tokens=8)
    assert isinstance(caption, str) and caption
