"""Skip a retraining run when the champion was trained on exactly these inputs.

A run's lineage is what decides the weights it would produce: the dataset and the base
model, each at the revision it resolves to when the run starts (a Hub commit sha, or a
local folder's content hash), the prompt template, and the prepare and training
settings. Its key (a sha256 of the canonical JSON) is tagged on every registered version.
When the champion carries the same key, training again would spend GPU hours to reproduce
the champion, so the pipeline stops with "no new data" before it downloads any data: the
first step asks the Hub what `main` points to, and nothing more.

Every later step receives the resolved revisions, never a branch name, so what one run
reads is what its lineage says, even when a branch moves while it runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from components.ingest.source import resolve_revision
from components.prepare.config import PrepareConfig
from components.prepare.prompt import PROMPT_TEMPLATE_VERSION
from components.register.config import RegistryConfig
from components.step_config import decisive
from components.train.config import TrainConfig

LINEAGE_KEY_TAG = "uicap.lineage.key"
LINEAGE_TAG = "uicap.lineage"
DECISION_NO_NEW_DATA = "no new data"
DECISION_CHANGED = "retrain"


@dataclass(frozen=True)
class RunLineage:
    """The inputs that decide a candidate's weights."""

    data_revision: str
    data_source: str
    base_model: str
    base_revision: str
    family: str
    prompt_template_version: str
    prepare: dict[str, Any]
    train: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_revision": self.data_revision,
            "data_source": self.data_source,
            "base_model": self.base_model,
            "base_revision": self.base_revision,
            "family": self.family,
            "prompt_template_version": self.prompt_template_version,
            "prepare": self.prepare,
            "train": self.train,
        }

    @property
    def key(self) -> str:
        # The source's name is not part of the key: a local folder's revision is the hash of
        # its bytes, and the same bytes from a renamed mirror teach the same thing.
        decisive = {k: v for k, v in self.to_dict().items() if k != "data_source"}
        canonical = json.dumps(decisive, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def tags(self) -> dict[str, str]:
        return {LINEAGE_KEY_TAG: self.key, LINEAGE_TAG: json.dumps(self.to_dict(), sort_keys=True)}


@dataclass(frozen=True)
class LineageCheck:
    """The verdict, with a sentence per difference (or why there is nothing to compare)."""

    changed: bool
    lineage: RunLineage
    champion_version: str | None
    reasons: list[str] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return DECISION_CHANGED if self.changed else DECISION_NO_NEW_DATA

    def record(self) -> dict[str, Any]:
        return {
            "decision": self.decision if not self.changed else None,
            "changed": self.changed,
            "reasons": self.reasons,
            "champion_version": self.champion_version,
            "lineage_key": self.lineage.key,
            "lineage": self.lineage.to_dict(),
        }


@dataclass(frozen=True)
class ResolvedInputs:
    """The dataset and base-model revisions a run uses, resolved once when it starts."""

    data_revision: str
    base_revision: str


def resolve_inputs(
    dataset: str, data_revision: str | None, base_model: str, base_revision: str | None
) -> ResolvedInputs:
    """Ask the Hub (or hash the local folders) what the run's inputs name right now."""
    return ResolvedInputs(
        data_revision=resolve_revision(dataset, data_revision or None, "dataset"),
        base_revision=resolve_revision(base_model, base_revision or None, "model"),
    )


def run_lineage(
    *,
    dataset: str,
    data_revision: str,
    base_model: str,
    base_revision: str,
    prepare: PrepareConfig,
    train: TrainConfig,
) -> RunLineage:
    """The lineage of a run from its resolved revisions and the configs its steps receive.

    The configs are compared as validated models, so key order, defaults written out or
    left implicit, and comments in the JSON or YAML do not make a run look new; fields
    marked speed-only (`components.step_config.SPEED_ONLY`: workers, caches, logging and
    checkpoint intervals) are left out, so tuning them never looks like new data. The
    training config is compared with the resolved base revision in it, as train gets it.
    """
    pinned = train.model_copy(update={"base_revision": base_revision})
    return RunLineage(
        data_revision=data_revision,
        data_source=f"{dataset}@{data_revision}",
        base_model=base_model,
        base_revision=base_revision,
        family=train.family,
        prompt_template_version=PROMPT_TEMPLATE_VERSION,
        prepare=decisive(prepare),
        train=decisive(pinned),
    )


def _differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    found = []
    for name in ("data_revision", "base_model", "base_revision", "family"):
        if ours.get(name) != theirs.get(name):
            found.append(f"{name.replace('_', ' ')}: {theirs.get(name)!r} -> {ours.get(name)!r}")
    if ours.get("prompt_template_version") != theirs.get("prompt_template_version"):
        found.append("prompt template version changed")
    for group in ("prepare", "train"):
        mine, old = ours.get(group) or {}, theirs.get(group) or {}
        changed = sorted(k for k in set(mine) | set(old) if mine.get(k) != old.get(k))
        if changed:
            found.append(f"{group} settings changed: {', '.join(changed)}")
    return found


def _short(fingerprint: str) -> str:
    return fingerprint.removeprefix("sha256:")[:12]


def check_against_champion(lineage: RunLineage, registry: Any) -> LineageCheck:
    """Compare with the champion's tags (`registry` is a connected `Registry`)."""
    champion = registry.champion()
    if champion is None:
        return LineageCheck(True, lineage, None, ["no champion yet"])
    tags = dict(registry.version(champion).tags or {})
    if tags.get(LINEAGE_KEY_TAG) == lineage.key:
        return LineageCheck(
            False,
            lineage,
            champion,
            [
                f"champion version {champion} was trained on the same data "
                f"({_short(lineage.data_revision)}), base model and settings"
            ],
        )
    if LINEAGE_TAG not in tags:
        return LineageCheck(
            True, lineage, champion, [f"champion version {champion} has no recorded lineage"]
        )
    differences = _differences(lineage.to_dict(), json.loads(tags[LINEAGE_TAG]))
    return LineageCheck(
        True, lineage, champion, differences or ["lineage key differs from the champion's"]
    )


def lineage_step(
    *,
    dataset: str,
    revision: str,
    base_model: str,
    prepare: PrepareConfig,
    train: TrainConfig,
    registry: RegistryConfig,
    checkpoint_root: str = "",
    records_root: str = "",
    run_id: str = "",
) -> tuple[LineageCheck, str]:
    """The pipeline's first step: resolve the revisions, judge the run against the champion
    and file the record.

    `revision` is the dataset's (branch, tag or sha; "" = main); the base model's is the
    training config's `base_revision`. Returns the check (its lineage holds both resolved
    revisions) and the train step's checkpoint folder: `checkpoint_root` joined with the
    lineage key, so a retried or re-run train task resumes in the same place ("" without
    a root).
    """
    from components import storage
    from components.outcome import record_step
    from components.register.client import connect

    resolved = resolve_inputs(dataset, revision, base_model, train.base_revision)
    lineage = run_lineage(
        dataset=dataset,
        data_revision=resolved.data_revision,
        base_model=base_model,
        base_revision=resolved.base_revision,
        prepare=prepare,
        train=train,
    )
    check = check_against_champion(lineage, connect(registry))
    requested = {"data": revision or None, "base": train.base_revision or None}
    record_step(records_root, run_id, "lineage", {**check.record(), "requested": requested})
    where = storage.join(checkpoint_root, lineage.key[:16]) if checkpoint_root else ""
    return check, where
