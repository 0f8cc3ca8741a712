"""The exit handler's task: fold the step records into the outcome, log it, post it.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
"""

from kfp import dsl

from components.base_image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, packages_to_install=[], install_kfp_package=False)
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
    from components.outcome.run import notify

    outcome = notify(
        records_root, run_id, status.state, status.error_message or None, webhook_url_env
    )
    print(outcome.model_dump_json(indent=2))
    return outcome.model_dump_json()
