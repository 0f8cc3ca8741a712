"""On the local profile's warmed base, its own training config learns the UI task fast.

This is the train step of `uicap run`, minus kfp: the profile's config (LoRA on every
linear of every text layer, the gke target rule; embeddings and head in full; vision and
merger frozen; general replay) on the prepared UI sample, for two of its eight epochs: the
whole schedule runs in the pipeline tests. The time is reported, not asserted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from components.train.config import from_settings
from components.train.recipe import RunInputs, TrainRecipe
from tests.support.local_profile import LocalProfile


def test_lora_on_the_warmed_base_halves_validation_loss(
    local_profile: LocalProfile, tmp_path: Path
) -> None:
    config = from_settings(local_profile.settings)
    assert not config.full and config.replay_fraction > 0
    # The same target rule as gke (the family's default); the tiny base's embeddings and
    # head, which never saw a UI word, are trained in full.
    assert config.lora.target_regex is None
    assert config.lora.modules_to_save == ["lm_head", "embed_tokens"]
    assert config.tune_vision == config.tune_merger == "frozen"
    config = config.model_copy(
        update={"schedule": config.schedule.model_copy(update={"epochs": 2})}
    )
    inputs = RunInputs(
        data=local_profile.prepared,
        base_model=str(local_profile.assets.base_model),
        output=tmp_path / "candidate",
        replay_data=local_profile.assets.general_holdout,
        tracking=False,
        progress=False,
    )
    started = time.perf_counter()
    TrainRecipe(config, inputs).run()
    elapsed = time.perf_counter() - started

    metrics = json.loads((tmp_path / "candidate" / "uicap_model.json").read_text())["metrics"]
    first_val = metrics["loss_curve"][0][2]
    assert metrics["best_val_loss"] <= 0.5 * first_val, metrics["loss_curve"]
    # Replay adds general records to training only; validation is the UI task alone.
    ui_train = len(json.loads((local_profile.prepared / "train.json").read_text()))
    assert metrics["records"]["train_kept"] == ui_train + round(config.replay_fraction * ui_train)
    print(
        f"\nLoRA on the warmed base: {metrics['final_step']} steps in {elapsed:.0f}s "
        f"(train loop {metrics['train_runtime_s']:.0f}s), val loss "
        f"{first_val:.3f} -> {metrics['best_val_loss']:.3f}"
    )
    assert (tmp_path / "candidate" / "adapter" / "adapter_config.json").exists()
