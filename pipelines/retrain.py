"""The retraining pipeline: ingest → lineage → prepare → train → evaluate → register → gate.

One pipeline for both profiles. `build_retrain_pipeline(settings)` returns it with the
profile's values as the defaults of typed pipeline parameters, so a run (or a schedule)
can override any of them, and on a cluster it adds the H100 placement, the images and the
Secrets the settings name. Wiring, in order:

- ingest is never cached (it must look at the source) and retries on network errors;
- the lineage check ends the run with "no new data" when the champion was trained on the
  same data, base and settings: nothing after it runs, so no GPU is spent;
- prepare, train and evaluate are cached on their inputs; train resumes from checkpoints
  under `checkpoint_root/<lineage key>`, which a retried task finds again;
- champion, register, gate and promote talk to the registry, so they are never cached;
  promote runs only under `dsl.If` on the gate;
- an `ExitHandler` wraps it all, and its task folds the steps' records into the outcome,
  logs it, and posts it to the webhook when one is configured.

No `from __future__ import annotations`: KFP reads the pipeline's parameter annotations.
"""

import json
from typing import Any

from kfp import dsl, kubernetes

from components.evaluate.component import evaluate_op
from components.ingest.component import ingest_op
from components.lineage.component import lineage_op
from components.outcome.component import notify_op
from components.prepare.component import prepare_op
from components.register.component import (
    champion_op,
    gate_op,
    promote_op,
    register_op,
    use_mlflow_credentials,
)
from components.train.component import apply_h100_placement, train_op
from pipelines.settings import SecretEnv, Settings

PIPELINE_NAME = "uicap-retrain"
RUN_ID = dsl.PIPELINE_JOB_ID_PLACEHOLDER


def column_map_spec(settings: Settings) -> str:
    """The ingest step's `column_map` string: the preset first, then src=dst renames."""
    parts = [settings.data.column_map_preset] if settings.data.column_map_preset else []
    parts += [f"{source}={target}" for source, target in settings.data.column_map.items()]
    return ",".join(parts)


def train_config_json(settings: Settings) -> str:
    """One line of JSON: KFP copies defaults into the YAML's header comment, line by line."""
    from components.train.config import from_settings

    return json.dumps(from_settings(settings).model_dump(mode="json"), sort_keys=True)


def split_fractions(settings: Settings) -> str:
    splits = settings.prepare.splits
    return f"{splits.train},{splits.validation},{splits.test}"


def _cpu_step(
    task: dsl.PipelineTask,
    name: str,
    settings: Settings,
    *,
    cached: bool = True,
    retries: int = 0,
    registry: bool = False,
    secret: SecretEnv | None = None,
) -> None:
    """A CPU step: its name, caching and retries; on a cluster the pinned runtime image,
    the MLflow credentials when it talks to the registry, and `secret` as env vars."""
    task.set_display_name(name)
    if not cached:
        task.set_caching_options(False)
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="30s", backoff_factor=2.0)
    if settings.kubernetes is None:
        return
    task.set_container_image(settings.kubernetes.runtime_image)
    if registry:
        use_mlflow_credentials(task, settings)
    if secret is not None:
        kubernetes.use_secret_as_env(task, secret.name, dict(secret.key_to_env))


def build_retrain_pipeline(settings: Settings) -> Any:
    """The pipeline, with `settings` as its parameter defaults and cluster placement."""
    data, model, evaluate, kube = (
        settings.data,
        settings.model,
        settings.evaluate,
        settings.kubernetes,
    )
    registry_json = settings.registry.model_dump_json()
    gate_json = settings.gate.model_dump_json()
    records_default = f"{settings.pipeline_root.rstrip('/')}/runs"
    checkpoints_default = (
        f"{settings.pipeline_root.rstrip('/')}/checkpoints" if kube is not None else ""
    )
    webhook_env = settings.notify.webhook_url_env or ""
    # Network steps retry on a cluster; locally a failure is a bug to show at once.
    network_retries = 2 if kube is not None else 0

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Retrain the UI-element captioner; promote it only when it is truly better.",
        pipeline_root=settings.pipeline_root,
    )
    def retrain(
        dataset: str = data.dataset,
        revision: str = data.revision,
        split: str = data.split,
        column_map: str = column_map_spec(settings),
        max_quarantine_fraction: float = data.max_quarantine_fraction,
        max_image_side: int = settings.prepare.max_image_side,
        html_budget: int = settings.prepare.html_budget_tokens,
        split_fractions: str = split_fractions(settings),
        prepare_seed: int = settings.prepare.seed,
        prepare_workers: int = settings.prepare.workers,
        base_model: str = model.base,
        base_revision: str = model.revision or "",
        family: str = model.family,
        train_config: str = train_config_json(settings),
        nproc_per_node: int = settings.train.nproc_per_node,
        general_holdout: str = evaluate.general_holdout,
        eval_batch_size: int = evaluate.batch_size,
        max_new_tokens: int = evaluate.max_new_tokens,
        bootstrap_resamples: int = evaluate.bootstrap_resamples,
        eval_seed: int = evaluate.seed,
        gate: str = gate_json,
        registry: str = registry_json,
        tracking_uri: str = settings.registry.tracking_uri,
        records_root: str = records_default,
        checkpoint_root: str = checkpoints_default,
    ) -> None:
        notify = notify_op(records_root=records_root, run_id=RUN_ID, webhook_url_env=webhook_env)
        _cpu_step(notify, "notify", settings, cached=False, secret=settings.notify.webhook_secret)

        with dsl.ExitHandler(notify, name="retrain"):
            ingest = ingest_op(
                dataset=dataset,
                revision=revision,
                split=split,
                column_map=column_map,
                max_quarantine_fraction=max_quarantine_fraction,
            )
            hf_token = kube.hf_token_secret if kube is not None else None
            _cpu_step(
                ingest, "ingest", settings, cached=False, retries=network_retries, secret=hf_token
            )

            lineage = lineage_op(
                ingested=ingest.outputs["data"],
                base_model=base_model,
                base_revision=base_revision,
                family=family,
                train_config=train_config,
                max_image_side=max_image_side,
                html_budget=html_budget,
                split_fractions=split_fractions,
                prepare_seed=prepare_seed,
                registry=registry,
                tracking_uri=tracking_uri,
                checkpoint_root=checkpoint_root,
                records_root=records_root,
                run_id=RUN_ID,
            )
            _cpu_step(
                lineage, "lineage", settings, cached=False, retries=network_retries, registry=True
            )

            with dsl.If(lineage.outputs["Output"] == True, name="new-data"):  # noqa: E712
                prepare = prepare_op(
                    ingested=ingest.outputs["data"],
                    max_image_side=max_image_side,
                    html_budget=html_budget,
                    split_fractions=split_fractions,
                    seed=prepare_seed,
                    workers=prepare_workers,
                )
                _cpu_step(prepare, "prepare", settings)

                general = dsl.importer(
                    artifact_uri=general_holdout, artifact_class=dsl.Dataset, reimport=False
                )
                general.set_display_name("general-holdout")

                train = train_op(
                    data=prepare.outputs["prepared"],
                    base_model=base_model,
                    config_yaml=train_config,
                    checkpoint_uri=lineage.outputs["checkpoint_uri"],
                    tracking_uri=tracking_uri,
                    nproc_per_node=nproc_per_node,
                    replay=general.output,
                )
                train.set_display_name("train")
                if kube is not None:
                    apply_h100_placement(train, settings)

                champion = champion_op(registry=registry, tracking_uri=tracking_uri)
                _cpu_step(
                    champion,
                    "champion",
                    settings,
                    cached=False,
                    retries=network_retries,
                    registry=True,
                )

                evaluation = evaluate_op(
                    data=prepare.outputs["prepared"],
                    candidate=train.outputs["model"],
                    general=general.output,
                    champion=champion.output,
                    base_model=base_model,
                    family=family,
                    tracking_uri=tracking_uri,
                    batch_size=eval_batch_size,
                    max_new_tokens=max_new_tokens,
                    resamples=bootstrap_resamples,
                    seed=eval_seed,
                )
                evaluation.set_display_name("evaluate")
                if kube is not None:
                    # Three models generate on the test and general splits: a GPU job too.
                    apply_h100_placement(evaluation, settings)

                register = register_op(
                    model=train.outputs["model"],
                    evaluation=evaluation.outputs["evaluation"],
                    data=prepare.outputs["prepared"],
                    pipeline_run_id=RUN_ID,
                    registry=registry,
                    tracking_uri=tracking_uri,
                    lineage_tags=lineage.outputs["tags"],
                    records_root=records_root,
                )
                _cpu_step(
                    register,
                    "register",
                    settings,
                    cached=False,
                    retries=network_retries,
                    registry=True,
                )

                decision = gate_op(
                    evaluation=evaluation.outputs["evaluation"],
                    version=register.output,
                    registry=registry,
                    gate=gate,
                    tracking_uri=tracking_uri,
                    report=evaluation.outputs["report"],
                    records_root=records_root,
                    run_id=RUN_ID,
                )
                _cpu_step(decision, "gate", settings, cached=False, registry=True)

                with dsl.If(decision.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
                    promote = promote_op(
                        evaluation=evaluation.outputs["evaluation"],
                        version=register.output,
                        registry=registry,
                        gate=gate,
                        tracking_uri=tracking_uri,
                        records_root=records_root,
                        run_id=RUN_ID,
                    )
                    _cpu_step(promote, "promote", settings, cached=False, registry=True)

    return retrain
