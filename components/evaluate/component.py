"""The evaluation step for KFP: a thin component around `evaluate`.

No `from __future__ import annotations` here: KFP reads the real annotation objects
(Input[Model], Output[HTML], ...) to build the component interface.
"""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.ingest.component import RUNTIME_IMAGE

# The runtime image has the package installed; kfp.local ignores it and runs in this venv.
EVALUATE_IMAGE = RUNTIME_IMAGE


@dsl.component(base_image=EVALUATE_IMAGE, packages_to_install=[], install_kfp_package=False)
def evaluate_op(
    data: Input[Dataset],
    candidate: Input[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
    general: Optional[Input[Dataset]] = None,  # noqa: UP045 (KFP reads Optional[...])
    champion: str = "",
    base_model: str = "",
    family: str = "",
    tracking_uri: str = "",
    batch_size: int = 16,
    max_new_tokens: int = 32,
    resamples: int = 1000,
    seed: int = 0,
):
    """Score the candidate against the champion (or the base) on the test split.

    Args:
        data: The prepared directory; its test.json is evaluated.
        candidate: The model artifact (adapter or full weights + uicap_model.json).
        metrics: Primary and guard metrics of each model, and the candidate's deltas.
        report: report.html, one self-contained page.
        evaluation: evaluation.json, the file the promotion gate reads.
        general: A prepared general-captions directory: the forgetting holdout.
        champion: The champion as models:/<name>@<alias>, a folder or a Hub id; empty when
            there is none yet (the base is then the bar to beat).
        base_model: The untuned base; empty: the one the candidate names.
        family: Model family of plain models whose folder does not say it.
        tracking_uri: MLflow tracking URI for models:/ references (empty: the environment).
        batch_size: Records per generation batch.
        max_new_tokens: Upper bound on each caption's length in tokens.
        resamples: Paired bootstrap resamples (at least 1000).
        seed: Seed of the bootstrap and of the report's random sample.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from components.evaluate.evaluation import (
        EVALUATION_FILE,
        REPORT_FILE,
        evaluate,
        summary_metrics,
    )

    with tempfile.TemporaryDirectory(prefix="uicap-evaluate-") as scratch:
        result = evaluate(
            Path(data.path),
            candidate.path,
            champion=champion or None,
            base=base_model or None,
            general_dir=Path(general.path) if general is not None else None,
            output_dir=Path(scratch),
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            resamples=resamples,
            seed=seed,
            family=family or None,
            tracking_uri=tracking_uri or None,
        )
        shutil.copyfile(Path(scratch) / EVALUATION_FILE, evaluation.path)
        shutil.copyfile(Path(scratch) / REPORT_FILE, report.path)
    for name, value in summary_metrics(result).items():
        metrics.log_metric(name, value)
    evaluation.metadata["baseline_role"] = result["baseline_role"]
    evaluation.metadata["schema_version"] = result["schema_version"]
    evaluation.metadata["primary_delta"] = result["comparison"][result["primary_metric"]]["delta"]
