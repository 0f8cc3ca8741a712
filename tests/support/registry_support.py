"""Shared setup of the registry tests: a tracking store per test, tiny model artifacts, evaluations.

- `tracking` runs each test twice: against the session's real `mlflow server` (SQLite
  backend, artifacts proxied over HTTP) and against a SQLite file used directly.
- `registry_settings` gives each test its own registered model and experiment, so tests
  share the server without seeing each other's versions.
- `make_artifact` writes a real model artifact (PEFT adapter + processor + uicap_model.json)
  over the tiny base in a second, with LoRA weights drawn from a seed, so different seeds
  are different models; no training is needed where only the registry is under test.
- `evaluation_for` builds an `Evaluation` (the model of evaluation.json) with per-record
  scores, for tests of the gate and registry logic; the tests of the gate's failure modes
  use real evaluations.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from components.evaluate.diversity import caption_diversity
from components.evaluate.result import (
    BaselineRole,
    Comparison,
    DataInputs,
    DiversityGuard,
    DiversitySection,
    Evaluation,
    GenerationFacts,
    GuardResult,
    Guards,
    Identity,
    ModelResult,
    PredictionRow,
    Predictions,
    RegistryRef,
    ScoringFacts,
    SplitData,
    SplitMetrics,
    SplitSeconds,
)
from components.register.client import HTTP_DEFAULTS
from components.register.config import RegistryConfig
from tests.support.servers import forget_mlflow_uris
from tests.support.train_data import tiny_base, write_prepared

SOURCE_REVISION = "0123456789abcdef0123456789abcdef01234567"


@dataclass(frozen=True)
class Tracking:
    kind: str  # "server" or "sqlite"
    uri: str


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite tracking store for the session (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite-store') / 'mlflow.db'}"


@pytest.fixture(params=["server", "sqlite"])
def tracking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tracking]:
    """MLFLOW_TRACKING_URI set to the real server, or to a SQLite file, for one test.

    Both stores are shared by the session; each test works on its own registered model
    and experiment (`registry_settings`).
    """
    if request.param == "server":
        uri = request.getfixturevalue("mlflow_server").uri
    else:
        uri = request.getfixturevalue("sqlite_store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    # `connect` caps MLflow's HTTP retries in the environment; restore it after the test.
    for name, value in HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, os.environ.get(name, value))
    yield Tracking(request.param, uri)
    # Loading models:/ URIs sets MLflow's process-wide URIs; the next test starts clean.
    forget_mlflow_uris()


@pytest.fixture
def registry_settings() -> RegistryConfig:
    suffix = uuid.uuid4().hex[:10]
    return RegistryConfig(
        model_name=f"ui-element-captioner-{suffix}", experiment_name=f"uicap-test-{suffix}"
    )


@pytest.fixture(scope="session")
def registry_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared folder whose manifest carries what prepare records for lineage and serving."""
    root = tmp_path_factory.getbasetemp() / "registry-data"
    if not (root / "manifest.json").exists():
        write_prepared(
            root,
            train=8,
            val=4,
            test=6,
            seed=3,
            max_image_side=448,
            html_budget=128,
            source=("uicap/ui-interactions", SOURCE_REVISION),
        )
    return root


@pytest.fixture(scope="session")
def registry_base(tmp_path_factory: pytest.TempPathFactory, registry_data: Path) -> Path:
    return tiny_base(tmp_path_factory.getbasetemp() / "registry-tiny-base", registry_data)


def make_artifact(
    root: Path, base: Path, seed: int, fingerprint: str = "sha256:data", alpha: float = 8.0
) -> Path:
    """A model artifact over `base` whose adapter weights are drawn from `seed`.

    A large `alpha` makes the adapter move the base's outputs far, so captions differ
    from record to record (a warmed base on its own says nearly the same everywhere).
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from components.captioner.artifact import ADAPTER_DIR, ModelMetadata, write_metadata
    from components.captioner.families import get_family
    from components.prepare import PROMPT_TEMPLATE_VERSION

    family = get_family("minicpmv4_6")
    model, processor = family.load(base, dtype=torch.float32)
    torch.manual_seed(seed)
    adapter = get_peft_model(
        model,
        LoraConfig(
            r=4, lora_alpha=alpha, target_modules=family.lora_target_regex, init_lora_weights=False
        ),
    )
    root.mkdir(parents=True, exist_ok=True)
    adapter.save_pretrained(root / ADAPTER_DIR)
    family.save_processor(processor, root / ADAPTER_DIR)
    write_metadata(
        root,
        ModelMetadata(
            kind="lora",
            weights=ADAPTER_DIR,
            base_model=str(base),
            family=family.name,
            prompt_template_version=PROMPT_TEMPLATE_VERSION,
            data_fingerprint=fingerprint,
            pipeline_run_id=f"train-{seed}",
        ),
    )
    return root


def weights_sha(artifact: Path) -> str:
    from components.captioner.weights import directory_sha256

    return directory_sha256(artifact / "adapter")


def _comparison(candidate: np.ndarray, baseline: np.ndarray, metric: str) -> Comparison:
    delta = candidate - baseline
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(delta), size=(1000, len(delta)))
    means = delta[draws].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return Comparison(
        metric=metric,
        candidate=float(candidate.mean()),
        baseline=float(baseline.mean()),
        delta=float(delta.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=0.95,
        share_better=float((means > 0).mean()),
        p_value=float((means <= 0).mean()),
        resamples=1000,
        seed=0,
        n=len(delta),
    )


def split_metrics(cider: float, similarity: float, format_ok: float, n: int) -> SplitMetrics:
    """The metrics `uicap score` prints, with the three the gate reads set."""
    return SplitMetrics(
        Bleu_1=cider / 2,
        Bleu_2=cider / 3,
        Bleu_3=cider / 4,
        Bleu_4=cider / 5,
        METEOR=cider / 4,
        ROUGE_L=cider / 2,
        CIDEr=cider,
        semantic_similarity=similarity,
        format_compliance=format_ok,
        mean_words=6.0,
        n=n,
        format_violations={},
        max_words=25,
        similarity_model="minilm",
        unavailable={},
    )


def identity_of(
    reference: str, weights_sha256: str | None, registry: RegistryRef | None
) -> Identity:
    return Identity(
        reference=reference,
        kind="artifact" if weights_sha256 else "plain",
        location=reference,
        revision=None,
        family="minicpmv4_6",
        base_model="tiny-base",
        base_revision=None,
        weights_sha256=weights_sha256,
        registry=registry,
        metadata=None,
    )


def evaluation_for(
    candidate_sha: str,
    quality: float,
    *,
    champion: tuple[str, str] | None = None,
    baseline_quality: float = 0.3,
    format_drop: float = 0.0,
    general_drop: float = 0.0,
    records: int = 40,
    distinct_captions: int | None = None,
) -> Evaluation:
    """An evaluation of a candidate whose per-record CIDEr centres on `quality`.

    The baseline (`champion` = (name, version), else the base) centres on
    `baseline_quality`; both share the records, the data hashes and the scoring, as two
    pipeline runs evaluated against the same champion would. Every reference and every
    caption is distinct, unless `distinct_captions` says how many the candidate has.
    """
    spread = np.linspace(-0.1, 0.1, records)
    scores = {
        "candidate": np.clip(quality + spread, 0, None),
        "baseline": np.clip(baseline_quality + spread[::-1] * 0.5, 0, None),
    }
    similarity = {"candidate": 0.5 + quality / 10 + spread, "baseline": 0.5 + spread}
    format_ok = {
        "candidate": np.arange(records) >= round(format_drop * records),
        "baseline": np.ones(records, dtype=bool),
    }
    general = {
        "candidate": np.full(8, 0.8 - general_drop) + np.linspace(-0.05, 0.05, 8),
        "baseline": np.full(8, 0.8) + np.linspace(-0.05, 0.05, 8),
    }
    baseline_role: BaselineRole = "champion" if champion else "base"
    kinds = distinct_captions or records
    captions = {
        "candidate": [
            f"Opens page {index % kinds} of {candidate_sha}." for index in range(records)
        ],
        "baseline": [f"Shows item {index}." for index in range(records)],
    }

    def rows(values: dict[str, np.ndarray], prefix: str, with_format: bool) -> list[PredictionRow]:
        out = []
        for index in range(len(values["candidate"])):
            row: dict[str, dict[str, Any]] = {
                "captions": {},
                "CIDEr": {},
                "semantic_similarity": {},
                "format_ok": {},
                "format_violations": {},
            }
            for role, key in (("candidate", "candidate"), (baseline_role, "baseline")):
                row["captions"][role] = captions[key][index % records]
                row["CIDEr"][role] = float(values[key][index])
                row["semantic_similarity"][role] = float(similarity[key][index % records])
                ok = bool(format_ok[key][index]) if with_format else True
                row["format_ok"][role] = ok
                row["format_violations"][role] = [] if ok else ["multiple_sentences"]
            out.append(
                PredictionRow(
                    id=f"{prefix}-{index}",
                    element_type="button",
                    image=f"images/{prefix}-{index}.png",
                    prompt="What does it do?",
                    reference=f"Opens record {prefix}-{index}.",
                    delta={
                        metric: row[metric]["candidate"] - row[metric][baseline_role]
                        for metric in ("CIDEr", "semantic_similarity")
                    },
                    **row,
                )
            )
        return out

    comparison = {
        "CIDEr": _comparison(scores["candidate"], scores["baseline"], "CIDEr"),
        "semantic_similarity": _comparison(
            similarity["candidate"], similarity["baseline"], "semantic_similarity"
        ),
        "format_compliance": _comparison(
            format_ok["candidate"].astype(float),
            format_ok["baseline"].astype(float),
            "format_compliance",
        ),
    }
    general_cmp = {
        "CIDEr": _comparison(general["candidate"], general["baseline"], "CIDEr"),
        "semantic_similarity": _comparison(
            similarity["candidate"][:8], similarity["baseline"][:8], "semantic_similarity"
        ),
    }

    def result(key: str, identity: Identity) -> ModelResult:
        return ModelResult(
            identity=identity,
            test=split_metrics(
                comparison["CIDEr"].candidate
                if key == "candidate"
                else comparison["CIDEr"].baseline,
                float(similarity[key].mean()),
                float(format_ok[key].mean()),
                records,
            ),
            general=split_metrics(float(general[key].mean()), 0.6, 1.0, 8),
            generation_seconds=SplitSeconds(test=1.0, general=0.5),
        )

    models = {"candidate": result("candidate", identity_of("candidate", candidate_sha, None))}
    if champion:
        name, version = champion
        registry = RegistryRef(name=name, version=version, uri=f"models:/{name}@champion")
        models["champion"] = result(
            "baseline",
            identity_of(f"models:/{name}@champion", f"sha256:champion-{version}", registry),
        )
    else:
        models["base"] = result("baseline", identity_of("tiny-base", None, None))
    test_rows = rows(scores, "t", True)
    diversity = DiversitySection(
        split="test",
        references=caption_diversity([row.reference for row in test_rows]),
        models={
            "candidate": caption_diversity(captions["candidate"]),
            baseline_role: caption_diversity(captions["baseline"]),
        },
    )
    split = {"path": "/data/prepared", "n": records, "fingerprint": "sha256:data"}
    return Evaluation(
        schema_version=1,
        created_at="2025-01-01T00:00:00+00:00",
        uicap_version=None,
        primary_metric="CIDEr",
        baseline_role=baseline_role,
        roles=list(models),
        models=models,
        comparison=comparison,
        comparison_with_base=None,
        general_comparison=general_cmp,
        guards=Guards(
            semantic_similarity=GuardResult.of(comparison["semantic_similarity"], "test"),
            format_compliance=GuardResult.of(comparison["format_compliance"], "test"),
            general_holdout=GuardResult.of(general_cmp["CIDEr"], "general"),
            caption_diversity=DiversityGuard.of(
                diversity.models["candidate"], diversity.references, "test"
            ),
        ),
        diversity=diversity,
        per_element_type={},
        data=DataInputs(
            test=SplitData(
                split="test",
                prompt_template_version="ui-caption-v1",
                split_sha256="sha256:test-split",
                **split,
            ),
            general=SplitData(
                split="test",
                prompt_template_version="general-v1",
                split_sha256="sha256:general-split",
                **{**split, "n": 8},
            ),
        ),
        generation=GenerationFacts(
            decoding="greedy",
            num_beams=1,
            do_sample=False,
            max_new_tokens=24,
            batch_size=8,
            batch_order="longest prompt first",
            stop="end of turn",
            device="cpu",
            dtype="float32",
        ),
        scoring=ScoringFacts(
            similarity_model="minilm",
            max_words=25,
            resamples=1000,
            seed=0,
            confidence=0.95,
            unavailable={},
        ),
        predictions=Predictions(test=test_rows, general=rows(general, "g", False)),
        warnings=[],
    )


def write_json(path: Path, payload: dict[str, Any] | Evaluation) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = payload.to_dict() if isinstance(payload, Evaluation) else payload
    path.write_text(json.dumps(data))
    return path
