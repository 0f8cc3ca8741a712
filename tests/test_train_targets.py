"""LoRA reaches every linear of every text layer by default; vision and merger stay frozen.

MiniCPM-V 4.6's text model (Qwen3.5) mixes tokens with linear attention in three layers
of four, so these tests look at what a short real run saved: adapter weights in every
layer's token mixer and MLP, none in the vision tower, and the towers trained only when
`tune_vision` / `tune_merger` say so. The counts land in the log and the MLflow run.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from components.captioner.families import get_family
from components.train.config import TrainConfig
from components.train.recipe import RunInputs, TrainRecipe
from components.train.targets import adapter_targets, module_kind

SHORT = {
    # ui_data's two too-long train records are 4% of it.
    "batch": {
        "batch_size": 4,
        "grad_accum": 1,
        "num_workers": 0,
        "max_length": 400,
        "max_skip_fraction": 0.05,
    },
    "schedule": {"max_steps": 1, "eval_steps": 1, "save_steps": 1, "eval_at_start": False},
    "optim": {"lr": 3e-3, "warmup_ratio": 0.0},
}
LAYER = re.compile(r"language_model\.layers\.(\d+)\.(self_attn|linear_attn|mlp)\.(\w+)\.lora_A")


def _run(ui_data: Path, base: Path, output: Path, **settings: object) -> TrainRecipe:
    config = TrainConfig.model_validate({**SHORT, **settings})
    recipe = TrainRecipe(
        config,
        RunInputs(data=ui_data, base_model=str(base), output=output, progress=False),
    )
    recipe.run()
    return recipe


def _layer_types(base: Path) -> list[str]:
    return json.loads((base / "config.json").read_text())["text_config"]["layer_types"]


@pytest.fixture(scope="module")
def default_run(
    ui_data: Path, base: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainRecipe, Path, str]:
    output = tmp_path_factory.mktemp("targets-default")
    logger = logging.getLogger("uicap.train")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("MLFLOW_TRACKING_URI", raising=False)
            recipe = _run(ui_data, base, output)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    return recipe, output, "\n".join(records)


def test_default_adapter_covers_every_text_layer_mixer_and_mlp(
    default_run: tuple[TrainRecipe, Path, str], base: Path
) -> None:
    _, output, _ = default_run
    weights = load_file(output / "adapter" / "adapter_model.safetensors")
    found: dict[int, dict[str, set[str]]] = {}
    for key in weights:
        match = LAYER.search(key)
        if match:
            layer, block, proj = int(match.group(1)), match.group(2), match.group(3)
            found.setdefault(layer, {}).setdefault(block, set()).add(proj)
    layer_types = _layer_types(base)
    assert sorted(found) == list(range(len(layer_types)))
    for layer, kind in enumerate(layer_types):
        mixer = "linear_attn" if kind == "linear_attention" else "self_attn"
        expected_mixer = (
            {"in_proj_qkv", "in_proj_z", "in_proj_a", "in_proj_b", "out_proj"}
            if mixer == "linear_attn"
            else {"q_proj", "k_proj", "v_proj", "o_proj"}
        )
        assert found[layer] == {mixer: expected_mixer, "mlp": {"gate_proj", "up_proj", "down_proj"}}
    # Vision tower and merger: no adapter, nothing trained in full.
    assert not [k for k in weights if "vision_tower" in k or ".merger." in k]
    assert not [k for k in weights if "lora" not in k]


def test_counts_of_adapted_modules_are_logged_and_tracked(
    default_run: tuple[TrainRecipe, Path, str], base: Path
) -> None:
    import mlflow

    recipe, output, log_text = default_run
    layer_types = _layer_types(base)
    linear, full = layer_types.count("linear_attention"), layer_types.count("full_attention")
    expected = {"linear_attn": 5 * linear, "self_attn": 4 * full, "mlp": 3 * len(layer_types)}
    assert recipe.adapted == expected
    assert f"LoRA on {sum(expected.values())} modules" in log_text
    assert f"{recipe.trainable} of {recipe.total_params} parameters trainable" in log_text
    metadata = json.loads((output / "uicap_model.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{output / 'mlflow.db'}")
    params = client.get_run(metadata["mlflow_run_id"]).data.params
    assert {k: int(v) for k, v in params.items() if k.startswith("adapted.")} == {
        **{f"adapted.{kind}": n for kind, n in expected.items()},
        "adapted.total": sum(expected.values()),
    }
    assert int(params["trainable_params"]) == recipe.trainable > 0
    assert params["trained_in_full"] == ""


def test_tune_vision_lora_and_tune_merger_full(ui_data: Path, base: Path, tmp_path: Path) -> None:
    recipe = _run(
        ui_data, base, tmp_path / "towers", tune_vision="lora", tune_merger="full", seed=1
    )
    weights = load_file(tmp_path / "towers" / "adapter" / "adapter_model.safetensors")
    vision_lora = [k for k in weights if "vision_tower" in k and "lora_A" in k]
    merger_full = [k for k in weights if ".merger." in k and "lora" not in k]
    assert vision_lora and merger_full
    assert recipe.adapted["vision"] == len(vision_lora)
    assert recipe.in_full == ["model.merger"]
    # Every vision linear got its adapter; the tower's own weights stayed frozen.
    tower = recipe.model.get_base_model().model.vision_tower
    linears = [n for n, m in tower.named_modules() if isinstance(m, torch.nn.Linear)]
    assert recipe.adapted["vision"] == len([n for n in linears if "lora_" not in n])
    assert not [k for k in weights if "vision_tower" in k and "lora" not in k]


def test_tune_vision_full_trains_the_tower(ui_data: Path, base: Path, tmp_path: Path) -> None:
    recipe = _run(ui_data, base, tmp_path / "vision", tune_vision="full")
    weights = load_file(tmp_path / "vision" / "adapter" / "adapter_model.safetensors")
    assert recipe.in_full == ["model.vision_tower"]
    assert [k for k in weights if "vision_tower" in k and "patch_embedding" in k]
    assert "vision" not in recipe.adapted and not [k for k in weights if ".merger." in k]


@pytest.mark.parametrize("family", ["minicpmv4_6", "qwen2_vl", "idefics3", "llava"])
def test_family_regexes_name_text_linears_and_towers_apart(family: str) -> None:
    vlm = get_family(family)
    text = adapter_targets(TrainConfig(family=family), vlm).target_regex
    layers = "text_model" if family == "idefics3" else "language_model"
    for proj in ("self_attn.q_proj", "self_attn.o_proj", "mlp.down_proj"):
        assert re.fullmatch(text, f"model.{layers}.layers.3.{proj}")
    # The default target never reaches the vision side; tuned towers join it.
    for module in (*vlm.vision_modules, *vlm.merger_modules):
        assert not re.fullmatch(text, f"{module}.layers.0.self_attn.q_proj")
        assert module_kind(f"base_model.model.{module}.x.y", vlm) in {"vision", "merger"}
    both = adapter_targets(TrainConfig(family=family, tune_vision="lora", tune_merger="full"), vlm)
    assert both.modules_to_save == list(vlm.merger_modules)
    assert re.fullmatch(both.target_regex, f"model.{layers}.layers.0.mlp.up_proj")


def test_tuning_towers_has_no_meaning_with_full_training() -> None:
    with pytest.raises(ValueError, match="tune_vision=lora has no meaning with full=true"):
        TrainConfig(full=True, tune_vision="lora")
    with pytest.raises(ValueError, match="tune_merger"):
        TrainConfig(tune_merger="yes")  # type: ignore[arg-type]


def test_full_training_keeps_the_towers_frozen_by_default(
    ui_data: Path, base: Path, tmp_path: Path
) -> None:
    recipe = _run(ui_data, base, tmp_path / "full", full=True, tune_merger="full")
    frozen = {n for n, p in recipe.model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("model.vision_tower.") for n in frozen)
    family = get_family("minicpmv4_6")
    tuned, _ = family.load(tmp_path / "full" / "model")
    original, _ = family.load(base)
    changed = {
        name
        for (name, p), q in zip(tuned.named_parameters(), original.parameters(), strict=True)
        if not torch.equal(p, q)
    }
    assert changed and not [n for n in changed if "vision_tower" in n]
    assert [n for n in changed if n.startswith("model.merger.")]
    assert [n for n in changed if "language_model" in n]
