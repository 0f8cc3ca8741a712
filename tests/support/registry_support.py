"""Shared setup of the registry tests: a tracking store per test, tiny model artifacts, evaluations.

- `tracking` runs each test twice: against the session's real `mlflow server` (SQLite
  backend, artifacts proxied over HTTP) and against a SQLite file used directly.
- `registry_settings` gives each test its own registered model and experiment, so tests
  share the server without seeing each other's versions.
- `make_artifact` writes a real model artifact (PEFT adapter + processor + uicap_model.json)
  over the tiny base in a second, with LoRA weights drawn from a seed, so different seeds
  are different models; no training is needed where only the registry is under test.
- `evaluation_for` writes an evaluation.json in schema 1 with per-record scores, for tests
  of the registry logic; the tests of the gate's four failure modes use real evaluations.
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

from components.register.client import HTTP_DEFAULTS
from pipelines.settings import RegistrySettings
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
def registry_settings() -> RegistrySettings:
    suffix = uuid.uuid4().hex[:10]
    return RegistrySettings(
        model_name=f"ui-element-captioner-{suffix}", experiment_name=f"uicap-test-{suffix}"
    )


@pytest.fixture(scope="session")
def registry_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared folder whose manifest carries what prepare records for lineage and serving."""
    root = tmp_path_factory.getbasetemp() / "registry-data"
    if not (root / "manifest.json").exists():
        write_prepared(root, train=8, val=4, test=6, seed=3)
        manifest = json.loads((root / "manifest.json").read_text())
        manifest["settings"] = {"max_image_side": 448, "html_budget": 128}
        manifest["ingest"] = {
            "source": {"dataset": "uicap/ui-interactions", "resolved_revision": SOURCE_REVISION}
        }
        (root / "manifest.json").write_text(json.dumps(manifest))
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


def _comparison(candidate: np.ndarray, baseline: np.ndarray, metric: str) -> dict[str, Any]:
    delta = candidate - baseline
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(delta), size=(1000, len(delta)))
    means = delta[draws].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return {
        "metric": metric,
        "candidate": float(candidate.mean()),
        "baseline": float(baseline.mean()),
        "delta": float(delta.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": 0.95,
        "n": len(delta),
    }


def evaluation_for(
    candidate_sha: str,
    quality: float,
    *,
    champion: tuple[str, str] | None = None,
    baseline_quality: float = 0.3,
    format_drop: float = 0.0,
    general_drop: float = 0.0,
    records: int = 40,
) -> dict[str, Any]:
    """evaluation.json of a candidate whose per-record CIDEr centres on `quality`.

    The baseline (`champion` = (name, version), else the base) centres on
    `baseline_quality`; both share the records, the data hashes and the scoring, as two
    pipeline runs evaluated against the same champion would.
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
    baseline_role = "champion" if champion else "base"

    def rows(values: dict[str, np.ndarray], prefix: str, with_format: bool) -> list[dict]:
        out = []
        for index in range(len(values["candidate"])):
            row: dict[str, Any] = {"id": f"{prefix}-{index}", "CIDEr": {}, "format_ok": {}}
            row["semantic_similarity"] = {}
            for role, key in (("candidate", "candidate"), (baseline_role, "baseline")):
                row["CIDEr"][role] = float(values[key][index])
                row["semantic_similarity"][role] = float(similarity[key][index % records])
                row["format_ok"][role] = bool(format_ok[key][index]) if with_format else True
            out.append(row)
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
    general_cmp = _comparison(general["candidate"], general["baseline"], "CIDEr")

    def guard(result: dict[str, Any], split: str) -> dict[str, Any]:
        keys = ("metric", "candidate", "baseline", "delta", "ci_low", "ci_high")
        return {"split": split, **{key: result[key] for key in keys}}

    models: dict[str, Any] = {
        "candidate": {
            "identity": {"weights_sha256": candidate_sha, "registry": None},
            "test": {"CIDEr": comparison["CIDEr"]["candidate"]},
            "general": {"CIDEr": general_cmp["candidate"]},
        },
        "base": {"identity": {"location": "tiny-base", "revision": None, "registry": None}},
    }
    if champion:
        name, version = champion
        models["champion"] = {
            "identity": {
                "registry": {"name": name, "version": version, "uri": f"models:/{name}@champion"},
                "weights_sha256": f"sha256:champion-{version}",
            }
        }
    return {
        "schema_version": 1,
        "primary_metric": "CIDEr",
        "baseline_role": baseline_role,
        "models": models,
        "comparison": comparison,
        "guards": {
            "semantic_similarity": guard(comparison["semantic_similarity"], "test"),
            "format_compliance": guard(comparison["format_compliance"], "test"),
            "general_holdout": guard(general_cmp, "general"),
        },
        "data": {
            "test": {"split_sha256": "sha256:test-split"},
            "general": {"split_sha256": "sha256:general-split"},
        },
        "scoring": {"similarity_model": "minilm", "max_words": 25, "resamples": 1000, "seed": 0},
        "generation": {"max_new_tokens": 24, "decoding": "greedy"},
        "predictions": {
            "test": rows(scores, "t", True),
            "general": rows(general, "g", False),
        },
    }


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path
