"""The retraining pipeline: ingest → lineage → prepare → train → evaluate → register → gate.

One pipeline for both profiles. `build_retrain_pipeline(settings)` returns it with the
profile's values as the defaults of typed pipeline parameters, so a run (or a schedule)
can override any of them, and on a cluster it adds the H100 placement, the images and the
Secrets the settings name (`pipelines/placement.py`). Each step's config travels as one
JSON parameter (`prepare_config`, `train_config`, `evaluate_config`, `gate`, `registry`),
the same JSON the lineage check reads, and the registry config is the one channel of the
MLflow tracking URI to every step. Wiring, in order:

- lineage runs first and is never cached: it resolves the dataset's and the base's
  revisions (a branch becomes the commit sha it names now; a local folder, its content
  hash) and ends the run with "no new data" when the champion was trained on the same
  revisions, prompt and settings. It downloads no data, so an unchanged scheduled run
  costs one small pod;
- every later step gets the resolved revisions, never a branch: ingest reads the dataset
  at that sha (so ingest, and prepare after it, can be cached by KFP), train loads and
  records the base at that revision, and evaluate, register, the pyfunc, predict and
  export all follow the revision the model artifact records;
- prepare reuses an earlier run's output for the same data fingerprint and settings, and
  evaluate reuses the champion's and the base's captions of an unchanged split (both
  under `reuse_root`); train resumes from checkpoints under
  `checkpoint_root/<lineage key>`, which a retried task finds again;
- champion, register, gate and promote talk to the registry, so they are never cached;
  promote runs only under `dsl.If` on the gate;
- an `ExitHandler` wraps it all, and its task folds the steps' records into the outcome,
  logs it, and posts it to the webhook when one is configured.

No `from __future__ import annotations`: KFP reads the pipeline's parameter annotations.
"""

from typing import Any

from kfp import dsl

from components.evaluate.component import evaluate_op
from components.ingest.component import ingest_op
from components.lineage.component import lineage_op
from components.outcome.component import notify_op
from components.prepare.component import prepare_op
from components.register.component import champion_op, gate_op, promote_op, register_op
from components.train.component import train_op
from components.trainjob.component import trainjob_op
from pipelines.placement import cpu_step, gpu_step, trainjob_launcher_step, trainjob_template
from pipelines.settings import Settings

PIPELINE_NAME = "uicap-retrain"
RUN_ID = dsl.PIPELINE_JOB_ID_PLACEHOLDER


def column_map_spec(settings: Settings) -> str:
    """The ingest step's `column_map` string: the preset first, then src=dst renames."""
    parts = [settings.data.column_map_preset] if settings.data.column_map_preset else []
    parts += [f"{source}={target}" for source, target in settings.data.column_map.items()]
    return ",".join(parts)


def build_retrain_pipeline(settings: Settings) -> Any:
    """The pipeline, with `settings` as its parameter defaults and cluster placement."""
    data, kube = settings.data, settings.kubernetes
    records_default = f"{settings.pipeline_root.rstrip('/')}/runs"
    reuse_default = f"{settings.pipeline_root.rstrip('/')}/reuse"
    checkpoints_default = (
        f"{settings.pipeline_root.rstrip('/')}/checkpoints" if kube is not None else ""
    )
    webhook_env = settings.notify.webhook_url_env or ""
    uses_trainjob = kube is not None and kube.train_launcher == "trainjob"
    trainjob_default = trainjob_template(settings).to_parameter() if uses_trainjob else ""
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
        prepare_config: str = settings.prepare.to_parameter(),
        base_model: str = settings.model.base,
        train_config: str = settings.train.config().to_parameter(),
        nproc_per_node: int = settings.train.nproc_per_node,
        general_holdout: str = settings.evaluate.general_holdout,
        evaluate_config: str = settings.evaluate.config().to_parameter(),
        gate: str = settings.gate.to_parameter(),
        registry: str = settings.registry.to_parameter(),
        records_root: str = records_default,
        checkpoint_root: str = checkpoints_default,
        reuse_root: str = reuse_default,
        trainjob: str = trainjob_default,
    ) -> None:
        notify = notify_op(records_root=records_root, run_id=RUN_ID, webhook_url_env=webhook_env)
        cpu_step(notify, "notify", settings, cached=False, secret=settings.notify.webhook_secret)

        with dsl.ExitHandler(notify, name="retrain"):
            lineage = lineage_op(
                dataset=dataset,
                revision=revision,
                base_model=base_model,
                prepare_config=prepare_config,
                train_config=train_config,
                registry=registry,
                checkpoint_root=checkpoint_root,
                records_root=records_root,
                run_id=RUN_ID,
            )
            hf_token = kube.hf_token_secret if kube is not None else None
            cpu_step(
                lineage,
                "lineage",
                settings,
                cached=False,
                retries=network_retries,
                registry=True,
                secret=hf_token,
            )

            with dsl.If(lineage.outputs["Output"] == True, name="new-data"):  # noqa: E712
                ingest = ingest_op(
                    dataset=dataset,
                    revision=lineage.outputs["data_revision"],
                    split=split,
                    column_map=column_map,
                    max_quarantine_fraction=max_quarantine_fraction,
                )
                cpu_step(
                    ingest,
                    "ingest",
                    settings,
                    retries=network_retries,
                    secret=hf_token,
                    hub_cache=True,
                )

                prepare = prepare_op(
                    ingested=ingest.outputs["data"],
                    config=prepare_config,
                    reuse_root=reuse_root,
                    base_model=base_model,
                    base_revision=lineage.outputs["base_revision"],
                )
                # The HTML budget counts the base's tokens: prepare reads its tokenizer files.
                cpu_step(
                    prepare,
                    "prepare",
                    settings,
                    retries=network_retries,
                    secret=hf_token,
                    hub_cache=True,
                )

                general = dsl.importer(
                    artifact_uri=general_holdout, artifact_class=dsl.Dataset, reimport=False
                )
                general.set_display_name("general-holdout")

                inputs = {
                    "data": prepare.outputs["prepared"],
                    "base_model": base_model,
                    "config": train_config,
                    "base_revision": lineage.outputs["base_revision"],
                    "checkpoint_uri": lineage.outputs["checkpoint_uri"],
                    "registry": registry,
                    "replay": general.output,
                }
                if uses_trainjob:
                    # A CPU launcher creates a TrainJob across nodes and waits for it.
                    train = trainjob_op(**inputs, template=trainjob, pipeline_run_id=RUN_ID)
                    trainjob_launcher_step(train, "train", settings)
                else:
                    train = train_op(**inputs, nproc_per_node=nproc_per_node)
                    gpu_step(train, "train", settings)

                champion = champion_op(registry=registry)
                cpu_step(
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
                    config=evaluate_config,
                    reuse_root=reuse_root,
                    registry=registry,
                )
                # Three models generate on the test and general splits: a GPU job too.
                gpu_step(evaluation, "evaluate", settings)

                register = register_op(
                    model=train.outputs["model"],
                    evaluation=evaluation.outputs["evaluation"],
                    data=prepare.outputs["prepared"],
                    pipeline_run_id=RUN_ID,
                    registry=registry,
                    lineage_tags=lineage.outputs["tags"],
                    records_root=records_root,
                )
                cpu_step(
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
                    report=evaluation.outputs["report"],
                    records_root=records_root,
                    run_id=RUN_ID,
                )
                cpu_step(decision, "gate", settings, cached=False, registry=True)

                with dsl.If(decision.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
                    promote = promote_op(
                        evaluation=evaluation.outputs["evaluation"],
                        version=register.output,
                        registry=registry,
                        gate=gate,
                        records_root=records_root,
                        run_id=RUN_ID,
                    )
                    cpu_step(promote, "promote", settings, cached=False, registry=True)

    return retrain
