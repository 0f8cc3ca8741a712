"""The exit handler's step as a plain function: fold the records, log the outcome, post it."""

from __future__ import annotations

import logging
import os

from components.outcome.records import Outcome, run_folder, summarize_run
from components.outcome.webhook import WebhookError, post_outcome

log = logging.getLogger("uicap")


def notify(
    records_root: str,
    run_id: str,
    state: str,
    error: str | None = None,
    webhook_url_env: str = "",
) -> Outcome:
    """The run's outcome from its step records, logged, and posted when a webhook is set.

    `webhook_url_env` names the environment variable holding the URL ("" or unset: log
    only). A webhook that fails is logged: the run's result stands whether or not the
    chat heard about it.
    """
    outcome = summarize_run(run_folder(records_root, run_id), run_id, state, error)
    log.warning(
        "run %s: %s, %s; %s", run_id, outcome.status, outcome.decision, "; ".join(outcome.reasons)
    )
    url = os.environ.get(webhook_url_env, "") if webhook_url_env else ""
    if url:
        try:
            post_outcome(url, outcome)
        except WebhookError as failure:
            log.error("%s", failure)
    return outcome
