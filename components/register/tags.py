"""The names of the tags uicap writes on model versions and runs: lineage, scores, decisions.

One place for them, because the registration writes them, the gate and promotion read
and add to them, and `uicap models list` shows them.
"""

from __future__ import annotations

# Lineage, written once when the version is created.
PIPELINE_RUN_ID = "uicap.pipeline_run_id"
CODE_VERSION = "uicap.code_version"
DATA_FINGERPRINT = "uicap.data.fingerprint"
DATA_SOURCE = "uicap.data.source"
DATA_SOURCE_REVISION = "uicap.data.source_revision"
BASE_ID = "uicap.base.id"
BASE_REVISION = "uicap.base.revision"
FAMILY = "uicap.family"
PROMPT_TEMPLATE_VERSION = "uicap.prompt_template_version"
WEIGHTS_KIND = "uicap.weights.kind"
WEIGHTS_SHA256 = "uicap.weights.sha256"
TRAINING_RUN = "uicap.training_run_id"
RUN_STEP = "uicap.step"

# The evaluation the version was registered with.
EVAL_PREFIX = "uicap.eval."
EVAL_METRICS = ("CIDEr", "semantic_similarity", "format_compliance", "BLEU_4", "mean_words")
EVAL_BASELINE = "uicap.eval.baseline"
EVAL_CHAMPION = "uicap.eval.champion_version"
EVAL_TEST_SPLIT = "uicap.eval.test_split_sha256"
EVAL_DELTA = "uicap.eval.CIDEr.delta"
EVAL_CI_LOW = "uicap.eval.CIDEr.ci_low"
EVAL_CI_HIGH = "uicap.eval.CIDEr.ci_high"


def eval_metric(metric: str) -> str:
    return f"{EVAL_PREFIX}{metric}"


def guard_delta(guard: str) -> str:
    return f"{EVAL_PREFIX}guard.{guard}.delta"


# The gate's decision and what the promotion made of it.
GATE_DECISION = "uicap.gate.decision"  # passed | rejected
GATE_OUTCOME = "uicap.gate.outcome"  # promoted | rejected | stale evaluation
GATE_REASONS = "uicap.gate.reasons"  # JSON list of sentences
GATE_EVALUATED_CHAMPION = "uicap.gate.evaluated_champion"
GATE_DECIDED_AT = "uicap.gate.decided_at"

# Promotions (gate, manual, rollback) and what they replaced.
PREVIOUS_CHAMPION = "uicap.promotion.previous_champion"
PROMOTION_KIND = "uicap.promotion.kind"  # gate | manual | rollback
PROMOTION_REASON = "uicap.promotion.reason"
PROMOTION_BY = "uicap.promotion.by"
PROMOTION_AT = "uicap.promotion.at"
SUPERSEDED_BY = "uicap.promotion.superseded_by"
ROLLED_BACK_REASON = "uicap.rollback.reason"
ROLLED_BACK_AT = "uicap.rollback.at"
ROLLED_BACK_TO = "uicap.rollback.to"

# MLflow caps tag values; reasons are cut to stay well inside the limit.
MAX_VALUE_CHARS = 4000
