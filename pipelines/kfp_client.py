"""Submit and schedule the compiled pipeline on a Kubeflow Pipelines server (v2beta1 API).

Plain functions over `kfp.Client`, so the CLI stays thin and tests drive them against a
local server. Every failure becomes a `KfpError` that names what was asked for and what
the server said, never a stack trace.

Every upload becomes a new version of one pipeline (found by name). A one-off run is
pinned to the version just uploaded. A recurring run instead references the pipeline
with no version id: servers with kubeflow/pipelines#11560 (2025) then start each
scheduled run from the pipeline's latest version, so uploading a version is all it takes
to change what the schedule runs. `kfp.Client.create_recurring_run` insists on a version
id, so the recurring run is created through the client's generated API
(`client.recurring_runs`).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from kfp import Client

# KFP's cron (robfig/cron) starts with a seconds field. Its parser also takes 5 fields,
# read as "second minute hour day month": "0 3 * * *" would run at minute 3 of every hour.
CRON_FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_CRON_NAMES = {
    4: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    5: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
}
# The API server refuses a recurring run's max_concurrency outside 1-10.
MAX_CONCURRENCY = 10


class KfpError(RuntimeError):
    """A request to the KFP API that could not be made or was refused; says which and why."""


# --- the compiled package -------------------------------------------------------------------


def read_pipeline(package_path: Path | str) -> dict[str, Any]:
    """The pipeline spec (first YAML document) of a compiled package."""
    path = Path(package_path)
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as error:
        raise KfpError(f"cannot read the compiled pipeline {path}: {error}") from None
    spec = documents[0] if documents else None
    if not isinstance(spec, dict) or "pipelineInfo" not in spec:
        raise KfpError(f"{path} is not a compiled KFP pipeline (no pipelineInfo)")
    return spec


def pipeline_name(package_path: Path | str) -> str:
    return str(read_pipeline(package_path)["pipelineInfo"]["name"])


def declared_parameters(package_path: Path | str) -> dict[str, str]:
    """Input parameter name -> KFP parameterType (STRING, NUMBER_INTEGER, ...)."""
    root = read_pipeline(package_path).get("root", {})
    parameters = root.get("inputDefinitions", {}).get("parameters", {})
    return {name: str(spec.get("parameterType", "STRING")) for name, spec in parameters.items()}


def parse_params(package_path: Path | str, pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` overrides, checked against the pipeline's inputs and typed as declared."""
    declared = declared_parameters(package_path)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise KfpError(f"--param {pair!r}: expected key=value")
        if key in values:
            raise KfpError(f"--param {key}: given more than once")
        _check_names([key], declared)
        values[key] = _coerce(key, raw, declared[key])
    return values


def _check_names(keys: Sequence[str], declared: Mapping[str, str]) -> None:
    unknown = [key for key in keys if key not in declared]
    if unknown:
        raise KfpError(
            f"unknown pipeline parameter {', '.join(map(repr, unknown))}; "
            f"the pipeline takes: {', '.join(sorted(declared)) or 'no parameters'}"
        )


def _coerce(key: str, raw: str, parameter_type: str) -> Any:
    def refuse(kind: str) -> KfpError:
        return KfpError(f"--param {key}={raw}: {key} is {kind}, and {raw!r} is not")

    if parameter_type == "STRING":
        return raw
    if parameter_type == "NUMBER_INTEGER":
        if not re.fullmatch(r"[+-]?\d+", raw.strip()):
            raise refuse("an integer")
        return int(raw)
    if parameter_type == "NUMBER_DOUBLE":
        try:
            number = float(raw)
        except ValueError:
            raise refuse("a number") from None
        if not math.isfinite(number):
            raise refuse("a finite number")
        return number
    if parameter_type == "BOOLEAN":
        lowered = raw.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise refuse("a boolean (true/false)")
        return lowered in ("true", "1", "yes")
    if parameter_type in ("LIST", "STRUCT"):
        kind, python_type = (
            ("a JSON list", list) if parameter_type == "LIST" else ("a JSON object", dict)
        )
        try:
            value = json.loads(raw)
        except ValueError:
            raise refuse(kind) from None
        if not isinstance(value, python_type):
            raise refuse(kind)
        return value
    raise KfpError(f"--param {key}: parameter type {parameter_type} is not supported")


def check_cron(cron: str) -> str:
    """`cron` with single spaces, after checking its 6 fields; the error names the field."""
    fields = cron.split()
    if len(fields) != len(CRON_FIELDS):
        raise KfpError(
            f"cron {cron!r} has {len(fields)} fields; KFP's cron has 6: "
            f"{' '.join(CRON_FIELDS)} (e.g. '0 0 3 * * *' runs daily at 03:00 UTC)"
        )
    for index, text in enumerate(fields):
        problem = _cron_field_problem(index, text)
        if problem:
            raise KfpError(f"cron {cron!r}: the {CRON_FIELDS[index]} field {text!r} {problem}")
    return " ".join(fields)


def _cron_field_problem(index: int, text: str) -> str | None:
    low, high = _CRON_RANGES[index]
    names = _CRON_NAMES.get(index, [])

    def value(token: str) -> int | None:
        if token.isdigit():
            return int(token)
        if token.upper() in names:
            return names.index(token.upper()) + (1 if index == 4 else 0)
        return None

    for item in text.split(","):
        if item == "?":
            if index not in (3, 5):
                return "uses '?', which only day-of-month and day-of-week allow"
            continue
        span, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return f"has step {step!r}; a step is a positive whole number"
        if span == "*":
            continue
        bounds = [value(token) for token in span.split("-")]
        if len(bounds) > 2 or any(bound is None for bound in bounds):
            return "is not a number, a range or '*'"
        if any(not low <= bound <= high for bound in bounds):  # type: ignore[operator]
            return f"is out of range {low}-{high}"
    return None


# --- the client -----------------------------------------------------------------------------


def connect(host: str, *, token: str | None = None) -> Client:
    """A `kfp.Client` for `host`; `token` is sent as a bearer token when given."""
    import kfp

    with warnings.catch_warnings(), _api(f"connecting to the KFP API at {host}"):
        # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later versions."
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return kfp.Client(host=host, existing_token=token)
        except TimeoutError:
            raise KfpError(f"the KFP API at {host} did not answer its health check") from None


@contextlib.contextmanager
def _api(what: str) -> Iterator[None]:
    """Turn the client's failures into a `KfpError` about `what`; hide its printed links
    (the CLI prints its own summary)."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except ApiException as error:
        raise KfpError(f"{what}: the KFP API answered {error.status} {_message(error)}") from None
    except urllib3.exceptions.HTTPError as error:
        raise KfpError(f"{what}: cannot reach the KFP API: {error}") from None
    except ValueError as error:  # kfp.Client's own checks, e.g. two pipelines with one name
        raise KfpError(f"{what}: {error}") from None


def _message(error: Any) -> str:
    try:
        body = json.loads(error.body)
    except (TypeError, ValueError):
        return str(error.reason or "")
    return str(body.get("message") or body.get("error") or error.body)


def _name_filter(name: str) -> str:
    """A v2beta1 `Filter` (proto JSON) for display_name == name."""
    predicate = {"operation": "EQUALS", "key": "display_name", "string_value": name}
    return json.dumps({"predicates": [predicate]})


def ensure_experiment(client: Client, name: str, namespace: str | None = None) -> str:
    """The id of experiment `name`, created when absent."""
    with _api(f"finding or creating experiment {name!r}"):
        return str(client.create_experiment(name, namespace=namespace).experiment_id)


def find_pipeline_id(client: Client, name: str, namespace: str | None = None) -> str | None:
    with _api(f"looking up pipeline {name!r}"):
        listed = client.list_pipelines(filter=_name_filter(name), namespace=namespace)
    found = listed.pipelines or []
    if len(found) > 1:
        ids = ", ".join(p.pipeline_id for p in found)
        raise KfpError(f"{len(found)} pipelines are named {name!r} ({ids}); names must be unique")
    return found[0].pipeline_id if found else None


def upload_pipeline_version(
    client: Client,
    package_path: Path | str,
    pipeline_name: str,
    version_name: str,
    *,
    description: str | None = None,
    namespace: str | None = None,
) -> tuple[str, str]:
    """Upload `package_path` as version `version_name` of pipeline `pipeline_name`, creating
    the pipeline on first use; returns (pipeline id, version id)."""
    from kfp_server_api import V2beta1Pipeline

    pipeline_id = find_pipeline_id(client, pipeline_name, namespace)
    if pipeline_id is None:
        with _api(f"creating pipeline {pipeline_name!r}"):
            created = client.pipelines.pipeline_service_create_pipeline(
                pipeline=V2beta1Pipeline(display_name=pipeline_name, namespace=namespace)
            )
        pipeline_id = created.pipeline_id
    with _api(f"uploading version {version_name!r} of pipeline {pipeline_name!r}"):
        version = client.upload_pipeline_version(
            str(package_path), version_name, pipeline_id=pipeline_id, description=description
        )
    return str(pipeline_id), str(version.pipeline_version_id)


# --- one-off runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmittedRun:
    run_id: str
    experiment_id: str
    pipeline_id: str
    version_id: str
    version_name: str
    url: str


def submit_run(
    host: str,
    package_path: Path | str,
    *,
    experiment: str,
    params: Mapping[str, Any],
    run_name: str,
    pipeline_name: str,
    version_name: str,
    namespace: str | None = None,
    service_account: str | None = None,
    token: str | None = None,
) -> SubmittedRun:
    """Upload the package as a new version and start one run of exactly that version."""
    _check_names(list(params), declared_parameters(package_path))
    client = connect(host, token=token)
    experiment_id = ensure_experiment(client, experiment, namespace)
    pipeline_id, version_id = upload_pipeline_version(
        client, package_path, pipeline_name, version_name, namespace=namespace
    )
    with _api(f"starting run {run_name!r}"):
        run = client.run_pipeline(
            experiment_id,
            run_name,
            params=dict(params),
            pipeline_id=pipeline_id,
            version_id=version_id,
            service_account=service_account,
        )
    return SubmittedRun(
        run_id=str(run.run_id),
        experiment_id=experiment_id,
        pipeline_id=pipeline_id,
        version_id=version_id,
        version_name=version_name,
        url=f"{host.rstrip('/')}/#/runs/details/{run.run_id}",
    )


# --- recurring runs -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleInfo:
    """A recurring run as the API reports it (the v2beta1 API gives no next-run time)."""

    recurring_run_id: str
    name: str
    cron: str | None
    interval_seconds: int | None
    enabled: bool
    status: str | None
    max_concurrency: int | None
    no_catchup: bool
    experiment_id: str | None
    pipeline_id: str | None
    # None with a pipeline id: each run uses the pipeline's latest version.
    pipeline_version_id: str | None
    parameters: dict[str, Any]
    service_account: str | None
    created_at: datetime | None
    updated_at: datetime | None

    @property
    def follows_latest(self) -> bool:
        return self.pipeline_id is not None and self.pipeline_version_id is None


def _info(job: Any) -> ScheduleInfo:
    trigger = job.trigger
    cron = trigger.cron_schedule.cron if trigger and trigger.cron_schedule else None
    periodic = trigger.periodic_schedule if trigger else None
    reference = job.pipeline_version_reference
    return ScheduleInfo(
        recurring_run_id=str(job.recurring_run_id),
        name=str(job.display_name),
        cron=cron,
        interval_seconds=int(periodic.interval_second) if periodic else None,
        enabled=job.mode == "ENABLE",
        status=job.status,
        max_concurrency=int(job.max_concurrency) if job.max_concurrency else None,
        no_catchup=bool(job.no_catchup),
        experiment_id=job.experiment_id,
        pipeline_id=reference.pipeline_id if reference else None,
        pipeline_version_id=(reference.pipeline_version_id or None) if reference else None,
        parameters=dict((job.runtime_config.parameters or {}) if job.runtime_config else {}),
        service_account=job.service_account or None,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


@dataclass(frozen=True)
class ScheduleResult:
    # "created", "kept" (same definition: nothing to change) or "replaced".
    action: str
    schedule: ScheduleInfo
    pipeline_id: str
    version_id: str
    version_name: str


def schedule(
    host: str,
    package_path: Path | str,
    *,
    cron: str,
    experiment: str,
    job_name: str,
    pipeline_name: str,
    version_name: str,
    max_concurrency: int = 1,
    params: Mapping[str, Any] | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
    token: str | None = None,
) -> ScheduleResult:
    """Upload a new version and make recurring run `job_name` run the latest version on
    `cron`, with no catch-up.

    One recurring run per name: an existing one with the same definition is kept (it
    already follows the latest version, and keeps its id and its paused or enabled mode);
    one that differs is deleted and created anew in the same mode, because the v2beta1
    API cannot update a recurring run. Everything is checked before the old one goes.
    """
    from kfp_server_api import (
        V2beta1CronSchedule,
        V2beta1PipelineVersionReference,
        V2beta1RecurringRun,
        V2beta1RuntimeConfig,
        V2beta1Trigger,
    )

    cron = check_cron(cron)
    if not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise KfpError(f"max_concurrency must be within 1-{MAX_CONCURRENCY}, not {max_concurrency}")
    params = dict(params or {})
    _check_names(list(params), declared_parameters(package_path))

    client = connect(host, token=token)
    experiment_id = ensure_experiment(client, experiment, namespace)
    existing = _find_schedules(client, job_name, namespace)
    if len(existing) > 1:
        ids = ", ".join(job.recurring_run_id for job in existing)
        raise KfpError(
            f"{len(existing)} recurring runs are named {job_name!r} ({ids}); delete all but one"
        )
    pipeline_id, version_id = upload_pipeline_version(
        client, package_path, pipeline_name, version_name, namespace=namespace
    )
    desired = V2beta1RecurringRun(
        display_name=job_name,
        description=f"{pipeline_name}, latest version, cron {cron}",
        experiment_id=experiment_id,
        # No pipeline_version_id: each scheduled run starts from the latest version.
        pipeline_version_reference=V2beta1PipelineVersionReference(pipeline_id=pipeline_id),
        runtime_config=V2beta1RuntimeConfig(parameters=params),
        trigger=V2beta1Trigger(cron_schedule=V2beta1CronSchedule(cron=cron)),
        max_concurrency=str(max_concurrency),  # int64: a string in the REST schema
        no_catchup=True,
        mode="ENABLE",
        service_account=service_account,
        namespace=namespace,
    )
    action = "created"
    if existing:
        current = _info(existing[0])
        if _definition(current) == _definition(_info(desired)):
            return ScheduleResult("kept", current, pipeline_id, version_id, version_name)
        desired.mode = "ENABLE" if current.enabled else "DISABLE"
        with _api(f"deleting recurring run {job_name!r} to replace it"):
            client.delete_recurring_run(current.recurring_run_id)
        action = "replaced"
    with _api(f"creating recurring run {job_name!r}"):
        created = client.recurring_runs.recurring_run_service_create_recurring_run(
            recurring_run=desired
        )
    return ScheduleResult(action, _info(created), pipeline_id, version_id, version_name)


def _definition(info: ScheduleInfo) -> tuple[Any, ...]:
    """What a recurring run does, without its identity, mode or timestamps."""
    return (
        info.cron,
        info.interval_seconds,
        info.max_concurrency,
        info.no_catchup,
        info.experiment_id,
        info.pipeline_id,
        info.pipeline_version_id,
        json.dumps(info.parameters, sort_keys=True),
        info.service_account,
    )


def _list_jobs(client: Client, *, namespace: str | None, filter: str | None = None) -> list[Any]:
    jobs: list[Any] = []
    token = ""
    while True:
        with _api("listing recurring runs"):
            page = client.list_recurring_runs(
                page_token=token, page_size=100, namespace=namespace, filter=filter
            )
        jobs += page.recurring_runs or []
        token = page.next_page_token or ""
        if not token:
            return jobs


def _find_schedules(client: Client, name: str, namespace: str | None) -> list[Any]:
    return _list_jobs(client, namespace=namespace, filter=_name_filter(name))


def _the_schedule(client: Client, name: str, namespace: str | None) -> Any:
    found = _find_schedules(client, name, namespace)
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(job.recurring_run_id for job in found)
        raise KfpError(f"{len(found)} recurring runs are named {name!r} ({ids})")
    others = sorted({job.display_name for job in _list_jobs(client, namespace=namespace)})
    known = f"; the recurring runs are: {', '.join(others)}" if others else "; there are none"
    raise KfpError(f"no recurring run is named {name!r}{known}")


def list_schedules(
    host: str, *, namespace: str | None = None, token: str | None = None
) -> list[ScheduleInfo]:
    client = connect(host, token=token)
    return [_info(job) for job in _list_jobs(client, namespace=namespace)]


def pause_schedule(
    host: str, name: str, *, namespace: str | None = None, token: str | None = None
) -> ScheduleInfo:
    """Disable recurring run `name`: no new runs start until it is resumed."""
    return _set_enabled(host, name, False, namespace=namespace, token=token)


def resume_schedule(
    host: str, name: str, *, namespace: str | None = None, token: str | None = None
) -> ScheduleInfo:
    return _set_enabled(host, name, True, namespace=namespace, token=token)


def _set_enabled(
    host: str, name: str, enabled: bool, *, namespace: str | None, token: str | None
) -> ScheduleInfo:
    client = connect(host, token=token)
    job = _the_schedule(client, name, namespace)
    verb = "resuming" if enabled else "pausing"
    with _api(f"{verb} recurring run {name!r}"):
        if enabled:
            client.enable_recurring_run(job.recurring_run_id)
        else:
            client.disable_recurring_run(job.recurring_run_id)
        return _info(client.get_recurring_run(job.recurring_run_id))
