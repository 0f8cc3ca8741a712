"""Evaluate a candidate captioner against the bar it must beat; write evaluation.json + report.

The candidate, the champion (when there is one) and the untuned base caption the prepared
test split, and the general holdout when given, through one shared generation path
(`components.evaluate.generation`). Each is scored with `score_captions`; the candidate
is compared with the *baseline*, which is the champion when one is given and the base
otherwise, by a paired bootstrap (`paired_bootstrap`, CIDEr recomputed per resample).
Caption diversity (`components.evaluate.diversity`) is measured for every model and for
the references on the test split.

The promotion gate reads evaluation.json and nothing else, so its schema is a contract:
`components.evaluate.result.Evaluation` is that schema, and `evaluate` builds one.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.evaluate.answer_format import DEFAULT_MAX_WORDS
from components.evaluate.bootstrap import paired_bootstrap
from components.evaluate.caption_reuse import (
    CaptionStore,
    Generation,
    captions_key,
    weights_identity,
)
from components.evaluate.cider import ResampledCider
from components.evaluate.coco_metrics import UNAVAILABLE_METRICS
from components.evaluate.config import EvaluateConfig
from components.evaluate.diversity import caption_diversity
from components.evaluate.generation import generate_captions
from components.evaluate.models import ResolvedModel, base_of, resolve_model
from components.evaluate.result import (
    COMPARED_METRICS,
    CONFIDENCE,
    DIVERSITY_SPLIT,
    EVALUATION_FILE,
    GENERAL_HOLDOUT_METRIC,
    GENERAL_METRICS,
    NO_TYPE,
    PRIMARY_METRIC,
    REPORT_FILE,
    SCHEMA_VERSION,
    TYPE_METRICS,
    BaselineRole,
    Comparison,
    DataInputs,
    DiversityGuard,
    DiversitySection,
    Evaluation,
    GenerationFacts,
    GuardResult,
    Guards,
    ModelResult,
    PredictionRow,
    Predictions,
    ScoringFacts,
    SplitData,
    SplitMetrics,
    SplitSeconds,
    TypeRow,
    TypeScores,
)
from components.evaluate.scoring import ScoredCaptions, pair_captions, score_captions
from components.evaluate.semantic import resolve_model_source
from components.prepare.conversations import PreparedRecord, read_split
from components.prepare.manifest import GeneralManifest, PrepareManifest, read_manifest

log = logging.getLogger("uicap.evaluate")

__all__ = ["EVALUATION_FILE", "REPORT_FILE", "evaluate", "load_data"]


@dataclass(frozen=True)
class EvalData:
    """One split to evaluate on, with the manifest that identifies it."""

    name: str
    folder: Path
    split: str
    records: list[PreparedRecord]
    manifest: PrepareManifest | GeneralManifest

    def describe(self) -> SplitData:
        split_file = self.folder / f"{self.split}.json"
        return SplitData(
            path=str(self.folder.resolve()),
            split=self.split,
            n=len(self.records),
            fingerprint=self.manifest.fingerprint,
            prompt_template_version=self.manifest.prompt_template_version,
            split_sha256="sha256:" + hashlib.sha256(split_file.read_bytes()).hexdigest(),
        )

    def references(self) -> dict[str, list[str]]:
        return {record.id: [record.answer] for record in self.records}


def load_data(folder: Path, name: str, split: str = "test") -> EvalData:
    """A prepared folder's split and manifest; the `name` says which data it is in errors."""
    folder = Path(folder)
    try:
        manifest = read_manifest(folder)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{folder} has no manifest.json: the {name} data must be a prepared directory"
        ) from None
    records = read_split(folder, split)
    if not records:
        raise ValueError(f"{folder / f'{split}.json'}: no records to evaluate")
    return EvalData(name, folder, split, records, manifest)


def default_device() -> tuple[str, Any]:
    """The GPU in bfloat16 when there is one, else the CPU in float32."""
    import torch

    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return "cuda", dtype
    return "cpu", torch.float32


def _bootstrap(
    candidate: ScoredCaptions,
    baseline: ScoredCaptions,
    metrics: Sequence[str],
    resamples: int,
    seed: int,
) -> dict[str, Comparison]:
    return {
        metric: Comparison(
            **paired_bootstrap(
                candidate, baseline, metric, resamples=resamples, seed=seed, confidence=CONFIDENCE
            ).to_dict()
        )
        for metric in metrics
    }


def subset_cider(scored: ScoredCaptions, indexes: Sequence[int]) -> float:
    """Corpus CIDEr-D of the given items alone (their own document frequencies)."""
    cider = ResampledCider([scored.tokenized_references[i] for i in indexes])
    return cider.corpus_score(cider.cook([scored.tokenized_predictions[i] for i in indexes]))


def per_element_type(
    records: Sequence[PreparedRecord], scored: dict[str, ScoredCaptions], baseline_role: str
) -> dict[str, TypeRow]:
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(record.element_type or NO_TYPE, []).append(index)
    table: dict[str, TypeRow] = {}
    for element_type in sorted(groups):
        indexes = groups[element_type]
        models: dict[str, TypeScores] = {}
        for role, result in scored.items():
            models[role] = TypeScores(
                CIDEr=subset_cider(result, indexes),
                semantic_similarity=float(result.per_item["semantic_similarity"][indexes].mean()),
                format_compliance=float(result.per_item["format_compliance"][indexes].mean()),
                mean_words=float(result.per_item["words"][indexes].mean()),
            )
        table[element_type] = TypeRow(
            n=len(indexes),
            models=models,
            delta={
                metric: getattr(models["candidate"], metric)
                - getattr(models[baseline_role], metric)
                for metric in TYPE_METRICS
            },
        )
    return table


def prediction_rows(
    data: EvalData, scored: dict[str, ScoredCaptions], baseline_role: str
) -> list[PredictionRow]:
    rows = []
    for index, record in enumerate(data.records):
        for role, result in scored.items():
            if result.pairs.ids[index] != record.id:
                raise RuntimeError(f"{role}: scores out of step with the records at {record.id}")
        cider = {role: float(result.per_item["CIDEr"][index]) for role, result in scored.items()}
        similarity = {
            role: float(result.per_item["semantic_similarity"][index])
            for role, result in scored.items()
        }
        rows.append(
            PredictionRow(
                id=record.id,
                element_type=record.element_type,
                image=record.image_name,
                prompt=record.prompt,
                reference=record.answer,
                captions={role: r.pairs.predictions[index] for role, r in scored.items()},
                CIDEr=cider,
                semantic_similarity=similarity,
                format_ok={role: r.format_checks[index].ok for role, r in scored.items()},
                format_violations={
                    role: list(r.format_checks[index].violations) for role, r in scored.items()
                },
                delta={
                    "CIDEr": cider["candidate"] - cider[baseline_role],
                    "semantic_similarity": similarity["candidate"] - similarity[baseline_role],
                },
            )
        )
    return rows


def diversity_of(
    test: EvalData, captions: dict[str, dict[str, dict[str, str]]]
) -> DiversitySection:
    """Caption diversity of the references and of each role on the test split."""
    ids = [record.id for record in test.records]
    return DiversitySection(
        split=DIVERSITY_SPLIT,
        references=caption_diversity([record.answer for record in test.records]),
        models={
            role: caption_diversity([by_split[test.name][i] for i in ids])
            for role, by_split in captions.items()
        },
    )


def _warnings(candidate: ResolvedModel, test: EvalData) -> list[str]:
    notes: list[str] = []
    if candidate.metadata is None:
        return notes
    trained = candidate.metadata.prompt_template_version
    tested = test.manifest.prompt_template_version
    if trained and tested and trained != tested:
        notes.append(
            f"the candidate was trained with prompt template {trained!r}; "
            f"the test data uses {tested!r}"
        )
    fingerprint = test.manifest.fingerprint
    if candidate.metadata.data_fingerprint and candidate.metadata.data_fingerprint != fingerprint:
        notes.append(
            f"the candidate was trained on data {candidate.metadata.data_fingerprint}; "
            f"the test split comes from {fingerprint}: make sure they do not overlap"
        )
    return notes


def _package_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("uicap")
    except PackageNotFoundError:
        return None


def resolve_roles(
    candidate: str,
    champion: str | None,
    base: str | None,
    family: str | None,
    download_dir: Path,
    tracking_uri: str | None = None,
) -> dict[str, ResolvedModel]:
    """candidate, champion (when given) and base, in that order; plain ones default to the
    candidate's family, and the base to the one the candidate was trained from."""
    resolve = {"download_dir": download_dir, "tracking_uri": tracking_uri}
    models = {"candidate": resolve_model(candidate, family, **resolve)}
    family = family or models["candidate"].family
    if champion:
        models["champion"] = resolve_model(champion, family, **resolve)
    models["base"] = resolve_model(base or base_of(models["candidate"]), family, **resolve)
    return models


def caption_all(
    models: dict[str, ResolvedModel],
    datasets: Sequence[EvalData],
    batch_size: int,
    max_new_tokens: int,
    device: str,
    dtype: Any,
    store: CaptionStore | None = None,
) -> tuple[
    dict[str, dict[str, dict[str, str]]],
    dict[str, dict[str, float | None]],
    dict[str, list[str]],
]:
    """Captions per role per dataset, the seconds they took, and the splits whose captions
    came from `store`; one model in memory at a time, and none loaded that has nothing
    left to caption."""
    generation = Generation(max_new_tokens, batch_size, device, str(dtype).removeprefix("torch."))
    captions: dict[str, dict[str, dict[str, str]]] = {}
    seconds: dict[str, dict[str, float | None]] = {}
    reused: dict[str, list[str]] = {}
    for role, model in models.items():
        captions[role], seconds[role], reused[role] = {}, {"test": None, "general": None}, []
        weights = weights_identity(model) if store is not None else None
        pending: list[tuple[EvalData, str | None]] = []
        for data in datasets:
            key = captions_key(weights, data, generation) if weights is not None else None
            found = None
            if store is not None and key is not None:
                found = store.get(key, [record.id for record in data.records])
            if found is None:
                pending.append((data, key))
                continue
            log.info("reusing the %s's captions of %s (%s)", role, data.name, key[:12])
            captions[role][data.name] = found[0]
            reused[role].append(data.name)
        if not pending:
            continue
        log.info("loading %s: %s", role, model.reference)
        captioning = model.load(device, dtype)
        for data, key in pending:
            log.info("captioning %d %s records with the %s", len(data.records), data.name, role)
            run = generate_captions(
                captioning, data.records, batch_size=batch_size, max_new_tokens=max_new_tokens
            )
            captions[role][data.name] = run.captions
            seconds[role][data.name] = round(run.seconds, 3)
            if store is not None and key is not None:
                store.put(key, run.captions, round(run.seconds, 3), model.reference)
        del captioning
        _release_memory()
    return captions, seconds, reused


def evaluate(
    data_dir: Path | str,
    candidate: str,
    champion: str | None = None,
    base: str | None = None,
    general_dir: Path | str | None = None,
    *,
    output_dir: Path | str,
    config: EvaluateConfig | None = None,
    family: str | None = None,
    similarity_model: str | None = None,
    max_words: int = DEFAULT_MAX_WORDS,
    tracking_uri: str | None = None,
    device: str | None = None,
    reuse_root: str | None = None,
) -> Evaluation:
    """Score candidate, champion and base; write evaluation.json and report.html.

    `base` defaults to the base model the candidate artifact names (or the candidate
    itself when it is a plain model); `family` is for plain models whose family cannot be
    read from their folder. `config` (default: `EvaluateConfig()`) sets batching, caption
    length, bootstrap resamples and seed. With `reuse_root`, captions of a model and split
    that are unchanged since an earlier evaluation are read from there, not generated
    (`caption_reuse`). Returns the evaluation that evaluation.json holds.
    """
    from components.evaluate.report import write_report

    config = config or EvaluateConfig()
    batch_size, max_new_tokens = config.batch_size, config.max_new_tokens
    resamples, seed = config.bootstrap_resamples, config.seed
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    test = load_data(Path(data_dir), "test")
    general = load_data(Path(general_dir), "general") if general_dir else None
    datasets = [d for d in (test, general) if d is not None]

    if device is None:
        device, dtype = default_device()
    else:
        import torch

        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with tempfile.TemporaryDirectory(prefix="uicap-eval-models-") as downloads:
        models = resolve_roles(
            candidate, champion, base, family, Path(downloads), tracking_uri=tracking_uri
        )
        store = CaptionStore(reuse_root) if reuse_root else None
        captions, seconds, reused = caption_all(
            models, datasets, batch_size, max_new_tokens, device=device, dtype=dtype, store=store
        )
    baseline_role: BaselineRole = "champion" if champion else "base"

    scored: dict[str, dict[str, ScoredCaptions]] = {data.name: {} for data in datasets}
    for data in datasets:
        references = data.references()
        for role in models:
            log.info("scoring the %s on %s", role, data.name)
            scored[data.name][role] = score_captions(
                pair_captions(captions[role][data.name], references),
                max_words=max_words,
                similarity_model=similarity_model,
            )

    test_scores = scored["test"]
    comparison = _bootstrap(
        test_scores["candidate"], test_scores[baseline_role], COMPARED_METRICS, resamples, seed
    )
    comparison_with_base = None
    if baseline_role != "base":
        comparison_with_base = _bootstrap(
            test_scores["candidate"], test_scores["base"], COMPARED_METRICS, resamples, seed
        )
    general_comparison = None
    if general is not None:
        general_scores = scored["general"]
        general_comparison = _bootstrap(
            general_scores["candidate"],
            general_scores[baseline_role],
            GENERAL_METRICS,
            resamples,
            seed,
        )
    diversity = diversity_of(test, captions)
    guards = Guards(
        semantic_similarity=GuardResult.of(comparison["semantic_similarity"], "test"),
        format_compliance=GuardResult.of(comparison["format_compliance"], "test"),
        general_holdout=None
        if general_comparison is None
        else GuardResult.of(general_comparison[GENERAL_HOLDOUT_METRIC], "general"),
        caption_diversity=DiversityGuard.of(
            diversity.models["candidate"], diversity.references, diversity.split
        ),
    )

    evaluation = Evaluation(
        schema_version=SCHEMA_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        uicap_version=_package_version(),
        primary_metric=PRIMARY_METRIC,
        baseline_role=baseline_role,
        roles=list(models),
        models={
            role: ModelResult(
                identity=model.identity(),
                test=SplitMetrics.model_validate(test_scores[role].metrics),
                general=None
                if general is None
                else SplitMetrics.model_validate(scored["general"][role].metrics),
                generation_seconds=SplitSeconds(**seconds[role]),
                reused_captions=reused[role],
            )
            for role, model in models.items()
        },
        comparison=comparison,
        comparison_with_base=comparison_with_base,
        general_comparison=general_comparison,
        guards=guards,
        diversity=diversity,
        per_element_type=per_element_type(test.records, test_scores, baseline_role),
        data=DataInputs(
            test=test.describe(), general=None if general is None else general.describe()
        ),
        generation=GenerationFacts(
            decoding="greedy",
            num_beams=1,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            batch_order="longest prompt first",
            stop="end of turn",
            device=device,
            dtype=str(dtype).removeprefix("torch."),
        ),
        scoring=ScoringFacts(
            similarity_model=str(resolve_model_source(similarity_model)),
            max_words=max_words,
            resamples=resamples,
            seed=seed,
            confidence=CONFIDENCE,
            unavailable=dict(UNAVAILABLE_METRICS),
        ),
        predictions=Predictions(
            test=prediction_rows(test, scored["test"], baseline_role),
            general=None
            if general is None
            else prediction_rows(general, scored["general"], baseline_role),
        ),
        warnings=_warnings(models["candidate"], test),
    )
    evaluation.write(output_dir / EVALUATION_FILE)
    write_report(evaluation, output_dir / REPORT_FILE, seed=seed)
    return evaluation


def _release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
