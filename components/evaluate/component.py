"""The evaluation step for KFP: a thin component around `evaluate`.

No `from __future__ import annotations` here: KFP reads the real annotation objects
(Input[Model], Output[HTML], ...) to build the component interface.
"""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.base_image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
def evaluate_op(
    data: Input[Dataset],
    candidate: Input[Model],
    metrics: Output[Metrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
    general: Optional[Input[Dataset]] = None,  # noqa: UP045 (KFP reads Optional[...])
    champion: str = "",
    base_model: str = "",
    config: str = "",
    registry: str = "",
    reuse_root: str = "",
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
        base_model: The untuned base; empty: the one the candidate names (a plain base
            is of the candidate's family).
        config: EvaluateConfig as JSON: batch size, caption length, bootstrap resamples,
            seed ("" = its defaults).
        registry: RegistryConfig as JSON: the tracking URI that models:/ references resolve
            through (none named: $MLFLOW_TRACKING_URI).
        reuse_root: Where captions are kept by weights, split and decoding settings, so
            the champion's and the base's captions of an unchanged split are read back,
            not generated again ("" = always generate).
    """
    import shutil
    import tempfile
    from pathlib import Path

    from components.evaluate.config import EvaluateConfig
    from components.evaluate.run import EVALUATION_FILE, REPORT_FILE, evaluate
    from components.register.config import RegistryConfig

    with tempfile.TemporaryDirectory(prefix="uicap-evaluate-") as scratch:
        result = evaluate(
            Path(data.path),
            candidate.path,
            champion=champion or None,
            base=base_model or None,
            general_dir=Path(general.path) if general is not None else None,
            output_dir=Path(scratch),
            config=EvaluateConfig.from_parameter(config),
            tracking_uri=RegistryConfig.from_parameter(registry).tracking_uri,
            reuse_root=reuse_root or None,
        )
        shutil.copyfile(Path(scratch) / EVALUATION_FILE, evaluation.path)
        shutil.copyfile(Path(scratch) / REPORT_FILE, report.path)
    for name, value in result.summary_metrics().items():
        metrics.log_metric(name, value)
    evaluation.metadata["baseline_role"] = result.baseline_role
    evaluation.metadata["reused_captions"] = {
        role: model.reused_captions for role, model in result.models.items()
    }
    evaluation.metadata["schema_version"] = result.schema_version
    evaluation.metadata["primary_delta"] = result.comparison[result.primary_metric].delta
