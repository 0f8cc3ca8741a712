"""What a pipeline run did, step by step, and who is told about it.

Each step drops a small JSON record into the run's folder (local or gs://); the exit
handler folds them into one outcome, and `uicap run` and the webhook both read that.
"""

from components.outcome.records import (
    OUTCOME_FILE,
    Outcome,
    read_outcome,
    read_step_records,
    record_step,
    run_folder,
    summarize_run,
    write_step_record,
)
from components.outcome.webhook import WebhookError, post_outcome

__all__ = [
    "OUTCOME_FILE",
    "Outcome",
    "WebhookError",
    "post_outcome",
    "read_outcome",
    "read_step_records",
    "record_step",
    "run_folder",
    "summarize_run",
    "write_step_record",
]
