"""Apply the gate's decision to the registry, and the operators' manual promotions and rollbacks.

Every change of the champion alias happens inside the promotion lock (`lock.py`) as a
compare-and-set:

1. re-read the champion just before moving it;
2. if it is the version the evaluation compared against (or there was none and still is
   none), move it; if it moved meanwhile, the evaluation is stale. A stale evaluation
   still wins when the new champion was itself promoted on an evaluation against the
   same baseline, data and scoring, and our candidate beats it record by record under
   the same gate (`head_to_head.py`); otherwise "stale evaluation" is recorded and the
   next run evaluates against the new champion;
3. record the previous champion on the promoted version (before moving, so that a crash
   between the two leaves nothing to guess), move, re-read to verify, and clear
   `challenger` when it pointed at the promoted version.

So two racing gates end with the better candidate as champion in either order: if the
worse moves first, the better one supersedes it; if the better moves first, the worse
one loses the head-to-head. The version that ends up champion must have passed the gate
against the version it replaced, or against a shared baseline plus the head-to-head.

Every decision is stored on the version as tags (see `tags.py`) and returned as a
`PromotionResult` whose `to_dict()` is decision.json.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from components.evaluate.result import (
    EVALUATION_FILE,
    Evaluation,
    EvaluationError,
    RegistryRef,
    load_evaluation,
)
from components.register import tags as T
from components.register.client import Registry, RegistryError, describe_error
from components.register.config import GateConfig
from components.register.gate import Decision, decide
from components.register.head_to_head import NotComparableError, head_to_head
from components.register.lock import default_holder, promotion_lock
from components.register.registration import EVALUATION_ARTIFACT_PATH

log = logging.getLogger("uicap.register")

Outcome = Literal[
    "promoted", "rejected", "stale evaluation", "already champion", "awaiting promotion"
]
STALE = "stale evaluation"
AWAITING = "awaiting promotion"
DECISION_FILE = "decision.json"


class PromotionConflictError(RegistryError):
    """The alias did not hold the value just written: something outside uicap moved it."""


@dataclass
class PromotionResult:
    """What happened to one version, and why: the content of decision.json."""

    model_name: str
    version: str
    outcome: Outcome
    reasons: list[str]
    decision: Decision | None
    champion_before: str | None
    champion_after: str | None
    evaluated_champion: str | None
    kind: str = "gate"
    supersedes: str | None = None
    head_to_head: Decision | None = None
    decided_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def promoted(self) -> bool:
        return self.outcome in ("promoted", "already champion")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "version": self.version,
            "kind": self.kind,
            "outcome": self.outcome,
            "promoted": self.promoted,
            "reasons": list(self.reasons),
            "champion_before": self.champion_before,
            "champion_after": self.champion_after,
            "evaluated_champion": self.evaluated_champion,
            "supersedes": self.supersedes,
            "decision": None if self.decision is None else self.decision.to_dict(),
            "head_to_head": None if self.head_to_head is None else self.head_to_head.to_dict(),
            "decided_at": self.decided_at,
        }

    def write(self, path: Path) -> Path:
        """Write decision.json atomically (a reader never sees half of it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        os.replace(staging, path)
        return path


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _reasons_tag(reasons: list[str]) -> str:
    text = json.dumps(reasons, ensure_ascii=False)
    if len(text) <= T.MAX_VALUE_CHARS:
        return text
    kept: list[str] = []
    for reason in reasons:
        if len(json.dumps([*kept, reason, "..."], ensure_ascii=False)) > T.MAX_VALUE_CHARS:
            break
        kept.append(reason)
    return json.dumps([*kept, "..."], ensure_ascii=False)


def record(registry: Registry, result: PromotionResult) -> None:
    """Store the decision on the version as tags."""
    passed = result.decision is not None and result.decision.passed
    tags = {
        T.GATE_DECISION: "passed" if passed and result.outcome != STALE else "rejected",
        T.GATE_OUTCOME: result.outcome,
        T.GATE_REASONS: _reasons_tag(result.reasons),
        T.GATE_EVALUATED_CHAMPION: result.evaluated_champion or "",
        T.GATE_DECIDED_AT: result.decided_at,
    }
    registry.set_tags(result.version, tags)


def check_version_matches(registry: Registry, version: str, evaluation: Evaluation) -> None:
    """The evaluation must be of this version's weights (sha256 recorded at registration)."""
    registered = registry.version(version).tags.get(T.WEIGHTS_SHA256)
    evaluated = evaluation.candidate_weights
    if registered and evaluated and registered != evaluated:
        raise RegistryError(
            f"the evaluation scored weights {evaluated}, but version {version} holds {registered}: "
            "gate the version that was evaluated"
        )


def version_evaluation(registry: Registry, version: str) -> Evaluation | None:
    """The evaluation.json a version was registered with, from its registration run."""
    run_id = registry.version(version).run_id
    if not run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="uicap-evaluation-") as scratch:
        try:
            local = registry.call(
                f"downloading the evaluation of version {version}",
                lambda: registry.client.download_artifacts(
                    run_id, f"{EVALUATION_ARTIFACT_PATH}/{EVALUATION_FILE}", scratch
                ),
            )
        except Exception as error:
            log.warning(
                "version %s has no readable evaluation (%s)", version, describe_error(error)
            )
            return None
        try:
            return load_evaluation(Path(local))
        except EvaluationError as error:
            log.warning("version %s has no readable evaluation (%s)", version, error)
            return None


def _head_to_head(
    registry: Registry, current: str, evaluation: Evaluation, gate: GateConfig
) -> tuple[Decision | None, str]:
    """Our candidate against the new champion `current`, when their evaluations share a base."""
    details = registry.version(current)
    if details.tags.get(T.PROMOTION_KIND) != "gate":
        return None, f"v{current} became champion by {details.tags.get(T.PROMOTION_KIND, 'hand')}"
    theirs_baseline = details.tags.get(T.GATE_EVALUATED_CHAMPION) or None
    if theirs_baseline != evaluation.evaluated_champion:
        return None, (
            f"v{current} was evaluated against "
            f"{'v' + theirs_baseline if theirs_baseline else 'the base'}, not the same baseline"
        )
    theirs = version_evaluation(registry, current)
    if theirs is None:
        return None, f"v{current} has no stored evaluation to compare with"
    try:
        derived = head_to_head(
            evaluation, theirs, RegistryRef(name=registry.model_name, version=current)
        )
    except NotComparableError as error:
        return None, f"its evaluation and v{current}'s are not comparable: {error}"
    try:
        return decide(derived, gate), "head to head on the records both were scored on"
    except EvaluationError as error:
        return None, str(error)


def _move_champion(registry: Registry, version: str, current: str | None, lock: Any) -> None:
    """Record the previous champion, move the alias, verify it, clear `challenger`."""
    registry.set_tags(version, {T.PREVIOUS_CHAMPION: current or ""})
    lock.ensure_held()
    registry.set_alias(registry.champion_alias, version)
    after = registry.champion()
    if after != version:
        raise PromotionConflictError(
            f"moved {registry.champion_alias!r} to v{version} but it reads v{after}: "
            "something outside uicap's promotion lock moved it; check the registry"
        )
    if registry.challenger() == version:
        registry.delete_alias(registry.challenger_alias)


def _promotion_tags(kind: str, reason: str, holder: str) -> dict[str, str]:
    return {
        T.PROMOTION_KIND: kind,
        T.PROMOTION_REASON: reason[: T.MAX_VALUE_CHARS],
        T.PROMOTION_BY: holder,
        T.PROMOTION_AT: _now(),
    }


def reject_unusable(registry: Registry, version: str, error: EvaluationError) -> PromotionResult:
    """Record a rejection of `version` whose evaluation cannot be gated, with the reason."""
    result = PromotionResult(
        registry.model_name, str(version), "rejected", [str(error)], None, None, None, None
    )
    record(registry, result)
    return result


def gate_and_promote(
    registry: Registry,
    version: str,
    evaluation: Evaluation,
    gate: GateConfig,
    *,
    promote: bool = True,
    holder: str | None = None,
    lock_timeout_s: float = 120.0,
) -> PromotionResult:
    """Decide on `evaluation`, record the decision on `version`, and promote if it passed.

    With `promote=False` only the gate's decision is recorded (the pipeline's `gate`
    step; its `promote` step then runs this again with `promote=True`).
    """
    version = str(version)
    holder = holder or default_holder()
    try:
        decision = decide(evaluation, gate)
    except EvaluationError as error:
        return reject_unusable(registry, version, error)
    check_version_matches(registry, version, evaluation)
    evaluated_model = evaluation.evaluated_champion_model
    if evaluated_model is not None and evaluated_model != registry.model_name:
        raise RegistryError(
            f"the evaluation compared against a champion of {evaluated_model!r}, not of "
            f"{registry.model_name!r}: gate it in the registry it was evaluated against"
        )
    champion_now = registry.champion()
    base = PromotionResult(
        model_name=registry.model_name,
        version=version,
        outcome="rejected",
        reasons=list(decision.reasons),
        decision=decision,
        champion_before=champion_now,
        champion_after=champion_now,
        evaluated_champion=evaluation.evaluated_champion,
    )
    if not decision.passed or not promote:
        base.outcome = "rejected" if not decision.passed else AWAITING
        record(registry, base)
        return base
    with promotion_lock(registry, holder, timeout_s=lock_timeout_s) as lock:
        current = registry.champion()
        base.champion_before = current
        if current == version:
            # A re-run after the alias moved: finish the bookkeeping, move nothing.
            if registry.challenger() == version:
                registry.delete_alias(registry.challenger_alias)
            base.outcome, base.champion_after = "already champion", version
            record(registry, base)
            return base
        reason = (
            f"gate passed against {'v' + current if current else 'the base model'}: "
            + "; ".join(decision.reasons[:3])
        )
        if current != evaluation.evaluated_champion:
            verdict, basis = (
                _head_to_head(registry, current, evaluation, gate)
                if current is not None
                else (None, "the champion alias was removed meanwhile")
            )
            base.head_to_head = verdict
            if verdict is None or not verdict.passed:
                evaluated = (
                    "v" + evaluation.evaluated_champion
                    if evaluation.evaluated_champion
                    else "the base model"
                )
                why = basis if verdict is None else "; ".join(verdict.reasons)
                base.outcome = STALE
                now = f"v{current}" if current else "unset"
                base.reasons = [
                    f"{STALE}: evaluated against {evaluated}, but the champion is now {now}; {why}",
                    *decision.reasons,
                ]
                record(registry, base)
                return base
            base.supersedes = current
            reason = f"supersedes v{current} ({basis}): " + "; ".join(verdict.reasons[:3])
            base.reasons = [*base.reasons, f"beats v{current} {basis}: {verdict.reasons[0]}"]
        registry.set_tags(version, _promotion_tags("gate", reason, holder))
        _move_champion(registry, version, current, lock)
        if base.supersedes is not None:
            registry.set_tags(base.supersedes, {T.SUPERSEDED_BY: version})
        base.outcome, base.champion_after = "promoted", version
        # Still inside the lock: the next promoter's head to head reads these tags.
        record(registry, base)
    log.info("promoted %s v%s (was %s)", registry.model_name, version, current)
    return base


def promote_manually(
    registry: Registry, version: str, reason: str, *, holder: str | None = None
) -> PromotionResult:
    """An operator's override: make `version` champion, recording who, when and why."""
    version = str(version)
    if not reason.strip():
        raise RegistryError("a manual promotion needs a reason")
    holder = holder or default_holder()
    registry.version(version)  # fails clearly when it does not exist
    with promotion_lock(registry, holder) as lock:
        current = registry.champion()
        result = PromotionResult(
            registry.model_name,
            version,
            "promoted",
            [reason],
            None,
            current,
            version,
            None,
            kind="manual",
        )
        if current == version:
            result.outcome = "already champion"
            return result
        registry.set_tags(version, _promotion_tags("manual", reason, holder))
        _move_champion(registry, version, current, lock)
    return result


def rollback(registry: Registry, reason: str, *, holder: str | None = None) -> PromotionResult:
    """Give `champion` back to the version it replaced, recording why on both versions."""
    if not reason.strip():
        raise RegistryError("a rollback needs a reason")
    holder = holder or default_holder()
    with promotion_lock(registry, holder) as lock:
        current = registry.champion()
        if current is None:
            raise RegistryError(f"{registry.model_name} has no champion to roll back")
        previous = registry.version(current).tags.get(T.PREVIOUS_CHAMPION) or None
        if previous is None:
            raise RegistryError(
                f"v{current} records no previous champion to roll back to; choose one with "
                "`uicap models promote VERSION --reason ...`"
            )
        registry.version(previous)  # fails clearly when it was deleted
        at = _now()
        registry.set_tags(
            current,
            {
                T.ROLLED_BACK_REASON: reason[: T.MAX_VALUE_CHARS],
                T.ROLLED_BACK_AT: at,
                T.ROLLED_BACK_TO: previous,
            },
        )
        registry.set_tags(
            previous, _promotion_tags("rollback", f"rolled back from v{current}: {reason}", holder)
        )
        lock.ensure_held()
        registry.set_alias(registry.champion_alias, previous)
        after = registry.champion()
        if after != previous:
            raise PromotionConflictError(
                f"rolled {registry.champion_alias!r} back to v{previous} but it reads v{after}"
            )
    return PromotionResult(
        registry.model_name,
        previous,
        "promoted",
        [reason],
        None,
        current,
        previous,
        None,
        kind="rollback",
    )
