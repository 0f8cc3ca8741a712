"""What the planner assumes about the accelerator and the data: a settings group (`plan`)."""

from __future__ import annotations

from pydantic import Field

from components.step_config import StepConfig


class PlanConfig(StepConfig):
    """The target GPU, its price, and the data size when no prepared dataset is given."""

    gpu: str = "nvidia-h100-80gb"
    # What the training process may allocate: the card's memory less the CUDA context,
    # NCCL buffers and the caching allocator's fragmentation (`headroom_gib`).
    gpu_memory_gib: float = Field(79.6, gt=0)
    headroom_gib: float = Field(3.0, ge=0)
    # Dense bf16 peak of the card, and the share of it a step reaches (model FLOPs
    # utilisation). bench/gpu_train.py measures the real share on a lent GPU.
    peak_tflops: float = Field(989.0, gt=0)
    mfu: float = Field(0.25, gt=0, le=1)
    # The share of linear speed-up that data parallelism keeps across processes and nodes
    # (gradient all-reduce, the slowest rank); measure yours and set it.
    scaling_efficiency: float = Field(0.9, gt=0, le=1)
    # On-demand price of one GPU-hour (GKE a3-highgpu list price per GPU; put your own).
    gpu_hour_usd: float = Field(11.06, ge=0)
    # Records when no prepared dataset is given: wave-ui-25k's train and validation
    # splits at prepare's 0.8/0.1 of its about 25,000 rows.
    train_records: int = Field(20_000, ge=1)
    val_records: int = Field(2_500, ge=0)
    # Text tokens of a prompt plus its answer: the template, the element's fields and
    # the HTML cut to prepare's budget. Image tokens are counted by the processor.
    text_tokens: int = Field(384, ge=1)
    # The model's config.json: a file or folder; None reads the base model's from the
    # Hub at its revision (or a local base folder), then the snapshot in published/.
    model_config_path: str | None = None
