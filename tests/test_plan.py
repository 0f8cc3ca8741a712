"""The run planner: its arithmetic on hand-checkable numbers, its trace against a real
step of the same small model, and the CLI's fit check on compile."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from components.plan.config import PlanConfig
from components.plan.estimate import RunPlan, build_plan, optimizer_steps, scaled_memory
from components.plan.sample_shape import worst_case_shape
from components.plan.step_trace import StepTrace, measure_step
from components.train.config import TrainConfig

GIB = 2**30
PUBLISHED = Path(__file__).parents[1] / "components/plan/published/openbmb--MiniCPM-V-4.6"


def _trace_of(step_peak_gib: float, *, persisted: bool = False) -> StepTrace:
    return StepTrace(
        batch_size=1,
        tokens=1000,
        total_params=5 * GIB,
        trainable_params=GIB // 4,
        weight_bytes=10 * GIB,
        gradient_bytes=1 * GIB,
        optimizer_bytes=2 * GIB,
        step_peak_bytes=int(step_peak_gib * GIB),
        forward_flops=10**12,
        step_flops=3 * 10**12,
        gradient_checkpointing=True,
        bf16=True,
        grads_persisted=persisted,
    )


def _plan(config: TrainConfig, plan: PlanConfig) -> RunPlan:
    """The plan of `_trace_of(6.0)` for ten records of a 448 px screenshot."""
    shape = worst_case_shape("minicpmv4_6", {}, 448, 100)
    return build_plan(
        _trace_of(6.0),
        shape,
        config,
        plan,
        model="m",
        source="s",
        processes=1,
        vocab_size=1000,
        train_records=10,
        val_records=0,
    )


def test_memory_scales_activations_with_the_batch_and_counts_gradients_once() -> None:
    plan = PlanConfig(gpu_memory_gib=79.6, headroom_gib=3.0)
    # 6 GiB traced at one record, 1 GiB of it gradients: 5 GiB per record.
    memory = scaled_memory(_trace_of(6.0), 8, vocab_size=1000, plan=plan)
    assert memory.activations_gib == pytest.approx(40.0)
    assert memory.peak_memory_gib == pytest.approx(10 + 1 + 2 + 40)
    assert memory.budget_gib == pytest.approx(76.6)
    assert memory.fits and memory.dominated_by == "activations"
    # Gradients that existed before the traced step are not part of its peak.
    persisted = scaled_memory(_trace_of(5.0, persisted=True), 8, vocab_size=1000, plan=plan)
    assert persisted.peak_memory_gib == pytest.approx(memory.peak_memory_gib)
    too_big = scaled_memory(_trace_of(6.0), 16, vocab_size=1000, plan=plan)
    assert too_big.peak_memory_gib == pytest.approx(93.0) and not too_big.fits
    # fp32 logits of 16 records x 1000 tokens x 1000 words.
    assert too_big.logits_gib == pytest.approx(16 * 1000 * 1000 * 4 / GIB, abs=1e-3)


def test_steps_time_and_cost_follow_the_recipe_arithmetic() -> None:
    config = TrainConfig(batch={"batch_size": 8, "grad_accum": 4}, schedule={"epochs": 3})
    # 20,000 records: 2,500 micro-batches an epoch, 625 optimizer steps, three epochs.
    assert optimizer_steps(config, 20_000, processes=1) == 1875
    assert optimizer_steps(config, 20_000, processes=2) == 938
    plan = PlanConfig(peak_tflops=1000, mfu=0.5, gpu_hour_usd=10.0)
    config = TrainConfig(
        batch={"batch_size": 2, "grad_accum": 2},
        schedule={"max_steps": 3600, "eval_steps": 100000, "eval_at_start": False},
    )
    result = _plan(config, plan)
    # 3e12 FLOPs a record x 2 records x 2 micro-batches at 5e14 FLOP/s: 0.024 s a step.
    assert result.step_seconds == pytest.approx(0.024)
    assert result.run_hours == pytest.approx(3600 * 0.024 / 3600, rel=1e-3)
    assert result.cost_usd == pytest.approx(result.run_hours * 10.0, abs=0.01)


def test_nodes_times_gpus_divide_the_steps_at_the_stated_efficiency_and_pay_every_gpu() -> None:
    config = TrainConfig(batch={"batch_size": 8, "grad_accum": 4}, schedule={"epochs": 3})
    plan = PlanConfig(peak_tflops=1000, mfu=0.5, gpu_hour_usd=10.0, scaling_efficiency=0.8)
    shape = worst_case_shape("minicpmv4_6", {}, 448, 100)
    common = {
        "model": "m",
        "source": "s",
        "vocab_size": 1000,
        "train_records": 20_000,
        "val_records": 0,
    }
    one = build_plan(_trace_of(6.0), shape, config, plan, processes=1, **common)
    many = build_plan(_trace_of(6.0), shape, config, plan, processes=16, nodes=2, gpus=16, **common)
    assert (many.nodes, many.gpus, many.effective_batch) == (2, 16, 8 * 4 * 16)
    assert many.optimizer_steps == math.ceil(one.optimizer_steps / 16)
    # Per-GPU memory does not change; each step is slower by the lost efficiency.
    assert many.memory.peak_memory_gib == one.memory.peak_memory_gib
    assert many.step_seconds == pytest.approx(one.step_seconds / 0.8, rel=1e-3)
    expected_hours = many.optimizer_steps * many.step_seconds / 3600
    assert many.cost_usd == pytest.approx(expected_hours * 16 * 10.0, rel=1e-2)
    assert any("2 node(s)" in line and "80% scaling" in line for line in many.assumptions)


def test_the_trainjob_launcher_plans_one_process_per_gpu_on_every_node() -> None:
    from pipelines.planning import training_placement
    from pipelines.settings import load_settings

    settings = load_settings(
        "gke",
        [
            "kubernetes.train_launcher=trainjob",
            "kubernetes.train_nodes=3",
            "kubernetes.accelerator_count=8",
        ],
    )
    assert training_placement(settings) == (24, 3, 24)
    assert training_placement(load_settings("gke")) == (1, 1, 1)


def test_suggests_the_largest_batch_that_keeps_the_effective_batch() -> None:
    plan = PlanConfig(gpu_memory_gib=79.6, headroom_gib=3.0)
    config = TrainConfig(batch={"batch_size": 16, "grad_accum": 2})
    result = _plan(config, plan)
    assert not result.memory.fits
    # 13 + 5b <= 76.6 allows b = 12; of those, 8 divides the effective batch of 32.
    assert result.suggestions[0].startswith("train.batch.batch_size=8 train.batch.grad_accum=4")


def test_slicing_gives_a_1344px_screenshot_nine_slices() -> None:
    preprocessor = json.loads((PUBLISHED / "preprocessor_config.json").read_text())
    big = worst_case_shape("minicpmv4_6", preprocessor, 1344, 384)
    small = worst_case_shape("minicpmv4_6", preprocessor, 448, 384)
    # 448 px slices of 32 x 32 patches, merged 16 to 1: 64 tokens each, plus markers.
    assert (big.slices, big.placeholders) == (9, 640)
    assert (small.slices, small.placeholders) == (0, 64)
    assert big.tokens == big.image_tokens + 384


def _small_config() -> object:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(PUBLISHED)
    text = config.text_config
    for key, value in {
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 4,
        "layer_types": text.layer_types[:4],
        "vocab_size": 4096,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 64,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 2,
        "linear_key_head_dim": 32,
        "linear_value_head_dim": 32,
    }.items():
        setattr(text, key, value)
    for key, value in {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 7}.items():
        setattr(config.vision_config, key, value)
    config.num_attention_heads = 2
    config.vision_config.num_attention_heads = 2
    config.image_token_id = 4095
    return config


def test_the_fake_trace_matches_a_real_step_of_the_same_model() -> None:
    """Same code, fake tensors or real: the bytes agree, and the parts are the hand sums."""
    config = _small_config()
    train = TrainConfig(precision="bf16", gradient_checkpointing=True)
    shape = worst_case_shape("minicpmv4_6", {}, 448, 64)
    kwargs = {"on_gpu": False, "grads_persist": False, "batch_size": 1}
    fake = measure_step(config, train, shape, gradient_checkpointing=True, **kwargs)
    torch.manual_seed(0)
    real = measure_step(
        config, train, shape, gradient_checkpointing=True, fake_tensors=False, **kwargs
    )
    assert fake.weight_bytes == real.weight_bytes
    assert fake.step_peak_bytes == pytest.approx(real.step_peak_bytes, rel=0.1)
    assert fake.step_flops == real.step_flops
    # LoRA adapters in fp32: 4-byte gradients; AdamW keeps two fp32 moments per value
    # and one 4-byte step count per tensor.
    assert fake.gradient_bytes == 4 * fake.trainable_params
    step_counts = fake.optimizer_bytes - 8 * fake.trainable_params
    assert 0 < step_counts < 4 * 1000 and step_counts % 4 == 0


@pytest.fixture
def small_model_config(tmp_path: Path) -> Path:
    folder = tmp_path / "small-config"
    _small_config().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        (PUBLISHED / "preprocessor_config.json").read_text()
    )
    return folder


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> object:
    from pipelines.cli import app

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_plan_json_says_a_batch_too_big_does_not_fit(
    small_model_config: Path, ui_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base = [
        "plan",
        "--profile",
        "gke",
        "--json",
        "--set",
        f"plan.model_config_path={small_model_config}",
    ]
    fits = _cli([*base, "--set", "plan.gpu_memory_gib=8"], monkeypatch, tmp_path)
    assert fits.exit_code == 0, fits.output
    planned = json.loads(fits.output.strip().splitlines()[-1])
    assert planned["fits"] is True
    assert {"peak_memory_gib", "step_seconds", "run_hours", "cost_usd", "dominated_by"} <= set(
        planned
    )
    huge = _cli(
        [*base, "--set", "plan.gpu_memory_gib=8", "--set", "train.batch.batch_size=256"],
        monkeypatch,
        tmp_path,
    )
    too_big = json.loads(huge.output.strip().splitlines()[-1])
    assert too_big["fits"] is False
    assert too_big["peak_memory_gib"] > planned["peak_memory_gib"]
    assert too_big["suggestions"][0].startswith("train.batch.batch_size=")
    # A prepared folder's counts replace the profile's assumed data size.
    counted = _cli([*base, "--dataset", str(ui_data)], monkeypatch, tmp_path)
    from_data = json.loads(counted.output.strip().splitlines()[-1])
    train = json.loads((ui_data / "manifest.json").read_text())["counts"]["train"]
    assert from_data["train_records"] == train
    assert from_data["run_hours"] < planned["run_hours"]


def test_compile_refuses_a_run_that_cannot_fit_unless_forced(
    small_model_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    output = tmp_path / "retrain.yaml"
    args = [
        "compile",
        "--profile",
        "gke",
        "--output",
        str(output),
        "--set",
        f"plan.model_config_path={small_model_config}",
        "--set",
        "plan.gpu_memory_gib=3.1",
    ]
    refused = _cli(args, monkeypatch, tmp_path)
    assert refused.exit_code == 2
    assert "pass --force" in refused.output and not output.exists()
    forced = _cli([*args, "--force"], monkeypatch, tmp_path)
    assert forced.exit_code == 0 and output.is_file()
