"""Evaluate a candidate captioner against the bar it must beat; write evaluation.json + report.

The candidate, the champion (when there is one) and the untuned base caption the prepared
test split, and the general holdout when given, through one shared generation path
(`components.evaluate.generation`). Each is scored with `score_captions`; the candidate
is compared with the *baseline*, which is the champion when one is given and the base
otherwise, by a paired bootstrap (`paired_bootstrap`, CIDEr recomputed per resample).

The promotion gate reads evaluation.json and nothing else, so its schema is a contract.

evaluation.json, schema_version 1
---------------------------------
``schema_version`` (int, 1); ``created_at`` (ISO 8601 UTC); ``uicap_version``.

``primary_metric``: ``"CIDEr"``. ``baseline_role``: ``"champion"`` or ``"base"``, the
role the candidate is compared with. ``roles``: the roles scored, in order, from
``"candidate"``, ``"champion"``, ``"base"`` (``"base"`` is always scored).

``models``: one object per role:
    ``identity``: what was evaluated: ``reference`` (as given), ``kind`` (``"artifact"``
    or ``"plain"``), ``location``, ``revision``, ``family``, ``base_model``,
    ``base_revision``, ``weights_sha256`` (artifacts: sha256 over the adapter or model
    folder), ``registry`` (``models:/`` references: ``uri``, ``name``, ``version``,
    ``alias``, ``run_id``, ``source``; else null), ``metadata`` (the artifact's
    uicap_model.json, with its training loss curve; else null);
    ``test`` and ``general``: the metrics `uicap score` prints for that split (COCO keys
    ``Bleu_1``..``CIDEr``, ``semantic_similarity``, ``format_compliance``,
    ``mean_words``, ``n``, ``format_violations``, ...); ``general`` is null without a
    general holdout;
    ``generation_seconds``: ``{"test": s, "general": s | null}``.

``comparison``: candidate - baseline on the test split, one object per metric in
``COMPARED_METRICS`` (``CIDEr``, ``semantic_similarity``, ``format_compliance``):
``metric``, ``candidate``, ``baseline``, ``delta``, ``ci_low``, ``ci_high``
(percentile interval at ``confidence``), ``confidence``, ``share_better``, ``p_value``
(share of resamples where the candidate is not better), ``resamples``, ``seed``, ``n``.
``comparison_with_base``: the same against the base when the baseline is the champion;
else null.

``general_comparison``: the same objects for ``GENERAL_METRICS`` on the general holdout;
null without one.

``guards``: what the gate checks besides the primary metric, each
``{"metric", "split", "candidate", "baseline", "delta", "ci_low", "ci_high"}``:
``semantic_similarity`` and ``format_compliance`` (test split), and ``general_holdout``
(``GENERAL_HOLDOUT_METRIC`` = CIDEr on the general split; null without a general holdout).

``per_element_type``: ``{element_type: {"n", "models": {role: {"CIDEr",
"semantic_similarity", "format_compliance", "mean_words"}}, "delta": {metric: candidate -
baseline}}}``; CIDEr is the corpus CIDEr of that type's records alone, the others are
means. Records without an element_type are under ``"(none)"``. The ``n`` sum to the test n.

``data``: ``test`` and ``general`` (null when absent): ``path``, ``split``, ``n``,
``fingerprint`` and ``prompt_template_version`` from the folder's manifest.json, and
``split_sha256`` (of the split file).

``generation``: ``decoding`` (``"greedy"``), ``num_beams`` 1, ``do_sample`` false,
``max_new_tokens``, ``batch_size``, ``batch_order``, ``stop`` (``"end of turn"``),
``device``, ``dtype``.

``scoring``: ``similarity_model``, ``max_words``, ``resamples``, ``seed``,
``confidence``, ``unavailable`` (metrics that cannot be computed here, with the reason).

``predictions``: ``{"test": [...], "general": [...]}``, one object per record, in split
order: ``id``, ``element_type`` (null when absent), ``image`` (relative to the split's
folder), ``prompt``, ``reference``, and per role: ``captions``, ``CIDEr``,
``semantic_similarity``, ``format_ok``, ``format_violations``; plus ``delta``
(``CIDEr``, ``semantic_similarity``: candidate - baseline for that record).

``warnings``: human-readable lines about inputs that do not match (e.g. the candidate
was trained with another prompt template than the test data's).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.evaluate.answer_format import DEFAULT_MAX_WORDS
from components.evaluate.bootstrap import MIN_RESAMPLES, paired_bootstrap
from components.evaluate.cider import ResampledCider
from components.evaluate.coco_metrics import UNAVAILABLE_METRICS
from components.evaluate.generation import EvalRecord, generate_captions, read_eval_split
from components.evaluate.models import ResolvedModel, base_of, resolve_model
from components.evaluate.scoring import ScoredCaptions, pair_captions, score_captions
from components.evaluate.semantic import resolve_model_source

log = logging.getLogger("uicap.evaluate")

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


@dataclass(frozen=True)
class EvalData:
    """One split to evaluate on, with the manifest facts that identify it."""

    name: str
    folder: Path
    split: str
    records: list[EvalRecord]
    manifest: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        split_file = self.folder / f"{self.split}.json"
        return {
            "path": str(self.folder.resolve()),
            "split": self.split,
            "n": len(self.records),
            "fingerprint": self.manifest.get("fingerprint"),
            "prompt_template_version": self.manifest.get("prompt_template_version"),
            "split_sha256": "sha256:" + hashlib.sha256(split_file.read_bytes()).hexdigest(),
        }

    def references(self) -> dict[str, list[str]]:
        return {record.id: [record.reference] for record in self.records}


def load_data(folder: Path, name: str, split: str = "test") -> EvalData:
    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{folder} has no manifest.json: the {name} data must be a prepared directory"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return EvalData(name, folder, split, read_eval_split(folder, split), manifest)


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
) -> dict[str, dict[str, Any]]:
    return {
        metric: paired_bootstrap(
            candidate, baseline, metric, resamples=resamples, seed=seed, confidence=CONFIDENCE
        ).to_dict()
        for metric in metrics
    }


def _guard(result: dict[str, Any], split: str) -> dict[str, Any]:
    keys = ("metric", "candidate", "baseline", "delta", "ci_low", "ci_high")
    return {"split": split, **{key: result[key] for key in keys}}


def subset_cider(scored: ScoredCaptions, indexes: Sequence[int]) -> float:
    """Corpus CIDEr-D of the given items alone (their own document frequencies)."""
    cider = ResampledCider([scored.tokenized_references[i] for i in indexes])
    return cider.corpus_score(cider.cook([scored.tokenized_predictions[i] for i in indexes]))


def per_element_type(
    records: Sequence[EvalRecord], scored: dict[str, ScoredCaptions], baseline_role: str
) -> dict[str, Any]:
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(record.element_type or NO_TYPE, []).append(index)
    table: dict[str, Any] = {}
    for element_type in sorted(groups):
        indexes = groups[element_type]
        models: dict[str, dict[str, float]] = {}
        for role, result in scored.items():
            values = {"CIDEr": subset_cider(result, indexes)}
            for metric, per_item in (
                ("semantic_similarity", "semantic_similarity"),
                ("format_compliance", "format_compliance"),
                ("mean_words", "words"),
            ):
                values[metric] = float(result.per_item[per_item][indexes].mean())
            models[role] = values
        table[element_type] = {
            "n": len(indexes),
            "models": models,
            "delta": {
                metric: models["candidate"][metric] - models[baseline_role][metric]
                for metric in TYPE_METRICS
            },
        }
    return table


def prediction_rows(
    data: EvalData, scored: dict[str, ScoredCaptions], baseline_role: str
) -> list[dict[str, Any]]:
    rows = []
    for index, record in enumerate(data.records):
        row: dict[str, Any] = {
            "id": record.id,
            "element_type": record.element_type,
            "image": record.image_name,
            "prompt": record.prompt,
            "reference": record.reference,
            "captions": {},
            "CIDEr": {},
            "semantic_similarity": {},
            "format_ok": {},
            "format_violations": {},
        }
        for role, result in scored.items():
            if result.pairs.ids[index] != record.id:
                raise RuntimeError(f"{role}: scores out of step with the records at {record.id}")
            row["captions"][role] = result.pairs.predictions[index]
            row["CIDEr"][role] = float(result.per_item["CIDEr"][index])
            row["semantic_similarity"][role] = float(result.per_item["semantic_similarity"][index])
            row["format_ok"][role] = result.format_checks[index].ok
            row["format_violations"][role] = list(result.format_checks[index].violations)
        row["delta"] = {
            metric: row[metric]["candidate"] - row[metric][baseline_role]
            for metric in ("CIDEr", "semantic_similarity")
        }
        rows.append(row)
    return rows


def _warnings(candidate: ResolvedModel, test: EvalData) -> list[str]:
    notes = []
    if candidate.metadata is None:
        return notes
    trained = candidate.metadata.prompt_template_version
    tested = test.manifest.get("prompt_template_version")
    if trained and tested and trained != tested:
        notes.append(
            f"the candidate was trained with prompt template {trained!r}; "
            f"the test data uses {tested!r}"
        )
    fingerprint = test.manifest.get("fingerprint")
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


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Write to a sibling file, then rename: a reader never sees half a file."""
    text = json.dumps(payload, indent=1, ensure_ascii=False, allow_nan=False)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text + "\n", encoding="utf-8")
    os.replace(staging, path)


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
) -> tuple[dict[str, dict[str, dict[str, str]]], dict[str, dict[str, float | None]]]:
    """Captions per role per dataset, and the seconds they took; one model in memory at a time."""
    captions: dict[str, dict[str, dict[str, str]]] = {}
    seconds: dict[str, dict[str, float | None]] = {}
    for role, model in models.items():
        log.info("loading %s: %s", role, model.reference)
        captioning = model.load(device, dtype)
        captions[role], seconds[role] = {}, {"test": None, "general": None}
        for data in datasets:
            log.info("captioning %d %s records with the %s", len(data.records), data.name, role)
            run = generate_captions(
                captioning, data.records, batch_size=batch_size, max_new_tokens=max_new_tokens
            )
            captions[role][data.name] = run.captions
            seconds[role][data.name] = round(run.seconds, 3)
        del captioning
        _release_memory()
    return captions, seconds


def evaluate(
    data_dir: Path | str,
    candidate: str,
    champion: str | None = None,
    base: str | None = None,
    general_dir: Path | str | None = None,
    *,
    output_dir: Path | str,
    batch_size: int = 16,
    max_new_tokens: int = 32,
    resamples: int = MIN_RESAMPLES,
    seed: int = 0,
    family: str | None = None,
    similarity_model: str | None = None,
    max_words: int = DEFAULT_MAX_WORDS,
    tracking_uri: str | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Score candidate, champion and base; write evaluation.json and report.html.

    `base` defaults to the base model the candidate artifact names (or the candidate
    itself when it is a plain model); `family` is for plain models whose family cannot be
    read from their folder. Returns the evaluation.json content.
    """
    from components.evaluate.report import write_report

    if resamples < MIN_RESAMPLES:
        raise ValueError(f"use at least {MIN_RESAMPLES} bootstrap resamples, got {resamples}")
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
        captions, seconds = caption_all(
            models, datasets, batch_size, max_new_tokens, device=device, dtype=dtype
        )
    baseline_role = "champion" if champion else "base"

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
    guards = {
        "semantic_similarity": _guard(comparison["semantic_similarity"], "test"),
        "format_compliance": _guard(comparison["format_compliance"], "test"),
        "general_holdout": None
        if general_comparison is None
        else _guard(general_comparison[GENERAL_HOLDOUT_METRIC], "general"),
    }

    evaluation: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "uicap_version": _package_version(),
        "primary_metric": PRIMARY_METRIC,
        "baseline_role": baseline_role,
        "roles": list(models),
        "models": {
            role: {
                "identity": model.identity(),
                "test": test_scores[role].metrics,
                "general": None if general is None else scored["general"][role].metrics,
                "generation_seconds": seconds[role],
            }
            for role, model in models.items()
        },
        "comparison": comparison,
        "comparison_with_base": comparison_with_base,
        "general_comparison": general_comparison,
        "guards": guards,
        "per_element_type": per_element_type(test.records, test_scores, baseline_role),
        "data": {
            "test": test.describe(),
            "general": None if general is None else general.describe(),
        },
        "generation": {
            "decoding": "greedy",
            "num_beams": 1,
            "do_sample": False,
            "max_new_tokens": max_new_tokens,
            "batch_size": batch_size,
            "batch_order": "longest prompt first",
            "stop": "end of turn",
            "device": device,
            "dtype": str(dtype).removeprefix("torch."),
        },
        "scoring": {
            "similarity_model": str(resolve_model_source(similarity_model)),
            "max_words": max_words,
            "resamples": resamples,
            "seed": seed,
            "confidence": CONFIDENCE,
            "unavailable": dict(UNAVAILABLE_METRICS),
        },
        "predictions": {
            data.name: prediction_rows(data, scored[data.name], baseline_role) for data in datasets
        },
        "warnings": _warnings(models["candidate"], test),
    }
    write_json_atomically(output_dir / EVALUATION_FILE, evaluation)
    write_report(evaluation, output_dir / REPORT_FILE, seed=seed)
    return evaluation


def summary_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    """Flat name -> value of the primary and guard metrics of each model, and the deltas.

    ``<role>_<metric>`` on the test split, ``<role>_general_<metric>`` on the general
    holdout, ``delta_<metric>`` with ``delta_<metric>_ci_low`` / ``_ci_high`` for the
    candidate - baseline comparison (``delta_general_<metric>`` on the holdout).
    """
    flat: dict[str, float] = {}
    for role in evaluation["roles"]:
        model = evaluation["models"][role]
        for metric in COMPARED_METRICS:
            flat[f"{role}_{metric}"] = float(model["test"][metric])
        if model["general"] is not None:
            for metric in GENERAL_METRICS:
                flat[f"{role}_general_{metric}"] = float(model["general"][metric])
    comparisons = [("", evaluation["comparison"])]
    if evaluation["general_comparison"] is not None:
        comparisons.append(("general_", evaluation["general_comparison"]))
    for prefix, comparison in comparisons:
        for metric, result in comparison.items():
            flat[f"delta_{prefix}{metric}"] = float(result["delta"])
            flat[f"delta_{prefix}{metric}_ci_low"] = float(result["ci_low"])
            flat[f"delta_{prefix}{metric}_ci_high"] = float(result["ci_high"])
    return flat


def _release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
