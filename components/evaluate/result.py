"""evaluation.json as one typed model: what `evaluate` writes and every reader reads.

The promotion gate, the registration's tags and metrics, the head-to-head comparison,
the report, the run summary's metric table and the pipeline outcome all read an
evaluation through `Evaluation`, so a field is named, typed and checked in one place.
`load_evaluation` reads a file (or a KFP artifact folder that holds one); a file that
does not match raises `EvaluationError` naming every field that is wrong.

evaluation.json, schema_version 1
---------------------------------
``schema_version`` (1); ``created_at`` (ISO 8601 UTC); ``uicap_version``.

``primary_metric``: ``"CIDEr"``. ``baseline_role``: ``"champion"`` or ``"base"``, the
role the candidate is compared with. ``roles``: the roles scored, in order, from
``"candidate"``, ``"champion"``, ``"base"``.

``models``: one `ModelResult` per role: ``identity`` (what was evaluated), ``test`` and
``general`` (the metrics `uicap score` prints for that split; ``general`` is null
without a general holdout) and ``generation_seconds``.

``comparison``: candidate - baseline on the test split, one `Comparison` per metric in
``COMPARED_METRICS``; ``comparison_with_base``: the same against the base when the
baseline is the champion, else null; ``general_comparison``: ``GENERAL_METRICS`` on the
general holdout, null without one.

``guards``: what the gate checks besides the primary metric: ``semantic_similarity`` and
``format_compliance`` (test split) and ``general_holdout`` (CIDEr on the general split;
null without one), each against the baseline; ``caption_diversity`` against the
references (`DiversityGuard`).

``diversity``: `CaptionDiversity` of the references and of each model's captions on the
test split (absent in files written before it was measured: the gate then fails the
caption-diversity guard as not measured).

``per_element_type``: per element type, ``n``, each model's CIDEr (that type's own corpus
CIDEr), similarity, format compliance and mean words, and the candidate - baseline deltas.
Records without an element_type are under ``"(none)"``; the ``n`` sum to the test n.

``data``: the ``test`` and ``general`` splits: path, split, n, the manifest's fingerprint
and prompt template version, and the split file's sha256.

``generation``, ``scoring``: how captions were made and scored.

``predictions``: per split, one `PredictionRow` per record in split order.

``warnings``: inputs that do not match (e.g. another prompt template than the test data's).

``derived_from``: null, except for an evaluation that `head_to_head` derived from two
stored evaluations that shared a baseline.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from components.captioner.artifact import ModelMetadata
from components.evaluate.diversity import CaptionDiversity

SCHEMA_VERSION = 1
PRIMARY_METRIC = "CIDEr"
COMPARED_METRICS = ("CIDEr", "semantic_similarity", "format_compliance")
GENERAL_METRICS = ("CIDEr", "semantic_similarity")
GENERAL_HOLDOUT_METRIC = "CIDEr"
TYPE_METRICS = ("CIDEr", "semantic_similarity", "format_compliance", "mean_words")
CONFIDENCE = 0.95
NO_TYPE = "(none)"
EVALUATION_FILE = "evaluation.json"
REPORT_FILE = "report.html"
ROLES = ("candidate", "champion", "base")
DIVERSITY_SPLIT = "test"

Role = Literal["candidate", "champion", "base"]
BaselineRole = Literal["champion", "base"]


class EvaluationError(ValueError):
    """An evaluation does not match the schema; the message names each field that is wrong."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegistryRef(_Part):
    """The registry version a ``models:/`` reference was pinned to when it was evaluated."""

    name: str
    version: str
    uri: str | None = None
    alias: str | None = None
    run_id: str | None = None
    source: str | None = None


class Identity(_Part):
    """What was evaluated: enough to tell two evaluated models apart, or the same one twice."""

    reference: str
    kind: Literal["artifact", "plain"]
    location: str
    revision: str | None
    family: str
    base_model: str
    base_revision: str | None
    weights_sha256: str | None  # artifacts: sha256 over the adapter or model folder
    registry: RegistryRef | None
    metadata: ModelMetadata | None  # the artifact's uicap_model.json, with its loss curve
    tiny_model: dict[str, Any] | None = None  # the tiny local model's build record


class SplitMetrics(_Part):
    """The metrics `uicap score` prints for one model on one split."""

    Bleu_1: float
    Bleu_2: float
    Bleu_3: float
    Bleu_4: float
    METEOR: float
    ROUGE_L: float
    CIDEr: float
    SPICE: None = None
    semantic_similarity: float
    format_compliance: float
    mean_words: float
    n: int
    format_violations: dict[str, int]
    max_words: int
    similarity_model: str
    unavailable: dict[str, str]


class SplitSeconds(_Part):
    test: float | None
    general: float | None


class ModelResult(_Part):
    identity: Identity
    test: SplitMetrics
    general: SplitMetrics | None
    generation_seconds: SplitSeconds
    # Splits whose captions an earlier evaluation of the same weights generated
    # (caption_reuse); their generation_seconds are None.
    reused_captions: list[str] = Field(default_factory=list)


class Comparison(_Part):
    """Candidate - baseline on one metric, with its paired-bootstrap interval."""

    metric: str
    candidate: float
    baseline: float
    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    share_better: float
    p_value: float  # share of resamples where the candidate is not better
    resamples: int
    seed: int
    n: int


class GuardResult(_Part):
    """A guard metric of the candidate against the baseline's."""

    metric: str
    split: str
    candidate: float
    baseline: float
    delta: float
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, comparison: Comparison, split: str) -> GuardResult:
        keys = ("metric", "candidate", "baseline", "delta", "ci_low", "ci_high")
        return cls(split=split, **{key: getattr(comparison, key) for key in keys})


class DiversityGuard(_Part):
    """The candidate's caption diversity against the references' on the same records."""

    metric: Literal["distinct_share"] = "distinct_share"
    split: str
    n: int  # records
    candidate_distinct: int  # distinct captions the candidate gave
    candidate: float  # the candidate's distinct-caption share
    references: float  # the references' distinct-caption share
    delta: float  # candidate - references
    candidate_top_share: float  # share of records the candidate's commonest caption takes
    references_top_share: float
    candidate_top_caption: str

    @classmethod
    def of(
        cls, candidate: CaptionDiversity, references: CaptionDiversity, split: str
    ) -> DiversityGuard:
        return cls(
            split=split,
            n=candidate.n,
            candidate_distinct=candidate.distinct,
            candidate=candidate.distinct_share,
            references=references.distinct_share,
            delta=candidate.distinct_share - references.distinct_share,
            candidate_top_share=candidate.top_share,
            references_top_share=references.top_share,
            candidate_top_caption=candidate.top_caption,
        )


class Guards(_Part):
    """A guard that is null (or absent) was not measured, and the gate fails it."""

    semantic_similarity: GuardResult | None = None
    format_compliance: GuardResult | None = None
    general_holdout: GuardResult | None = None
    caption_diversity: DiversityGuard | None = None


class DiversitySection(_Part):
    split: str
    references: CaptionDiversity
    models: dict[Role, CaptionDiversity]


class TypeScores(_Part):
    CIDEr: float
    semantic_similarity: float
    format_compliance: float
    mean_words: float


class TypeRow(_Part):
    n: int
    models: dict[Role, TypeScores]
    delta: dict[str, float]


class SplitData(_Part):
    """One split that was evaluated on, as its prepared folder's manifest identifies it."""

    path: str
    split: str
    n: int
    fingerprint: str
    prompt_template_version: str
    split_sha256: str


class DataInputs(_Part):
    test: SplitData
    general: SplitData | None


class GenerationFacts(_Part):
    decoding: str
    num_beams: int
    do_sample: bool
    max_new_tokens: int
    batch_size: int
    batch_order: str
    stop: str
    device: str
    dtype: str


class ScoringFacts(_Part):
    similarity_model: str
    max_words: int
    resamples: int
    seed: int
    confidence: float
    unavailable: dict[str, str]


class PredictionRow(_Part):
    """One record: what it asked, the reference, and each model's caption and scores."""

    id: str
    element_type: str | None
    image: str  # relative to the split's folder
    prompt: str
    reference: str
    captions: dict[Role, str]
    CIDEr: dict[Role, float]
    semantic_similarity: dict[Role, float]
    format_ok: dict[Role, bool]
    format_violations: dict[Role, list[str]]
    delta: dict[str, float]  # CIDEr and semantic_similarity: candidate - baseline


class Predictions(_Part):
    test: list[PredictionRow]
    general: list[PredictionRow] | None = None


class DerivedFrom(_Part):
    shared_baseline: list[str | None]
    method: str


class Evaluation(_Part):
    """The content of evaluation.json (schema_version 1): see the module docstring."""

    schema_version: Literal[1]
    created_at: str
    uicap_version: str | None
    primary_metric: str
    baseline_role: BaselineRole
    roles: list[Role]
    models: dict[Role, ModelResult]
    comparison: dict[str, Comparison]
    comparison_with_base: dict[str, Comparison] | None
    general_comparison: dict[str, Comparison] | None
    guards: Guards
    diversity: DiversitySection | None = None
    per_element_type: dict[str, TypeRow]
    data: DataInputs
    generation: GenerationFacts
    scoring: ScoringFacts
    predictions: Predictions
    warnings: list[str]
    derived_from: DerivedFrom | None = None

    @model_validator(mode="after")
    def _roles_are_the_models(self) -> Evaluation:
        if list(self.models) != list(self.roles):
            raise ValueError(f"roles {self.roles} are not the models' roles {list(self.models)}")
        if "candidate" not in self.models:
            raise ValueError("models.candidate is missing")
        if self.baseline_role not in self.models:
            raise ValueError(f"models.{self.baseline_role} (the baseline) is missing")
        return self

    # --- reading and writing ----------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Validate an evaluation dict; `EvaluationError` names every field that is wrong."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as error:
            problems = [
                f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
                for item in error.errors(include_url=False)
            ]
            raise EvaluationError(
                f"{EVALUATION_FILE} does not match schema {SCHEMA_VERSION}: " + "; ".join(problems)
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content of evaluation.json."""
        return self.model_dump(mode="json")

    def write(self, path: Path) -> Path:
        """Write to a sibling file, then rename: a reader never sees half a file."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_text(text + "\n", encoding="utf-8")
        os.replace(staging, path)
        return path

    # --- what the gate and the promotion read -----------------------------------------

    @property
    def candidate(self) -> ModelResult:
        return self.models["candidate"]

    @property
    def baseline(self) -> ModelResult:
        return self.models[self.baseline_role]

    @property
    def candidate_weights(self) -> str | None:
        return self.candidate.identity.weights_sha256

    @property
    def evaluated_champion(self) -> str | None:
        """The registry version the candidate was compared with; None when it was the base."""
        if self.baseline_role != "champion":
            return None
        registry = self.models["champion"].identity.registry
        if registry is None:
            raise EvaluationError(
                f"{EVALUATION_FILE}: baseline_role is 'champion' but models.champion.identity."
                "registry is missing: evaluate the champion by its models:/ URI so the "
                "promotion can check it is still the champion"
            )
        return registry.version

    @property
    def evaluated_champion_model(self) -> str | None:
        """The registered model name of the evaluated champion (None against the base)."""
        if self.evaluated_champion is None:
            return None
        registry = self.models["champion"].identity.registry
        return None if registry is None else registry.name

    # --- flat figures for metric stores and the run's outcome -------------------------

    def summary_metrics(self) -> dict[str, float]:
        """Flat name -> value of the primary and guard metrics of each model, and the deltas.

        ``<role>_<metric>`` on the test split, ``<role>_general_<metric>`` on the general
        holdout, ``delta_<metric>`` with ``delta_<metric>_ci_low`` / ``_ci_high`` for the
        candidate - baseline comparison (``delta_general_<metric>`` on the holdout), and
        ``<role>_distinct_share`` / ``<role>_top_caption_share`` (``references_...`` too).
        """
        flat: dict[str, float] = {}
        for role, model in self.models.items():
            for metric in COMPARED_METRICS:
                flat[f"{role}_{metric}"] = float(getattr(model.test, metric))
            if model.general is not None:
                for metric in GENERAL_METRICS:
                    flat[f"{role}_general_{metric}"] = float(getattr(model.general, metric))
        comparisons = [("", self.comparison)]
        if self.general_comparison is not None:
            comparisons.append(("general_", self.general_comparison))
        for prefix, comparison in comparisons:
            for metric, result in comparison.items():
                flat[f"delta_{prefix}{metric}"] = result.delta
                flat[f"delta_{prefix}{metric}_ci_low"] = result.ci_low
                flat[f"delta_{prefix}{metric}_ci_high"] = result.ci_high
        if self.diversity is not None:
            shown = {"references": self.diversity.references, **self.diversity.models}
            for who, diversity in shown.items():
                flat[f"{who}_distinct_share"] = diversity.distinct_share
                flat[f"{who}_top_caption_share"] = diversity.top_share
        return flat

    def headline_metrics(self) -> dict[str, float]:
        """Candidate and baseline on the primary metric and the guards, for the run's outcome."""
        baseline = self.baseline_role
        found: dict[str, float] = {}
        for metric, row in self.comparison.items():
            found[f"candidate_{metric}"] = row.candidate
            found[f"{baseline}_{metric}"] = row.baseline
        general = self.guards.general_holdout
        if general is not None:
            found["candidate_general_holdout"] = general.candidate
            found[f"{baseline}_general_holdout"] = general.baseline
        diversity = self.guards.caption_diversity
        if diversity is not None:
            found["candidate_distinct_share"] = diversity.candidate
            found["references_distinct_share"] = diversity.references
        return found


def load_evaluation(path: Path | str) -> Evaluation:
    """evaluation.json from a file, or from a folder that holds one (a KFP artifact)."""
    path = Path(path)
    if path.is_dir():
        path = path / EVALUATION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {EVALUATION_FILE}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise EvaluationError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise EvaluationError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return Evaluation.from_dict(data)
