"""A training run's plan: per-GPU peak memory, whether it fits, step and run time, cost.

Memory comes from a traced step (components/plan/step_trace.py) at one record, scaled
to the batch: weights and optimizer state do not grow with it, the step's activations
and temporaries do. Time is the traced FLOPs at an assumed share of the card's peak
(`plan.mfu`). When the run does not fit, the plan says which change would make it fit.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from components.plan.config import PlanConfig
from components.plan.sample_shape import SampleShape
from components.plan.step_trace import StepTrace
from components.train.config import TrainConfig

GIB = 2**30


class MemoryPlan(BaseModel):
    weights_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    # Of the activations: the LM head's logits in fp32 for the loss (vocab x tokens).
    logits_gib: float
    peak_memory_gib: float
    budget_gib: float
    fits: bool
    dominated_by: str


class RunPlan(BaseModel):
    model: str
    model_config_source: str
    gpu: str
    processes: int
    # Nodes, and the GPUs paid for on all of them (a process per GPU, unless told fewer).
    nodes: int = 1
    gpus: int = 1
    scaling_efficiency: float = 1.0
    effective_batch: int = 0
    batch_size: int
    grad_accum: int
    sequence_tokens: int
    image_tokens: int
    slices: int
    total_params: int
    trainable_params: int
    gradient_checkpointing: bool
    bf16: bool
    memory: MemoryPlan
    train_records: int
    optimizer_steps: int
    step_seconds: float
    run_hours: float
    cost_usd: float
    assumptions: list[str]
    suggestions: list[str]

    def summary(self) -> dict[str, Any]:
        """The fields a script reads, flat (the `--json` line)."""
        return {
            "peak_memory_gib": self.memory.peak_memory_gib,
            "fits": self.memory.fits,
            "budget_gib": self.memory.budget_gib,
            "dominated_by": self.memory.dominated_by,
            "step_seconds": self.step_seconds,
            "run_hours": self.run_hours,
            "cost_usd": self.cost_usd,
            "memory": self.memory.model_dump(),
            "suggestions": self.suggestions,
            **self.model_dump(exclude={"memory", "suggestions"}),
        }


def scaled_memory(
    trace: StepTrace, batch_size: int, *, vocab_size: int, plan: PlanConfig
) -> MemoryPlan:
    """Memory at `batch_size`: the traced step's share that is not gradients grows with it."""
    per_record = trace.step_peak_bytes - (0 if trace.grads_persisted else trace.gradient_bytes)
    per_record /= trace.batch_size
    activations = per_record * batch_size
    peak = trace.weight_bytes + trace.optimizer_bytes + trace.gradient_bytes + activations
    parts = {
        "weights": trace.weight_bytes,
        "gradients": trace.gradient_bytes,
        "optimizer state": trace.optimizer_bytes,
        "activations": activations,
    }
    budget = plan.gpu_memory_gib - plan.headroom_gib
    return MemoryPlan(
        weights_gib=round(trace.weight_bytes / GIB, 3),
        gradients_gib=round(trace.gradient_bytes / GIB, 3),
        optimizer_gib=round(trace.optimizer_bytes / GIB, 3),
        activations_gib=round(activations / GIB, 3),
        logits_gib=round(batch_size * trace.tokens * vocab_size * 4 / GIB, 3),
        peak_memory_gib=round(peak / GIB, 3),
        budget_gib=round(budget, 3),
        fits=peak / GIB <= budget,
        dominated_by=max(parts, key=lambda name: parts[name]),
    )


def optimizer_steps(config: TrainConfig, train_records: int, processes: int) -> int:
    """As the recipe counts them: micro-batches per epoch over grad_accum, times epochs."""
    if config.schedule.max_steps is not None:
        return config.schedule.max_steps
    micro = math.ceil(train_records / (config.batch.batch_size * processes))
    return max(1, math.ceil(config.schedule.epochs * micro / config.batch.grad_accum))


def build_plan(
    trace: StepTrace,
    shape: SampleShape,
    config: TrainConfig,
    plan: PlanConfig,
    *,
    model: str,
    source: str,
    processes: int,
    vocab_size: int,
    train_records: int,
    val_records: int,
    nodes: int = 1,
    gpus: int | None = None,
) -> RunPlan:
    batch, accum = config.batch.batch_size, config.batch.grad_accum
    memory = scaled_memory(trace, batch, vocab_size=vocab_size, plan=plan)
    flops_per_second = plan.peak_tflops * 1e12 * plan.mfu
    # Each process computes its own batch; with several, the gradient all-reduce and the
    # slowest rank cost a share of the linear speed-up (plan.scaling_efficiency).
    efficiency = plan.scaling_efficiency if processes > 1 else 1.0
    compute_seconds = accum * trace.step_flops / trace.batch_size * batch / flops_per_second
    step_seconds = compute_seconds / efficiency
    gpus = gpus or processes
    steps = optimizer_steps(config, train_records, processes)
    evaluations = steps // config.schedule.eval_steps + int(config.schedule.eval_at_start) + 1
    eval_records = min(val_records, config.batch.eval_max_records or val_records)
    eval_seconds = (
        evaluations * math.ceil(eval_records / processes) * trace.forward_flops / trace.batch_size
    ) / flops_per_second
    run_hours = (steps * step_seconds + eval_seconds) / 3600
    return RunPlan(
        model=model,
        model_config_source=source,
        gpu=plan.gpu,
        processes=processes,
        nodes=nodes,
        gpus=gpus,
        scaling_efficiency=efficiency,
        effective_batch=batch * accum * processes,
        batch_size=batch,
        grad_accum=accum,
        sequence_tokens=shape.tokens,
        image_tokens=shape.image_tokens,
        slices=shape.slices,
        total_params=trace.total_params,
        trainable_params=trace.trainable_params,
        gradient_checkpointing=trace.gradient_checkpointing,
        bf16=trace.bf16,
        memory=memory,
        train_records=train_records,
        optimizer_steps=steps,
        step_seconds=round(step_seconds, 3),
        run_hours=round(run_hours, 3),
        cost_usd=round(run_hours * gpus * plan.gpu_hour_usd, 2),
        assumptions=[
            f"{processes} training process(es) on {nodes} node(s), {gpus} GPU(s) paid for; "
            f"an effective batch of {batch * accum * processes} "
            f"({batch} x {accum} accumulation x {processes} processes)"
            + (
                f", at {efficiency:.0%} scaling efficiency (plan.scaling_efficiency)"
                if processes > 1
                else ""
            ),
            f"every record as long as the longest: a {shape.image_side}px square screenshot "
            f"({shape.slices} slices, {shape.image_tokens} image tokens) plus "
            f"{shape.text_tokens} text tokens",
            f"{plan.mfu:.0%} of {plan.peak_tflops:g} TFLOP/s (plan.mfu); "
            f"{plan.headroom_gib:g} GiB of {plan.gpu_memory_gib:g} GiB kept for CUDA "
            "and the allocator",
            "linear attention traced through transformers' PyTorch path; the trainer image's "
            "flash-linear-attention kernels keep less",
        ],
        suggestions=[] if memory.fits else _suggestions(trace, config, plan, memory, vocab_size),
    )


def _suggestions(
    trace: StepTrace, config: TrainConfig, plan: PlanConfig, memory: MemoryPlan, vocab_size: int
) -> list[str]:
    """Changes that bring the peak under the budget, each checked with the same arithmetic."""
    found: list[str] = []
    batch, accum = config.batch.batch_size, config.batch.grad_accum
    effective = batch * accum
    fitting = [
        smaller
        for smaller in range(batch - 1, 0, -1)
        if scaled_memory(trace, smaller, vocab_size=vocab_size, plan=plan).fits
    ]
    # The largest batch that keeps the effective batch exactly, else the largest that fits.
    exact = [smaller for smaller in fitting if effective % smaller == 0]
    for smaller in (exact or fitting)[:1]:
        new_accum = math.ceil(effective / smaller)
        fitted = scaled_memory(trace, smaller, vocab_size=vocab_size, plan=plan)
        found.append(
            f"train.batch.batch_size={smaller} train.batch.grad_accum={new_accum} "
            f"(peak {fitted.peak_memory_gib:.1f} GiB; effective batch "
            f"{smaller * new_accum} for {effective})"
        )
    if not trace.gradient_checkpointing:
        found.append("train.gradient_checkpointing=true (keeps one layer's activations)")
    if memory.dominated_by in {"weights", "optimizer state"}:
        found.append("more GPUs with train.deepspeed=zero3 (shards weights and optimizer state)")
    if not found:
        found.append(
            "a smaller prepare.max_image_side (fewer slices and image tokens) or "
            "train.batch.max_length"
        )
    return found
