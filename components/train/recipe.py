"""The training recipe: one class that reads top to bottom, setup -> resume -> train -> finalize.

Accelerate does device placement, DDP, DeepSpeed and gradient accumulation; everything
a resumed run needs to continue exactly (weights, optimizer, scheduler, RNG streams,
step, position in the epoch, early-stopping bookkeeping) goes into each checkpoint. A
SIGTERM (a Spot preemption) is turned into a checkpoint at the next step boundary and a
`Preempted` error; running the same command again picks up from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import resource
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from components.captioner.artifact import (
    ADAPTER_DIR,
    FULL_DIR,
    ModelMetadata,
    TrainMetrics,
    write_metadata,
)
from components.captioner.families import IGNORE_INDEX, get_family
from components.prepare.conversations import PreparedRecord, read_split
from components.prepare.manifest import read_manifest
from components.step_config import decisive
from components.step_config import flatten as flatten_dict
from components.train.checkpoints import MARKER, CheckpointStore
from components.train.config import TrainConfig, flatten
from components.train.data import (
    EncodingCache,
    LengthGroupedBatchSampler,
    LengthIndex,
    TurnDataset,
    check_skipped,
    eval_batches,
    index_lengths,
    make_loader,
    resolve_workers,
)
from components.train.rank_files import gather_to_main
from components.train.targets import frozen_towers
from components.train.tracking import RunTracker
from components.train.trainable import adamw_groups, checkpointing, make_trainable, precision

log = logging.getLogger("uicap.train")

STATE_FILE = "trainer_state.json"
INDEX_FILE = "length_index.json"
PIPELINE_RUN_ENV = "UICAP_PIPELINE_RUN_ID"


class ResumeMismatchError(ValueError):
    """The output holds checkpoints of a run with other data, base or settings."""


class Preempted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; re-run to resume."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} received: saved checkpoint {checkpoint} at step {step}; "
            "run the same command again to resume from it"
        )
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class RunInputs:
    """Where the data, base and output are, and how this invocation behaves."""

    data: Path
    base_model: str
    output: Path
    checkpoint_dir: Path | None = None
    checkpoint_mirror: str | None = None
    # A prepared general set; its train split is the replay pool (`replay_fraction`).
    replay_data: Path | None = None
    tracking_uri: str | None = None
    tracking: bool = True
    pipeline_run_id: str | None = None
    resume: bool = True
    progress: bool = True


@dataclass
class TrainerState:
    """Everything besides tensors that a resumed run must restore to continue exactly."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of `epoch` this rank has consumed
    samples: int = 0
    tokens: int = 0
    runtime_s: float = 0.0
    initial_val_loss: float | None = None
    best_val_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    eval_pending: bool = False
    loss_curve: list[tuple[int, float | None, float]] = field(default_factory=list)
    train_loss_sum: float = 0.0  # since the last evaluation
    train_loss_steps: int = 0
    mlflow_run_id: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)


class TrainRecipe:
    """LoRA (or full) fine-tuning of a VLM family on a prepared directory."""

    def __init__(self, config: TrainConfig, inputs: RunInputs) -> None:
        self.config = config
        self.inputs = inputs
        self.output = Path(inputs.output)
        self.state = TrainerState()
        self.family = get_family(config.family)
        self._stop_signal: int | None = None
        # Modules with LoRA adapters by kind, and those trained in full next to them.
        self.adapted: dict[str, int] = {}
        self.in_full: list[str] = []
        self._previous_handler: Any = None
        self._progress_lines = False  # log a line per logged step (no live bar to show it)

    # ------------------------------------------------------------------ run
    def run(self) -> Path:
        self.setup()
        try:
            if self.inputs.resume:
                self.resume()
            else:
                self._discard_checkpoints()
            self.start_tracking()
            self.train()
            return self.finalize()
        except Preempted:
            self.tracker.end("KILLED")
            raise
        except BaseException:
            self.tracker.end("FAILED")
            raise
        finally:
            self._restore_signal_handler()

    # ---------------------------------------------------------------- setup
    def setup(self) -> None:
        self._setup_accelerator()
        self._setup_model()
        self._setup_data()
        self._setup_optimizer()
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            self.model, self.optimizer, self.scheduler
        )
        self.accelerator.register_save_state_pre_hook(self._save_trainable_only)
        self.accelerator.register_load_state_pre_hook(self._load_trainable_only)
        self.store = CheckpointStore(
            self.inputs.checkpoint_dir or self.output / "checkpoints",
            keep_last=self.config.schedule.keep_checkpoints,
            mirror=self.inputs.checkpoint_mirror,
        )
        self.tracker = RunTracker(
            enabled=self.inputs.tracking and self.accelerator.is_main_process,
            tracking_uri=self.inputs.tracking_uri,
            output=self.output,
        )
        self._install_signal_handler()

    def _setup_accelerator(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DeepSpeedPlugin, set_seed

        cfg = self.config
        self.on_gpu = torch.cuda.is_available()
        self.bf16 = precision(cfg, on_gpu=self.on_gpu).bf16
        plugin = None
        if cfg.deepspeed:
            from components.train.deepspeed import deepspeed_config
            from components.train.run import ensure_single_process_env

            ensure_single_process_env()
            plugin = DeepSpeedPlugin(
                hf_ds_config=deepspeed_config(
                    cfg.deepspeed,
                    micro_batch=cfg.batch.batch_size,
                    grad_accum=cfg.batch.grad_accum,
                    max_grad_norm=cfg.optim.max_grad_norm,
                    bf16=self.bf16,
                    world_size=int(os.environ["WORLD_SIZE"]),
                )
            )
        self.accelerator = Accelerator(
            # On a CPU-only machine torchrun's processes form a gloo group (MULTI_CPU);
            # DeepSpeed brings its own CPU accelerator.
            cpu=not self.on_gpu and plugin is None,
            gradient_accumulation_steps=cfg.batch.grad_accum,
            mixed_precision="bf16" if self.bf16 else "no",
            deepspeed_plugin=plugin,
            # The scheduler steps once per optimizer update, whatever the process count.
            step_scheduler_with_optimizer=False,
        )
        set_seed(cfg.seed)
        if self.accelerator.is_main_process:
            self.output.mkdir(parents=True, exist_ok=True)

    def _setup_model(self) -> None:
        cfg = self.config
        dtypes = precision(cfg, on_gpu=self.on_gpu)
        self.input_dtype = dtypes.input_dtype
        model, self.processor = self.family.load(
            self.inputs.base_model, cfg.base_revision, dtype=dtypes.load_dtype
        )
        built = make_trainable(
            model, cfg, self.family, gradient_checkpointing=checkpointing(cfg, on_gpu=self.on_gpu)
        )
        self.adapted, self.in_full = built.adapted, built.in_full
        self.trainable, self.total_params = built.trainable, built.total
        self.model = built.model
        log.info(
            "%s: %s; %d of %d parameters trainable",
            cfg.family,
            f"full fine-tune, frozen: {', '.join(frozen_towers(cfg, self.family)) or 'none'}"
            if cfg.full
            else f"LoRA on {sum(self.adapted.values())} modules {self.adapted}, "
            f"in full: {', '.join(self.in_full) or 'none'}",
            self.trainable,
            self.total_params,
        )

    def _setup_data(self) -> None:
        cfg, acc = self.config, self.accelerator
        data = Path(self.inputs.data)
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", acc.num_processes))
        self.num_workers = resolve_workers(cfg.batch.num_workers, self.on_gpu, per_node)
        self.manifest = read_manifest(data)
        records = {split: read_split(data, split) for split in ("train", "val")}
        self.replay = self._replay_records(len(records["train"]))
        records["train"] = records["train"] + self.replay
        # One cache for the indexing pass, training and validation: the pass's encodings
        # are the first epoch's.
        cache = self.encoding_cache = EncodingCache(cfg.batch.encoding_cache_mb * 2**20)
        datasets = {
            split: TurnDataset(recs, self.family, self.processor, cfg.batch.max_length, cache)
            for split, recs in records.items()
        }
        self.index = self._length_index(data, datasets)
        kept = {split: [recs[i] for i in self.index[split].kept] for split, recs in records.items()}
        val_lengths = self.index["val"].lengths
        if cfg.batch.eval_max_records is not None:
            kept["val"] = kept["val"][: cfg.batch.eval_max_records]
            val_lengths = val_lengths[: cfg.batch.eval_max_records]
        for split in ("train", "val"):
            check_skipped(
                split, self.index[split], cfg.batch.max_skip_fraction, cfg.batch.max_length
            )
        self.train_set = TurnDataset(
            kept["train"], self.family, self.processor, cfg.batch.max_length, cache
        )
        self.val_set = TurnDataset(
            kept["val"], self.family, self.processor, cfg.batch.max_length, cache
        )
        self.sampler = LengthGroupedBatchSampler(
            self.index["train"].lengths,
            batch_size=cfg.batch.batch_size,
            seed=cfg.seed,
            group_by_length=cfg.batch.group_by_length,
            group_size=cfg.batch.group_size,
            num_replicas=acc.num_processes,
            rank=acc.process_index,
        )
        self.val_batches, self.val_counted = eval_batches(
            val_lengths, cfg.batch.eval_batch_size, acc.num_processes, acc.process_index
        )
        self.micro_per_epoch = len(self.sampler)
        steps_per_epoch = self.micro_per_epoch / cfg.batch.grad_accum
        self.total_steps = cfg.schedule.max_steps or max(
            1, math.ceil(cfg.schedule.epochs * steps_per_epoch)
        )
        # The config sets the per-process batch: more processes mean a larger effective
        # batch (and fewer steps per epoch), so the run says what it is.
        self.effective_batch = cfg.batch.batch_size * cfg.batch.grad_accum * acc.num_processes
        log.info(
            "effective batch %d = %d per process x %d accumulation x %d processes; "
            "%d steps of %d micro-batches per epoch per process",
            self.effective_batch,
            cfg.batch.batch_size,
            cfg.batch.grad_accum,
            acc.num_processes,
            math.ceil(steps_per_epoch),
            self.micro_per_epoch,
        )

    def _replay_records(self, task_records: int) -> list[PreparedRecord]:
        """A seeded draw from the replay pool, `replay_fraction` × the task's records.

        Validation stays task-only: its loss measures the task, and the evaluation's
        general holdout (another split of the general set) measures what was kept.
        """
        fraction = self.config.replay_fraction
        if fraction == 0:
            return []
        if self.inputs.replay_data is None:
            raise ValueError(
                f"replay_fraction={fraction} needs replay data: pass --replay-data with a "
                "prepared general set"
            )
        pool = read_split(Path(self.inputs.replay_data), "train")
        wanted = round(fraction * task_records)
        rng = random.Random(self.config.seed)
        whole, rest = divmod(wanted, len(pool))
        return pool * whole + rng.sample(pool, rest)

    def _length_index(self, data: Path, datasets: dict[str, TurnDataset]) -> dict[str, LengthIndex]:
        """Lengths of every record, measured once and cached in the output folder."""
        from accelerate.utils import broadcast_object_list

        key = hashlib.sha256(
            json.dumps(
                [
                    self.inputs.base_model,
                    self.config.family,
                    self.config.batch.max_length,
                    *(
                        hashlib.sha256((data / f"{s}.json").read_bytes()).hexdigest()
                        for s in datasets
                    ),
                    [record.id for record in self.replay],
                ]
            ).encode()
        ).hexdigest()
        self.data_key = key
        cache = self.output / INDEX_FILE
        started = time.perf_counter()
        payload: list[Any] = [None]
        if self.accelerator.is_main_process:
            cached = json.loads(cache.read_text()) if cache.is_file() else {}
            if cached.get("key") != key:
                measured = {
                    split: index_lengths(dataset, self.num_workers).to_json()
                    for split, dataset in datasets.items()
                }
                cached = {"key": key, **measured}
                cache.write_text(json.dumps(cached))
            payload = [cached]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(payload, from_process=0)
        index = {split: LengthIndex.from_json(payload[0][split]) for split in datasets}
        self.index_seconds = time.perf_counter() - started
        for split, item in index.items():
            for skipped in item.skipped:
                log.warning("skipping %s record %s", split, skipped.detail)
        return index

    def _setup_optimizer(self) -> None:
        from transformers import get_cosine_with_min_lr_schedule_with_warmup

        opt = self.config.optim
        self.optimizer = torch.optim.AdamW(
            adamw_groups(self.model, opt.weight_decay),
            lr=opt.lr,
            betas=opt.betas,
            eps=opt.eps,
        )
        self.scheduler = get_cosine_with_min_lr_schedule_with_warmup(
            self.optimizer,
            num_warmup_steps=math.ceil(opt.warmup_ratio * self.total_steps),
            num_training_steps=self.total_steps,
            min_lr_rate=opt.min_lr_ratio,
        )

    # --------------------------------------------------------------- resume
    def resume(self) -> int | None:
        """Restore the newest whole checkpoint, if any; returns its step."""
        from accelerate.utils import broadcast_object_list

        acc = self.accelerator
        found: list[Any] = [None]
        if acc.is_main_process:
            latest = self.store.latest()
            found = [latest.step if latest else None]
        if acc.num_processes > 1:
            broadcast_object_list(found, from_process=0)
        if found[0] is None:
            return None
        # The main process chose the step; every other node brings that step to its disk.
        path = self.store.root / self.store.step_name(found[0])
        if acc.is_local_main_process and not acc.is_main_process:
            self.store.ensure_local(found[0])
        acc.wait_for_everyone()
        saved = TrainerState(**json.loads((path / STATE_FILE).read_text()))
        self._check_same_run(saved.identity, path)
        self.accelerator.load_state(str(path))
        self.state = saved
        if self.accelerator.is_main_process:
            self.store.drop_after(saved.step)
        log.info("resuming from %s (step %d of %d)", path, saved.step, self.total_steps)
        return saved.step

    def _identity(self) -> dict[str, Any]:
        # Speed-only settings (SPEED_ONLY on the field, which the lineage key reads too)
        # may change between a run and its resumption: the result is the same.
        settings = flatten_dict(decisive(self.config))
        return {
            "base_model": self.inputs.base_model,
            "data_key": self.data_key,
            "num_processes": self.accelerator.num_processes,
            "config": settings,
        }

    def _check_same_run(self, saved: dict[str, Any], path: Path) -> None:
        current = self._identity()
        if saved == current:
            return
        differing = sorted(
            key
            for key in set(saved) | set(current)
            if key != "config" and saved.get(key) != current.get(key)
        )
        old, new = saved.get("config", {}), current["config"]
        differing += sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if differing == ["num_processes"]:
            # Each rank's data position and RNG state belong to one world size.
            raise ResumeMismatchError(
                f"{path} was written by {saved['num_processes']} training processes and this "
                f"run has {current['num_processes']}: the data order and each rank's RNG "
                "state belong to one world size. Run with "
                f"{saved['num_processes']} processes (train_nodes x GPUs per node) to "
                "resume, or pass --no-resume to start over"
            )
        raise ResumeMismatchError(
            f"{path} was written by a different run ({', '.join(differing)} differ): "
            "resume with the same command, or pass --no-resume to start over"
        )

    def _discard_checkpoints(self) -> None:
        if self.accelerator.is_main_process:
            self.store.clear()
        self.accelerator.wait_for_everyone()

    def start_tracking(self) -> None:
        tags = {
            "data_fingerprint": self.manifest.fingerprint,
            "pipeline_run_id": self.inputs.pipeline_run_id or os.environ.get(PIPELINE_RUN_ENV, ""),
            "family": self.config.family,
            "base_model": self.inputs.base_model,
            "mode": "full" if self.config.full else "lora",
        }
        params = {
            **flatten(self.config),
            "base_model": self.inputs.base_model,
            "data": str(self.inputs.data),
            "num_processes": self.accelerator.num_processes,
            "effective_batch_size": self.effective_batch,
            "trainable_params": self.trainable,
            "total_params": self.total_params,
            **{f"adapted.{kind}": count for kind, count in self.adapted.items()},
            "adapted.total": sum(self.adapted.values()),
            "trained_in_full": ",".join(self.in_full),
            "total_steps": self.total_steps,
            **{
                f"records.{split}": len(self.index[split].kept) + len(self.index[split].skipped)
                for split in self.index
            },
            **{
                f"skipped.{split}.{reason}": count
                for split, item in self.index.items()
                for reason, count in item.skipped_counts().items()
            },
        }
        run_name = f"{self.config.family}-{'full' if self.config.full else 'lora'}"
        self.state.mlflow_run_id = self.tracker.start(
            self.state.mlflow_run_id, run_name, tags, params
        )
        skipped = {
            f"skipped_{split}_{reason}": float(count)
            for split, item in self.index.items()
            for reason, count in item.skipped_counts().items()
        }
        if skipped:
            self.tracker.log_metrics(skipped, step=0)

    # ---------------------------------------------------------------- train
    def train(self) -> None:
        cfg, st, acc = self.config, self.state, self.accelerator
        if cfg.schedule.eval_at_start and st.initial_val_loss is None:
            st.initial_val_loss = self.evaluate()
            st.loss_curve.append((0, None, st.initial_val_loss))
            self.tracker.log_metrics({"val_loss": st.initial_val_loss}, step=0)
        if st.eval_pending:  # the evaluation a preempted run owed at its last step
            st.eval_pending = False
            self._evaluate_and_track()
        batches = self._micro_batches()
        live_bar = self._live_bar()
        self._progress_lines = acc.is_main_process and not live_bar
        try:
            with self._progress(live_bar) as progress:
                task = progress.add_task(
                    "train", total=self.total_steps, completed=st.step, loss=""
                )
                self.model.train()
                while st.step < self.total_steps and not st.stopped_early:
                    started = time.perf_counter()
                    loss, tokens, samples, grad_norm = self._optimizer_step(batches)
                    st.step += 1
                    st.epoch, st.batch_in_epoch = self._position
                    # One all-reduce per step: loss, tokens, samples and any stop request.
                    # A signal that arrived before this line is honoured at this step.
                    totals = torch.tensor(
                        [loss, tokens, samples, self._stop_signal or 0],
                        dtype=torch.float64,
                        device=acc.device,
                    )
                    if acc.num_processes > 1:
                        totals = acc.reduce(totals, "sum")
                    loss = totals[0].item() / acc.num_processes
                    self._record_step(loss, totals[1].item(), totals[2].item(), grad_norm, started)
                    progress.update(task, completed=st.step, loss=f"loss {loss:.4f}")
                    self._after_step(stop_requested=totals[3].item() > 0)
        finally:
            batches.close()  # stops the DataLoader workers now, not at garbage collection

    def _optimizer_step(self, batches: Any) -> tuple[float, int, int, float | None]:
        """grad_accum micro-batches, then one optimizer and scheduler step (Accelerate syncs)."""
        acc, cfg = self.accelerator, self.config
        losses, tokens, samples = [], 0, 0
        grad_norm: Any = None
        for _ in range(cfg.batch.grad_accum):
            batch = next(batches)
            tokens += int(batch["attention_mask"].sum())  # non-padding tokens
            samples += int(batch["input_ids"].shape[0])
            with acc.accumulate(self.model):
                loss = self.family.loss(self.model, batch)
                acc.backward(loss)
                if acc.sync_gradients:
                    grad_norm = acc.clip_grad_norm_(
                        self.model.parameters(), cfg.optim.max_grad_norm
                    )
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach().float())
        if not acc.sync_gradients:
            raise RuntimeError("gradient accumulation lost step with the optimizer")
        self.scheduler.step()
        norm = float(grad_norm) if grad_norm is not None else None
        return torch.stack(losses).mean().item(), tokens, samples, norm

    def _record_step(
        self, loss: float, tokens: float, samples: float, grad_norm: float | None, started: float
    ) -> None:
        st = self.state
        elapsed = time.perf_counter() - started
        st.tokens += int(tokens)
        st.samples += int(samples)
        st.runtime_s += elapsed
        st.train_loss_sum += loss
        st.train_loss_steps += 1
        if st.step % self.config.schedule.log_steps != 0:
            return
        lr = self.scheduler.get_last_lr()[0]
        if self._progress_lines:
            log.info(
                "step %d/%d loss %.4f lr %.3g grad_norm %s %.0f tokens/s",
                st.step,
                self.total_steps,
                loss,
                lr,
                "n/a" if grad_norm is None else f"{grad_norm:.3g}",
                tokens / elapsed,
            )
        self.tracker.log_metrics(
            {
                "loss": loss,
                "lr": lr,
                "grad_norm": grad_norm if grad_norm is not None else math.nan,
                "tokens_per_s": tokens / elapsed,
                "samples_per_s": samples / elapsed,
                "peak_memory_mb": peak_memory_mb(),
                "epoch": st.epoch + st.batch_in_epoch / self.micro_per_epoch,
            },
            step=st.step,
        )

    def _after_step(self, stop_requested: bool) -> None:
        """At a step boundary: on a stop request checkpoint at once (a preempted pod has
        seconds), else evaluate and checkpoint when due."""
        cfg, st = self.config, self.state
        last = st.step >= self.total_steps
        eval_due = st.step % cfg.schedule.eval_steps == 0 or last
        if stop_requested:
            # The evaluation due here runs first thing after resuming, so the resumed
            # run's curve and best step match an uninterrupted one.
            st.eval_pending = eval_due
            checkpoint = self.save_checkpoint()
            raise Preempted(self._stop_signal or signal.SIGTERM, st.step, checkpoint)
        if eval_due:
            self._evaluate_and_track()
        if st.step % cfg.schedule.save_steps == 0 or last or st.stopped_early:
            self.save_checkpoint()

    def _micro_batches(self) -> Any:
        """Micro-batches from the saved position on, across epochs; tracks `self._position`."""
        epoch, start = self.state.epoch, self.state.batch_in_epoch
        while True:
            if start >= self.micro_per_epoch:
                epoch, start = epoch + 1, 0
            self.sampler.set_epoch(epoch, start)
            loader = make_loader(self.train_set, self.sampler, self.num_workers)
            for offset, batch in enumerate(loader, start=start + 1):
                self._position = (epoch, offset)
                yield self._to_device(batch)
            start = self.micro_per_epoch

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        moved: dict[str, Any] = {}
        for key, value in batch.items():
            if torch.is_tensor(value):
                value = value.to(self.accelerator.device, non_blocking=True)
                if self.input_dtype is not None and value.is_floating_point():
                    value = value.to(self.input_dtype)
            moved[key] = value
        return moved

    # ------------------------------------------------------------- evaluate
    def evaluate(self) -> float:
        """Token-weighted validation loss over the whole (capped) validation split."""
        acc = self.accelerator
        self.model.eval()
        totals = torch.zeros(2, dtype=torch.float64, device=acc.device)
        loader = make_loader(self.val_set, self.val_batches, self.num_workers)
        with torch.no_grad():
            for counted, batch in zip(self.val_counted, loader, strict=True):
                batch = self._to_device(batch)
                loss = self.family.loss(self.model, batch)
                if counted:  # padding batches only keep ZeRO-3 ranks in lockstep
                    n = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
                    totals += torch.stack([loss.double() * n, n.double()])
        if acc.num_processes > 1:
            totals = acc.reduce(totals, "sum")
        self.model.train()
        return (totals[0] / totals[1]).item()

    def _evaluate_and_track(self) -> None:
        cfg, st = self.config, self.state
        val_loss = self.evaluate()
        train_loss = st.train_loss_sum / st.train_loss_steps if st.train_loss_steps else None
        st.loss_curve.append((st.step, train_loss, val_loss))
        st.train_loss_sum, st.train_loss_steps = 0.0, 0
        self.tracker.log_metrics({"val_loss": val_loss}, step=st.step)
        if st.best_val_loss is None or val_loss < st.best_val_loss - cfg.schedule.min_delta:
            st.best_val_loss, st.best_step = val_loss, st.step
            st.evals_without_improvement = 0
            self.save_best()
        else:
            st.evals_without_improvement += 1
            patience = cfg.schedule.patience
            if patience is not None and st.evals_without_improvement >= patience:
                log.info(
                    "early stop at step %d: no improvement on %.4f (step %d) in %d evaluations",
                    st.step,
                    st.best_val_loss,
                    st.best_step,
                    patience,
                )
                st.stopped_early = True

    # ----------------------------------------------------------- checkpoint
    def save_checkpoint(self) -> Path:
        """The whole training state, atomically, as step-N; prunes old ones."""
        acc, st = self.accelerator, self.state
        name = self.store.step_name(st.step)
        staging = self.store.root / f"{name}.tmp"
        # Each node stages on its own disk (a TrainJob's nodes share none).
        if acc.is_local_main_process:
            self.store.begin(name)
        acc.wait_for_everyone()
        st.identity = self._identity()
        acc.save_state(str(staging))
        acc.wait_for_everyone()
        # Sealed only once the main process holds every rank's part.
        gather_to_main(acc, staging)
        final = self.store.root / name
        if acc.is_main_process:
            (staging / STATE_FILE).write_text(json.dumps(asdict(st), indent=1))
            final = self.store.commit(name, {"step": st.step, "num_processes": acc.num_processes})
            self.store.prune(keep_best=st.best_step)
        acc.wait_for_everyone()
        if not acc.is_main_process and acc.is_local_main_process:
            shutil.rmtree(staging, ignore_errors=True)  # other nodes' copies of their parts
        return final

    def save_best(self) -> None:
        """A weights-only snapshot of the best step, kept until a better one is checkpointed."""
        acc = self.accelerator
        state_dict = acc.get_state_dict(self.model)  # every rank: ZeRO-3 gathers here
        if acc.is_main_process:
            name = self.store.best_name(self.state.step)
            staging = self.store.begin(name)
            acc.unwrap_model(self.model).save_pretrained(
                staging, state_dict=state_dict, safe_serialization=True
            )
            self.store.commit(name, {"step": self.state.step, "val_loss": self.state.best_val_loss})
        acc.wait_for_everyone()

    def _save_trainable_only(self, models: list[Any], weights: list[Any], output: str) -> None:
        """Accelerate hook: a checkpoint holds the trained tensors, not the frozen base."""
        for i, (model, state) in enumerate(zip(models, weights, strict=False)):
            trainable = {n for n, p in model.named_parameters() if p.requires_grad}
            weights[i] = {k: v for k, v in state.items() if k in trainable}

    def _load_trainable_only(self, models: list[Any], input_dir: str) -> None:
        """Accelerate hook: load what `_save_trainable_only` wrote, insisting on every key."""
        from safetensors.torch import load_file

        for i, model in enumerate(list(models)):
            suffix = f"_{i}" if i else ""
            state = load_file(os.path.join(input_dir, f"model{suffix}.safetensors"))
            trainable = {n for n, p in model.named_parameters() if p.requires_grad}
            if set(state) != trainable:
                missing, extra = sorted(trainable - set(state)), sorted(set(state) - trainable)
                raise ValueError(
                    f"{input_dir}: trained tensors do not match the model "
                    f"(missing {missing[:5]}, unexpected {extra[:5]})"
                )
            model.load_state_dict(state, strict=False)
        models.clear()

    # ------------------------------------------------------------- finalize
    def finalize(self) -> Path:
        """Write the best weights, the processor and `uicap_model.json` to the output."""
        acc, st = self.accelerator, self.state
        acc.wait_for_everyone()
        if acc.is_main_process:
            if st.best_step is None:
                raise RuntimeError("training ended without a validation result to pick a model")
            best = self.store.root / self.store.best_name(st.best_step)
            weights_dir = FULL_DIR if self.config.full else ADAPTER_DIR
            staging = self.output / f"{weights_dir}.tmp"
            if staging.exists():
                shutil.rmtree(staging)
            shutil.copytree(best, staging, ignore=shutil.ignore_patterns(MARKER))
            self.family.save_processor(self.processor, staging)
            if (self.output / weights_dir).exists():
                shutil.rmtree(self.output / weights_dir)
            staging.rename(self.output / weights_dir)
            metadata = self._metadata(weights_dir)
            write_metadata(self.output, metadata)
            cached = self.encoding_cache.stats()
            self.tracker.log_metrics(
                {
                    "best_val_loss": st.best_val_loss or math.nan,
                    "best_step": float(st.best_step),
                    "encoding_cache_hit_rate": cached["hit_rate"],
                    "encoding_cache_mib": cached["mib"],
                },
                step=st.step,
            )
            # Workers keep their own entries and counts: only this process's are seen.
            seen = "" if self.num_workers == 0 else " (this process; workers count their own)"
            log.info(
                "encoding cache: %d records in %.1f MiB, hit rate %.1f%%%s",
                cached["records"],
                cached["mib"],
                100 * cached["hit_rate"],
                seen,
            )
            self.tracker.log_artifact(self.output / "uicap_model.json")
            self.tracker.end("FINISHED")
            log.info(
                "best val loss %.4f at step %d -> %s", st.best_val_loss, st.best_step, self.output
            )
        acc.wait_for_everyone()
        acc.end_training()
        return self.output

    def _metadata(self, weights_dir: str) -> ModelMetadata:
        st = self.state
        return ModelMetadata(
            kind="full" if self.config.full else "lora",
            weights=weights_dir,
            base_model=self.inputs.base_model,
            base_revision=self.config.base_revision,
            family=self.config.family,
            prompt_template_version=self.manifest.prompt_template_version,
            data_fingerprint=self.manifest.fingerprint,
            generation=self.config.generation,
            train_config=self.config.model_dump(mode="json"),
            metrics=TrainMetrics(
                initial_val_loss=st.initial_val_loss,
                best_val_loss=st.best_val_loss,
                best_step=st.best_step,
                final_step=st.step,
                stopped_early=st.stopped_early,
                loss_curve=st.loss_curve,
                skipped={split: item.skipped_counts() for split, item in self.index.items()},
                skipped_ids={
                    split: [s.id for s in item.skipped] for split, item in self.index.items()
                },
                records={f"{split}_kept": len(item.kept) for split, item in self.index.items()},
                samples_seen=st.samples,
                tokens_seen=st.tokens,
                train_runtime_s=st.runtime_s,
                peak_memory_mb=peak_memory_mb(),
            ),
            pipeline_run_id=self.inputs.pipeline_run_id or os.environ.get(PIPELINE_RUN_ENV),
            mlflow_run_id=st.mlflow_run_id,
        )

    # -------------------------------------------------------------- helpers
    def _install_signal_handler(self) -> None:
        def request_stop(signum: int, _frame: Any) -> None:
            self._stop_signal = signum
            log.warning(
                "%s received: saving a checkpoint at the next step boundary, then exiting",
                signal.Signals(signum).name,
            )

        self._previous_handler = signal.signal(signal.SIGTERM, request_stop)

    def _restore_signal_handler(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None

    def _live_bar(self) -> bool:
        """A live bar only on a terminal: in pods, CI and pipes progress is logged as lines."""
        from rich.console import Console

        return self.inputs.progress and self.accelerator.is_main_process and Console().is_terminal

    def _progress(self, live: bool) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        return Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            disable=not live,
        )


def peak_memory_mb() -> float:
    """Peak CUDA memory allocated on a GPU; peak resident set size on the CPU."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
