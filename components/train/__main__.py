"""`python -m components.train JOB`: the training process the train step launches.

The step (and `uicap train --nproc-per-node N`) writes a `TrainJob` as JSON and starts
this module on it, once or, through torchrun, as N processes; each trains its share and
the main one writes the artifact. Exit codes: 0 done, 128 + the signal after a
preemption checkpoint (run the same job again to resume), 2 when the output holds
another run's checkpoints.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_RESUME_MISMATCH = 2


def _log_to_stderr() -> None:
    """Plain timestamped lines, as pod logs and the step's log want them."""
    logger = logging.getLogger("uicap")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.train", description="Run one training job (train_job.json)."
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "job", type=Path, nargs="?", help="The job file the train step or `uicap train` wrote."
    )
    source.add_argument(
        "--job-json", help="The job itself, as a TrainJob's nodes get it (gs:// locations)."
    )
    args = parser.parse_args(argv)

    from components.train.node_local import localize, publish_output
    from components.train.recipe import Preempted, ResumeMismatchError
    from components.train.run import TrainJob, describe, train

    _log_to_stderr()
    job = TrainJob.model_validate_json(args.job_json) if args.job_json else TrainJob.read(args.job)
    job, publish_to = localize(job)
    try:
        recipe = train(job)
    except Preempted as stop:
        print(f"stopped: {stop}", file=sys.stderr, flush=True)
        return 128 + stop.signum
    except ResumeMismatchError as error:
        print(f"cannot resume: {error}", file=sys.stderr, flush=True)
        return EXIT_RESUME_MISMATCH
    if recipe.accelerator.is_main_process:
        if publish_to:
            publish_output(recipe.output, publish_to)
        print(describe(recipe), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
