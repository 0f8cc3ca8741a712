"""A training job whose locations are remote (gs://), run on a node's own disk.

A TrainJob's nodes share nothing but GCS: each node downloads the prepared data once (the
first of its processes to take a file lock does; the others wait and reuse it), trains
into a scratch folder, and the main process uploads the finished model to the job's
output URI. Checkpoints are mirrored to gs:// by the checkpoint store as they are
written, so a restarted node resumes from the mirror.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components import storage
from components.train.run import TrainJob

DONE = ".staged"


def scratch_root(job: TrainJob) -> Path:
    """This node's folder for `job` ($UICAP_SCRATCH, else the temp folder)."""
    base = Path(os.environ.get("UICAP_SCRATCH") or tempfile.gettempdir())
    digest = hashlib.sha256(job.model_dump_json().encode()).hexdigest()[:12]
    return base / "uicap-train" / digest


@contextmanager
def _node_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stage(uri: str, target: Path) -> Path:
    """`uri` copied to `target` once per node; whole or absent (a crash leaves no half copy)."""
    with _node_lock(target.with_name(target.name + ".lock")):
        if (target / DONE).is_file():
            return target
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        if not storage.copy_tree(uri, partial):
            raise FileNotFoundError(f"{uri} holds no files to train on")
        (partial / DONE).write_text(uri + "\n")
        partial.rename(target)
    return target


def localize(job: TrainJob) -> tuple[TrainJob, str | None]:
    """`job` with its gs:// data staged on this node and its output in scratch; returns the
    job to run and the URI its output goes to afterwards (None: the output is local)."""
    if not any(storage.is_gcs(uri) for uri in (job.data, job.output, job.replay_data or "")):
        return job, None
    scratch = scratch_root(job)
    updates: dict[str, str] = {}
    if storage.is_gcs(job.data):
        updates["data"] = str(stage(job.data, scratch / "data"))
    if job.replay_data and storage.is_gcs(job.replay_data):
        updates["replay_data"] = str(stage(job.replay_data, scratch / "replay"))
    publish = None
    if storage.is_gcs(job.output):
        publish = job.output
        updates["output"] = str(scratch / "output")
    return job.model_copy(update=updates), publish


def publish_output(local: Path, uri: str) -> None:
    """The finished model (not its local checkpoint copies) to `uri`, metadata file last, so
    a reader that finds `uicap_model.json` finds every file."""
    storage.delete_tree(uri)
    last = None
    for path in sorted(local.rglob("*")):
        relative = path.relative_to(local)
        if not path.is_file() or relative.parts[0] == "checkpoints":
            continue
        if relative.name == "uicap_model.json" and len(relative.parts) == 1:
            last = path
            continue
        storage.copy(path, storage.join(uri, *relative.parts))
    if last is None:
        raise FileNotFoundError(f"{local} has no uicap_model.json: training did not finish")
    storage.copy(last, storage.join(uri, last.name))
