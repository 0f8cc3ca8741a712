"""Register a trained candidate as a model version: idempotent per pipeline run, never half done.

The order makes a half-registered version impossible:

1. A version already tagged with this pipeline run id is the answer: a re-run returns it
   (and finishes what the earlier attempt left, the `challenger` alias) instead of
   making a duplicate. Runs left by attempts that failed before their version existed
   are deleted first.
2. The pyfunc model is written locally (MLflow loads it and predicts its input example),
   uploaded into a fresh MLflow run together with evaluation.json, and the upload is
   listed back and compared file by file with what was written.
3. Only then is the version created, in one request that carries every lineage and
   evaluation tag, so a version exists complete or not at all. If anything before this
   fails, the run is deleted again (or, with the server down, by the next attempt).
4. The `challenger` alias is set last. If that fails, the version is complete and the
   re-run of step 1 sets the alias.

MLflow's HTTP client retries a POST whose reply was lost, which could create the version
twice; the versions of this pipeline run are therefore counted after creation and any
extra is deleted.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.evaluate.result import EVALUATION_FILE, Evaluation
from components.register import tags as T
from components.register.client import (
    Registry,
    RegistryError,
    RegistryUnavailableError,
    describe_error,
    is_transient,
)
from components.register.pyfunc_model import ServingConfig, save_pyfunc
from components.register.serving_requirements import installed_version, pip_requirements

log = logging.getLogger("uicap.register")

MODEL_ARTIFACT_PATH = "model"
EVALUATION_ARTIFACT_PATH = "evaluation"
CODE_VERSION_ENV = "UICAP_CODE_VERSION"
RUN_STEP = "register"
DESCRIPTION = (
    "UI-element captioner: a screenshot with one element outlined in magenta, plus its type, "
    "text and surrounding HTML, in; one sentence saying what acting on it does, out."
)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DataLineage:
    """Where the training data came from, read from the prepared folder's manifest."""

    fingerprint: str | None = None
    source: str | None = None
    source_revision: str | None = None
    prompt_template_version: str | None = None
    max_image_side: int | None = None
    html_budget: int | None = None
    html_tokens: str | None = None


@dataclass(frozen=True)
class Registered:
    """The outcome of `register_candidate`: the version, and whether this call created it."""

    version: str
    created: bool
    run_id: str | None
    challenger: bool


def read_lineage(data_dir: Path | None) -> DataLineage:
    """The lineage facts of a prepared folder (its manifest); empty without a folder."""
    from components.prepare.manifest import read_manifest

    if data_dir is None:
        return DataLineage()
    try:
        manifest = read_manifest(Path(data_dir))
    except FileNotFoundError:
        raise RegistryError(
            f"{data_dir}: no manifest.json, so the data lineage is unknown"
        ) from None
    return DataLineage(
        fingerprint=manifest.fingerprint,
        source=manifest.source.dataset,
        source_revision=manifest.source.resolved_revision,
        prompt_template_version=manifest.prompt_template_version,
        max_image_side=manifest.settings.max_image_side,
        html_budget=manifest.settings.html_budget,
        html_tokens=manifest.settings.html_tokens,
    )


def code_version() -> str:
    """$UICAP_CODE_VERSION (set by the image build), else the git commit, else the package."""
    import os

    pinned = os.environ.get(CODE_VERSION_ENV)
    if pinned:
        return pinned
    source = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        if sha:
            return f"git:{sha}"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"uicap=={installed_version('uicap') or 'unknown'}"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


# Tag name -> the candidate's test metric it carries (the tag names predate the metric keys).
_TAGGED_METRICS = {
    "CIDEr": "CIDEr",
    "semantic_similarity": "semantic_similarity",
    "format_compliance": "format_compliance",
    "BLEU_4": "Bleu_4",
    "mean_words": "mean_words",
}


def evaluation_tags(evaluation: Evaluation) -> dict[str, str]:
    """The candidate's scores and its comparison with the baseline, as version tags."""
    candidate = evaluation.candidate
    champion = evaluation.evaluated_champion
    found: dict[str, Any] = {
        T.EVAL_BASELINE: evaluation.baseline_role + (f" v{champion}" if champion else ""),
        T.EVAL_CHAMPION: champion or "",
        T.EVAL_TEST_SPLIT: evaluation.data.test.split_sha256,
    }
    for tag in T.EVAL_METRICS:
        found[T.eval_metric(tag)] = getattr(candidate.test, _TAGGED_METRICS[tag])
    if candidate.general is not None:
        found[T.eval_metric("general_CIDEr")] = candidate.general.CIDEr
    diversity = evaluation.guards.caption_diversity
    if diversity is not None:
        found[T.eval_metric("distinct_share")] = diversity.candidate
        found[T.eval_metric("top_caption_share")] = diversity.candidate_top_share
    primary = evaluation.comparison.get(evaluation.primary_metric)
    if primary is not None:
        found[T.EVAL_DELTA] = primary.delta
        found[T.EVAL_CI_LOW] = primary.ci_low
        found[T.EVAL_CI_HIGH] = primary.ci_high
    for name in type(evaluation.guards).model_fields:
        guard = getattr(evaluation.guards, name)
        if guard is not None:
            found[T.guard_delta(name)] = guard.delta
    return {key: _fmt(value) for key, value in found.items() if value is not None}


def evaluation_metrics(evaluation: Evaluation) -> dict[str, float]:
    """The same numbers as run metrics (MLflow compares runs by metrics, not tags)."""
    candidate = evaluation.candidate
    metrics: dict[str, float] = {}
    for split, scores in (("test", candidate.test), ("general", candidate.general)):
        if scores is None:
            continue
        for key, value in scores.model_dump().items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"{split}.{key}"] = float(value)
    if evaluation.diversity is not None:
        mine = evaluation.diversity.models["candidate"]
        metrics["test.distinct_share"] = mine.distinct_share
        metrics["test.top_caption_share"] = mine.top_share
        metrics["references.distinct_share"] = evaluation.diversity.references.distinct_share
    for metric, result in evaluation.comparison.items():
        for field in ("delta", "ci_low", "ci_high"):
            metrics[f"vs_baseline.{metric}.{field}"] = float(getattr(result, field))
    return metrics


def version_tags(
    model_dir: Path,
    evaluation: Evaluation,
    lineage: DataLineage,
    pipeline_run_id: str,
    weights_sha256: str,
) -> dict[str, str]:
    from components.captioner.artifact import read_metadata

    metadata = read_metadata(model_dir)
    found = {
        T.PIPELINE_RUN_ID: pipeline_run_id,
        T.CODE_VERSION: code_version(),
        T.DATA_FINGERPRINT: metadata.data_fingerprint or lineage.fingerprint,
        T.DATA_SOURCE: lineage.source,
        T.DATA_SOURCE_REVISION: lineage.source_revision,
        T.BASE_ID: metadata.base_model,
        T.BASE_REVISION: metadata.base_revision,
        T.FAMILY: metadata.family,
        T.PROMPT_TEMPLATE_VERSION: metadata.prompt_template_version
        or lineage.prompt_template_version,
        T.WEIGHTS_KIND: metadata.kind,
        T.WEIGHTS_SHA256: weights_sha256,
        T.TRAINING_RUN: metadata.mlflow_run_id,
    }
    tags = {key: _fmt(value) for key, value in found.items() if value is not None}
    return {**tags, **evaluation_tags(evaluation)}


def check_evaluation_matches(evaluation: Evaluation, weights_sha256: str) -> None:
    """evaluation.json must be about these weights, or its numbers would tag the wrong model."""
    evaluated = evaluation.candidate_weights
    if evaluated is not None and evaluated != weights_sha256:
        raise RegistryError(
            f"evaluation.json scored candidate weights {evaluated}, but the model to register has "
            f"{weights_sha256}: register the model that was evaluated"
        )


def stage_artifact(model_dir: Path, into: Path) -> Path:
    """A clean copy of the model artifact: metadata + weights folder, no checkpoints or logs."""
    from components.captioner.artifact import METADATA_FILE, read_metadata

    metadata = read_metadata(model_dir)
    weights = model_dir / metadata.weights
    if not weights.is_dir():
        raise RegistryError(f"{model_dir}: {METADATA_FILE} names {metadata.weights}/, not present")
    target = into / "captioner"
    target.mkdir(parents=True)
    shutil.copy2(model_dir / METADATA_FILE, target / METADATA_FILE)
    shutil.copytree(weights, target / metadata.weights)
    return target


def _local_files(root: Path) -> dict[str, int]:
    return {
        path.relative_to(root).as_posix(): path.stat().st_size
        for path in root.rglob("*")
        if path.is_file()
    }


def _remote_files(registry: Registry, run_id: str, path: str) -> dict[str, int]:
    found: dict[str, int] = {}
    pending = [path]
    while pending:
        folder = pending.pop()
        for item in registry.client.list_artifacts(run_id, folder):
            if item.is_dir:
                pending.append(item.path)
            else:
                found[item.path.removeprefix(path + "/")] = int(item.file_size or 0)
    return found


class _Attempt:
    """One registration attempt's MLflow run, deleted again unless a version comes of it."""

    def __init__(self, registry: Registry, pipeline_run_id: str) -> None:
        self.registry = registry
        self.pipeline_run_id = pipeline_run_id
        self.run_id: str | None = None

    def start(self) -> str:
        experiment_id = self.registry.ensure_experiment()
        run = self.registry.call(
            "starting the registration run",
            lambda: self.registry.client.create_run(
                experiment_id,
                run_name=f"register-{self.pipeline_run_id}",
                tags={T.PIPELINE_RUN_ID: self.pipeline_run_id, T.RUN_STEP: RUN_STEP},
            ),
        )
        self.run_id = run.info.run_id
        return self.run_id

    def discard(self) -> None:
        """Best effort: mark the run failed and delete it; a later attempt retries this."""
        if self.run_id is None:
            return
        client = self.registry.client
        try:
            client.set_terminated(self.run_id, "FAILED")
            client.delete_run(self.run_id)
        except Exception as error:
            log.warning(
                "could not delete the failed registration run %s (%s); the next attempt will",
                self.run_id,
                describe_error(error),
            )


def _delete_leftover_runs(registry: Registry, pipeline_run_id: str) -> None:
    """Runs of earlier attempts for this pipeline run that never produced a version."""
    experiment = registry.call(
        "finding the experiment",
        lambda: registry.client.get_experiment_by_name(registry.experiment_name),
    )
    if experiment is None:
        return
    query = (
        f"tags.`{T.PIPELINE_RUN_ID}` = '{pipeline_run_id}' and tags.`{T.RUN_STEP}` = '{RUN_STEP}'"
    )
    runs = registry.call(
        "finding earlier attempts",
        lambda: registry.client.search_runs([experiment.experiment_id], query, max_results=100),
    )
    for run in runs:
        log.info("deleting run %s of an earlier registration attempt", run.info.run_id)
        registry.call(
            "deleting an earlier attempt",
            lambda run=run: registry.client.delete_run(run.info.run_id),
        )


def _set_challenger(registry: Registry, version: str) -> bool:
    """Point `challenger` at `version` unless it was decided already or a newer one has it."""
    details = registry.version(version)
    if details.tags.get(T.GATE_DECISION):
        return registry.challenger() == version
    current = registry.challenger()
    if current is not None and int(current) > int(version):
        return False
    if current != version:
        registry.set_alias(registry.challenger_alias, version)
    return True


def _existing(registry: Registry, pipeline_run_id: str) -> list[Any]:
    return registry.versions({T.PIPELINE_RUN_ID: pipeline_run_id})


def _drop_duplicates(registry: Registry, pipeline_run_id: str) -> str:
    """Keep the oldest version of this pipeline run; delete extras a retried POST made."""
    found = _existing(registry, pipeline_run_id)
    if not found:
        raise RegistryError(f"version for pipeline run {pipeline_run_id} vanished after creation")
    keep, extras = found[0], found[1:]
    for extra in extras:
        log.warning("deleting duplicate version %s of pipeline run %s", extra.version, keep.version)
        registry.call(
            "deleting a duplicate version",
            lambda extra=extra: registry.client.delete_model_version(
                registry.model_name, extra.version
            ),
        )
    return str(keep.version)


def register_candidate(
    registry: Registry,
    model_dir: Path,
    evaluation: Evaluation,
    pipeline_run_id: str,
    *,
    data_dir: Path | None = None,
    serving: ServingConfig | None = None,
    progress: Progress | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> Registered:
    """Register the model artifact in `model_dir` for `pipeline_run_id` (see module docstring).

    `serving` defaults to the image size and HTML budget in the data manifest;
    `extra_tags` (the run's lineage) are added to the version's tags.
    """
    from components.captioner.artifact import read_metadata
    from components.captioner.weights import directory_sha256

    step = progress or (lambda _name: None)
    if not pipeline_run_id.strip():
        raise RegistryError(
            "a pipeline run id is required: it is what makes registering idempotent"
        )
    model_dir = Path(model_dir)
    metadata = read_metadata(model_dir)
    weights_sha256 = directory_sha256(model_dir / metadata.weights)
    check_evaluation_matches(evaluation, weights_sha256)

    found = _existing(registry, pipeline_run_id)
    if found:
        existing = _drop_duplicates(registry, pipeline_run_id)
        log.info("pipeline run %s is registered already as version %s", pipeline_run_id, existing)
        _finish_run(registry, found[0].run_id)
        challenger = _set_challenger(registry, existing)
        step("challenger-set")
        return Registered(existing, False, found[0].run_id, challenger)

    lineage = read_lineage(data_dir)
    if serving is None:
        if lineage.html_budget is None:
            raise RegistryError(
                "the serving config is unknown: pass the prepared data folder (its manifest "
                "records the image size and HTML budget) or a ServingConfig"
            )
        serving = ServingConfig(
            lineage.max_image_side, lineage.html_budget, lineage.html_tokens or "pattern"
        )
    tags = version_tags(model_dir, evaluation, lineage, pipeline_run_id, weights_sha256)
    tags.update({key: value[: T.MAX_VALUE_CHARS] for key, value in (extra_tags or {}).items()})

    _delete_leftover_runs(registry, pipeline_run_id)
    attempt = _Attempt(registry, pipeline_run_id)
    try:
        run_id = attempt.start()
        step("run-started")
        with tempfile.TemporaryDirectory(prefix="uicap-register-") as scratch:
            staged = stage_artifact(model_dir, Path(scratch) / "stage")
            local_model = save_pyfunc(
                staged,
                Path(scratch) / MODEL_ARTIFACT_PATH,
                serving,
                pip_requirements(),
                metadata={"uicap_pipeline_run_id": pipeline_run_id},
            )
            step("model-saved")
            evaluation_dir = Path(scratch) / EVALUATION_ARTIFACT_PATH
            evaluation_dir.mkdir()
            evaluation.write(evaluation_dir / EVALUATION_FILE)
            client = registry.client
            client.log_artifacts(run_id, str(local_model), MODEL_ARTIFACT_PATH)
            client.log_artifacts(run_id, str(evaluation_dir), EVALUATION_ARTIFACT_PATH)
            step("artifacts-uploaded")
            expected = _local_files(local_model)
            uploaded = _remote_files(registry, run_id, MODEL_ARTIFACT_PATH)
            if uploaded != expected:
                missing = sorted(set(expected) - set(uploaded))
                differing = sorted(
                    k for k in expected if k in uploaded and uploaded[k] != expected[k]
                )
                raise RegistryError(
                    f"the model upload to run {run_id} is incomplete: missing {missing[:5]}, "
                    f"size differs {differing[:5]}"
                )
        metrics = evaluation_metrics(evaluation)
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        source = f"{client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT_PATH}"
        registry.ensure_registered_model(DESCRIPTION)
        step("creating-version")
        try:
            client.create_model_version(
                registry.model_name,
                source,
                run_id=run_id,
                tags=tags,
                description=f"pipeline run {pipeline_run_id}",
            )
        except Exception:
            # The reply may have been lost after the server created it.
            if not _created_anyway(registry, pipeline_run_id):
                raise
    except BaseException as error:
        attempt.discard()
        if isinstance(error, Exception) and is_transient(error):
            raise RegistryUnavailableError(
                f"registering pipeline run {pipeline_run_id} failed: MLflow at {registry.display} "
                f"is unreachable ({describe_error(error)}); no version was created, run it again"
            ) from error
        raise
    created = _drop_duplicates(registry, pipeline_run_id)
    step("version-created")
    registry.call("closing the registration run", lambda: client.set_terminated(run_id, "FINISHED"))
    challenger = _set_challenger(registry, created)
    step("challenger-set")
    log.info("registered %s version %s (run %s)", registry.model_name, created, run_id)
    return Registered(created, True, run_id, challenger)


def _finish_run(registry: Registry, run_id: str | None) -> None:
    """Close the run of an attempt that created its version but stopped before closing it."""
    if not run_id:
        return
    run = registry.call("reading the registration run", lambda: registry.client.get_run(run_id))
    if run.info.status == "RUNNING":
        registry.call(
            "closing the registration run",
            lambda: registry.client.set_terminated(run_id, "FINISHED"),
        )


def _created_anyway(registry: Registry, pipeline_run_id: str) -> bool:
    try:
        return bool(_existing(registry, pipeline_run_id))
    except Exception:
        return False
