"""The exit handler's task: fold the step records into the outcome, log it, post it.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
"""

from kfp import dsl

from components.ingest.component import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, packages_to_install=[], install_kfp_package=False)
def notify_op(
    status: dsl.PipelineTaskFinalStatus,
    records_root: str,
    run_id: str,
    webhook_url_env: str = "",
) -> str:
    """Always runs last: the outcome (decision, reasons, metrics, report) as JSON.

    Args:
        status: The final status of the tasks the exit handler wraps.
        records_root: Where the steps filed their records.
        run_id: The pipeline run.
        webhook_url_env: Environment variable holding a webhook URL ("" or unset: log only).
    """
    import logging
    import os

    from components.outcome import WebhookError, post_outcome, run_folder, summarize_run

    error = status.error_message or None
    outcome = summarize_run(run_folder(records_root, run_id), run_id, status.state, error)
    logging.getLogger("uicap").warning(
        "run %s: %s, %s; %s", run_id, outcome.status, outcome.decision, "; ".join(outcome.reasons)
    )
    print(outcome.model_dump_json(indent=2))
    url = os.environ.get(webhook_url_env, "") if webhook_url_env else ""
    if url:
        try:
            post_outcome(url, outcome)
        except WebhookError as failure:
            # The run's result stands whether or not the chat heard about it.
            logging.getLogger("uicap").error("%s", failure)
    return outcome.model_dump_json()
