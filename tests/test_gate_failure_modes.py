"""The gate on real evaluations of tiny models trained here: four ways to fail, one to pass.

The world: a tiny MiniCPM-V 4.6 warmed (full fine-tune) on general captions, so it has a
general skill to lose; UI records whose summaries follow from the element and its text.
A bootstrap champion (a near-identity adapter, promoted by hand) stands in for the model
that serves before the first retraining. Then, each evaluated against the champion with
`components.evaluate.run.evaluate`, registered and gated:

4. real gain: the whole model fine-tuned on UI records mixed with general ones (replay).
   Promoted: `champion` moves to it, `challenger` is cleared, the previous champion is
   recorded. (LoRA on this world's 64 records learns each element type's template but not
   to copy the element's text: two captions for 24 records, which the diversity guard
   rightly rejects. The full fine-tune learns to copy, so its gain is real);
1. no gain: the champion's own weights again. Rejected: the CIDEr CI contains 0;
2. format collapse: the same recipe on labels with a second sentence appended. Rejected
   by format compliance;
3. forgetting: UI records only, trained longer. Rejected by the general-holdout guard;
5. caption collapse: LoRA (+ lm_head) on labels that all say one sentence. The model
   learns to say it for every element; rejected by the caption-diversity guard, which
   holds its distinct captions to the references'.

Training and evaluation run once (against the real server's registry); the registry and
gate part then runs on both stores. The evaluations are reused for SQLite because they
are of the same weights on the same data against the same champion version, and the
gate reads nothing but them.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.evaluate.diversity import normalise_caption
from components.evaluate.result import Evaluation
from components.register import tags as T
from components.register.client import Registry, connect
from components.register.config import GateConfig, RegistryConfig
from components.register.promotion import gate_and_promote, promote_manually
from components.register.registration import register_candidate
from tests.support.registry_support import Tracking, make_artifact
from tests.support.train_data import tiny_base, write_general, write_prepared

# Six real trainings and five evaluations on two CPU cores take longer than the default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

MODEL_NAME = f"ui-element-captioner-modes-{uuid.uuid4().hex[:8]}"
STEPS = 300  # the full fine-tunes (gain, format)
GAIN_LR = 1e-3
OVERTRAIN_STEPS = 150
COLLAPSE_STEPS = 60  # one sentence to learn: fewer steps than a real gain needs
MAX_NEW_TOKENS = 24
HOLDOUT_RECORDS = 40
SECOND_SENTENCE = " Done."
ONE_SENTENCE = "Opens the page."


def _recipe(
    data: Path, base: Path, output: Path, steps: int, *, full: bool = False, lr: float = 1e-2
) -> Path:
    from components.train.config import (
        BatchConfig,
        LoraConfig,
        OptimConfig,
        ScheduleConfig,
        TrainConfig,
    )
    from components.train.recipe import RunInputs, TrainRecipe

    config = TrainConfig(
        family="minicpmv4_6",
        full=full,
        precision="fp32",
        lora=LoraConfig(rank=8, alpha=16, modules_to_save=[] if full else ["lm_head"]),
        optim=OptimConfig(lr=lr, warmup_ratio=0.05, weight_decay=0.0),
        batch=BatchConfig(batch_size=8, grad_accum=1, num_workers=0, max_length=600),
        schedule=ScheduleConfig(
            max_steps=steps,
            eval_steps=steps,
            save_steps=10_000,
            patience=None,
            eval_at_start=False,
        ),
    )
    inputs = RunInputs(
        data=data, base_model=str(base), output=output, tracking=False, resume=False, progress=False
    )
    TrainRecipe(config, inputs).run()
    return output


def _mixed(
    target: Path, ui: Path, general: Path, relabel: str = "", collapse_to: str | None = None
) -> Path:
    """UI records (answers extended by `relabel`, or all replaced by `collapse_to`) plus
    general ones; val/test stay UI."""
    target.mkdir(parents=True)

    def records(folder: Path, split: str) -> list[dict[str, Any]]:
        rows = json.loads((folder / f"{split}.json").read_text())
        for row in rows:
            row["image"] = str((folder / row["image"]).resolve())
        return rows

    train = records(ui, "train")
    for row in train:
        if collapse_to is not None:
            row["conversations"][1]["content"] = collapse_to
        row["conversations"][1]["content"] += relabel
    train += records(general, "train")
    (target / "train.json").write_text(json.dumps(train))
    for split in ("val", "test"):
        (target / f"{split}.json").write_text(json.dumps(records(ui, split)))
    shutil.copy(ui / "manifest.json", target / "manifest.json")
    return target


def _holdout(target: Path, records: int) -> Path:
    """General captions never trained on, `records` of them in test.json: the forgetting guard."""
    write_general(target, train=records, val=1, seed=7)
    (target / "test.json").write_text((target / "train.json").read_text())
    return target


@dataclass(frozen=True)
class World:
    ui: Path
    general: Path
    holdout: Path
    base: Path
    candidates: dict[str, Path]
    evaluations: dict[str, Evaluation]
    root: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("failure-modes")
    ui = write_prepared(root / "ui", train=64, val=16, test=24, seed=5)
    general = write_general(root / "general", train=48, val=16, seed=6)
    holdout = _holdout(root / "holdout", HOLDOUT_RECORDS)
    raw = tiny_base(root / "raw-base", ui, general)
    base = _recipe(general, raw, root / "warm", 40, full=True, lr=3e-3) / "model"
    candidates = {
        "bootstrap": make_artifact(root / "bootstrap", base, seed=21),
        "gain": _recipe(
            _mixed(root / "d-gain", ui, general),
            base,
            root / "gain",
            STEPS,
            full=True,
            lr=GAIN_LR,
        ),
        "format": _recipe(
            _mixed(root / "d-format", ui, general, SECOND_SENTENCE),
            base,
            root / "format",
            STEPS,
            full=True,
            lr=GAIN_LR,
        ),
        "forget": _recipe(ui, base, root / "forget", OVERTRAIN_STEPS),
        "collapse": _recipe(
            _mixed(root / "d-collapse", ui, general, collapse_to=ONE_SENTENCE),
            base,
            root / "collapse",
            COLLAPSE_STEPS,
        ),
    }
    candidates["same"] = candidates["gain"]
    return World(ui, general, holdout, base, candidates, {}, root)


def evaluation_of(world: World, name: str, tracking: Tracking) -> Evaluation:
    """The candidate against the current champion, or the base for the bootstrap champion.

    Computed once, on the first store the test runs on.
    """
    from components.evaluate.config import EvaluateConfig
    from components.evaluate.run import evaluate

    if name not in world.evaluations:
        world.evaluations[name] = evaluate(
            world.ui,
            str(world.candidates[name]),
            None if name == "bootstrap" else f"models:/{MODEL_NAME}@champion",
            general_dir=world.holdout,
            output_dir=world.root / f"evaluation-{name}",
            config=EvaluateConfig(batch_size=8, max_new_tokens=MAX_NEW_TOKENS),
            tracking_uri=tracking.uri,
            device="cpu",
        )
    return world.evaluations[name]


def failed_checks(registry: Registry, version: str) -> list[str]:
    return json.loads(registry.version(version).tags[T.GATE_REASONS])


def test_the_gate_rejects_no_gain_format_collapse_and_forgetting_and_promotes_a_real_gain(
    world: World, tracking: Tracking, registry_settings: RegistryConfig
) -> None:
    registry = connect(registry_settings.model_copy(update={"model_name": MODEL_NAME}))
    gate = GateConfig()

    def register(name: str, evaluation: Evaluation) -> str:
        return register_candidate(
            registry, world.candidates[name], evaluation, f"run-{name}", data_dir=world.ui
        ).version

    # The champion before the first retraining, made by hand.
    v1 = register("bootstrap", evaluation_of(world, "bootstrap", tracking))
    promote_manually(registry, v1, "bootstrap champion")

    # 4. Real gain: promoted over the champion it was evaluated against.
    gain = evaluation_of(world, "gain", tracking)
    assert gain.baseline_role == "champion"
    assert gain.evaluated_champion == v1
    v2 = register("gain", gain)
    assert registry.challenger() == v2
    promoted = gate_and_promote(registry, v2, gain, gate)
    assert promoted.outcome == "promoted", promoted.reasons
    assert registry.aliases() == {"champion": v2}  # champion moved, challenger cleared
    assert registry.version(v2).tags[T.PREVIOUS_CHAMPION] == v1
    assert gain.comparison["CIDEr"].ci_low > 0

    # 1. No gain: the champion's own weights. The CIDEr CI is [0, 0].
    same = evaluation_of(world, "same", tracking)
    assert same.evaluated_champion == v2
    v3 = register("same", same)
    result = gate_and_promote(registry, v3, same, gate)
    assert result.outcome == "rejected"
    assert any("contains 0" in reason for reason in failed_checks(registry, v3))

    # 2. Format collapse: answers in two sentences.
    collapsed = evaluation_of(world, "format", tracking)
    v4 = register("format", collapsed)
    result = gate_and_promote(registry, v4, collapsed, gate)
    assert result.outcome == "rejected"
    assert result.decision is not None
    failed = [check.name for check in result.decision.checks if not check.passed]
    assert "guard.format_compliance" in failed, result.reasons
    assert collapsed.guards.format_compliance is not None
    assert collapsed.guards.format_compliance.delta < -gate.tolerances.format_compliance

    # 3. Forgetting: over-trained on UI records alone, the general skill is gone.
    forgot = evaluation_of(world, "forget", tracking)
    v5 = register("forget", forgot)
    result = gate_and_promote(registry, v5, forgot, gate)
    assert result.outcome == "rejected"
    assert result.decision is not None
    failed = [check.name for check in result.decision.checks if not check.passed]
    assert "guard.general_holdout" in failed, result.reasons
    assert forgot.guards.general_holdout is not None
    assert forgot.guards.general_holdout.delta < -gate.tolerances.general_holdout

    # 5. Caption collapse: trained on one sentence, it says that sentence everywhere.
    one = evaluation_of(world, "collapse", tracking)
    assert one.diversity is not None and one.guards.caption_diversity is not None
    said = one.diversity.models["candidate"]
    assert said.distinct <= 2 and said.top_share >= 0.9, said  # collapsed, not by chance
    assert normalise_caption(said.top_caption) == normalise_caption(ONE_SENTENCE)
    references = one.diversity.references
    assert references.distinct_share > 0.5  # the labels it should reproduce do vary
    v6 = register("collapse", one)
    result = gate_and_promote(registry, v6, one, gate)
    assert result.outcome == "rejected"
    assert result.decision is not None
    (check,) = [c for c in result.decision.checks if c.name == "guard.caption_diversity"]
    assert not check.passed, check.detail
    assert f"{said.distinct} distinct captions in {said.n} records" in check.detail
    assert f"(share {said.distinct_share:.4f}) against the references' " in check.detail
    assert f"{references.distinct_share:.4f}" in check.detail
    assert f"takes {said.top_share:.4f} of the records" in check.detail
    assert check.detail in failed_checks(registry, v6)
    # The champion it was compared with does vary its captions: the guard measures the
    # candidate, not a property of the data or the recipe.
    assert gain.guards.caption_diversity is not None
    assert gain.guards.caption_diversity.delta + gate.tolerances.caption_diversity >= 0

    # The champion never moved for a rejected candidate; each keeps its reasons.
    assert registry.champion() == v2
    for version in (v3, v4, v5, v6):
        assert registry.version(version).tags[T.GATE_DECISION] == "rejected"
