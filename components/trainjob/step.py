"""The train step when it launches a TrainJob: the same inputs and the same model artifact
as the pod launcher's `run_train_step`, with the training on the job's nodes.

The nodes reach only what every node reaches: the data and replay artifacts by URI, and a
work folder under the run's checkpoint location (gs:// on a cluster) where node 0 writes
the finished model. The launcher copies it into its own artifact, so evaluate and register
read the same files whichever launcher trained them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components import storage
from components.train.run import model_summary, step_job
from components.trainjob.launcher import TrainJobLauncher, api_client, current_namespace
from components.trainjob.manifest import TrainJobTemplate, job_name, render

MODEL_FOLDER = "model"


def trainjob_work_uri(checkpoint_uri: str, name: str) -> str:
    """Where the job `name` leaves its model: beside the checkpoints it resumes from."""
    return storage.join(checkpoint_uri, "jobs", name)


def trainjob_manifest(
    template: TrainJobTemplate,
    *,
    data: str,
    base_model: str,
    config: str,
    checkpoint_uri: str,
    pipeline_run_id: str,
    namespace: str,
    base_revision: str = "",
    tracking_uri: str | None = None,
    replay_data: str = "",
    task: str = "train",
    pin: bool = True,
) -> dict[str, Any]:
    """The TrainJob this step creates for one run (also what `uicap trainjob show` prints)."""
    if not checkpoint_uri:
        raise ValueError(
            "the trainjob launcher needs a checkpoint location (the pipeline's checkpoint_root): "
            "the job's nodes share nothing else"
        )
    name = job_name(pipeline_run_id, task)
    job = step_job(
        data,
        base_model,
        storage.join(trainjob_work_uri(checkpoint_uri, name), MODEL_FOLDER),
        config,
        base_revision,
        checkpoint_uri,
        tracking_uri,
        pipeline_run_id,
        replay_data,
        pin=pin,
    )
    return render(
        template,
        name,
        job.model_dump_json(indent=1),
        namespace=template.namespace or namespace,
        run_id=pipeline_run_id,
        task=task,
    )


def run_trainjob_step(
    template: str,
    data: str,
    base_model: str,
    output: str,
    config: str,
    base_revision: str = "",
    checkpoint_uri: str = "",
    tracking_uri: str | None = None,
    pipeline_run_id: str = "",
    replay_data: str = "",
    task: str = "train",
    launcher: TrainJobLauncher | None = None,
) -> dict[str, float | int | str]:
    """Create (or find) the run's TrainJob, wait for it, and copy its model to `output`."""
    parsed = TrainJobTemplate.from_parameter(template)
    if launcher is None:
        launcher = TrainJobLauncher(api_client(), parsed.namespace or current_namespace())
    manifest = trainjob_manifest(
        parsed,
        data=data,
        base_model=base_model,
        config=config,
        checkpoint_uri=checkpoint_uri,
        pipeline_run_id=pipeline_run_id,
        namespace=launcher.namespace,
        base_revision=base_revision,
        tracking_uri=tracking_uri,
        replay_data=replay_data,
        task=task,
    )
    name = manifest["metadata"]["name"]
    launcher.run(manifest)
    model_uri = storage.join(trainjob_work_uri(checkpoint_uri, name), MODEL_FOLDER)
    storage.copy_tree(model_uri, output)
    # The model is safe in the artifact: the finished job and its copy of the model can
    # go (a retry that finds neither resumes from the final checkpoint, a short job).
    launcher.delete(name)
    storage.delete_tree(trainjob_work_uri(checkpoint_uri, name))
    launcher.say(f"TrainJob {name} complete; model copied from {model_uri}")
    return {
        **model_summary(Path(output)),
        "trainjob": name,
        "nodes": parsed.num_nodes,
        "restarts": launcher.restarts_seen,
    }
