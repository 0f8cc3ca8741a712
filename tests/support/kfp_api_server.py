"""A local Kubeflow Pipelines v2beta1 REST server that is strict about the API's schema.

No KFP API server can run here, so `uicap submit` and `uicap schedule` are tested against
this one. Its contract is the `kfp-server-api` package, the client that KFP generates from
its swagger file:

- the operations (method, path, query parameters and their types, body model, multipart
  files) are read from the generated `*ServiceApi` classes, not written out by hand;
- every JSON body is checked field by field against the generated models'
  `openapi_types` and `attribute_map` (unknown fields, wrong JSON types, bad enum values),
  then deserialized into those models; the `filter` query parameter is checked against
  `V2beta1Filter` the same way;
- responses are model objects serialized as the generated client expects to read them.

A request that breaks the schema gets 400 and is recorded in `violations`, so a test can
assert that the client never strayed. State lives in memory and behaves like the real
server where clients rely on it: ids and timestamps assigned by the server, names unique
per kind (409), unknown ids (404), `filter`, `sort_by` and paging on list calls, a
recurring run whose pipeline reference has no version id (it follows the latest version),
enable/disable flipping mode and status. Operations not implemented here answer 501
rather than pretend.

`int64` fields appear as strings in the swagger (`max_concurrency: str`), and this server
holds clients to that, although the real gateway also accepts JSON numbers there.
"""

from __future__ import annotations

import email.parser
import email.policy
import inspect
import itertools
import json
import re
import threading
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# google.rpc.Code values used in error bodies.
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, UNAUTHENTICATED, UNIMPLEMENTED = 3, 5, 6, 16, 12
_HTTP_STATUS = {
    INVALID_ARGUMENT: 400,
    NOT_FOUND: 404,
    ALREADY_EXISTS: 409,
    UNAUTHENTICATED: 401,
    UNIMPLEMENTED: 501,
}
# Enum numbers of filter.proto's Predicate.Operation; the swagger keeps only the names,
# and a filter is proto JSON, which may carry either (kfp.Client sends the numbers).
PREDICATE_OPERATIONS = {
    0: "OPERATION_UNSPECIFIED",
    1: "EQUALS",
    2: "NOT_EQUALS",
    3: "GREATER_THAN",
    5: "GREATER_THAN_EQUALS",
    6: "LESS_THAN",
    7: "LESS_THAN_EQUALS",
    8: "IN",
    9: "IS_SUBSTRING",
}
DEFAULT_PAGE_SIZE = 20
# ScheduledWorkflow parses cron with robfig/cron v1: second minute hour dom month [dow].
_CRON_FIELD_COUNTS = (5, 6)
MAX_CONCURRENCY_RANGE = range(1, 11)


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- the contract, read from kfp-server-api -----------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One REST operation as the generated client calls it."""

    name: str
    method: str
    path: str
    pattern: re.Pattern[str]
    path_params: tuple[str, ...]
    query: dict[str, str]  # name -> swagger type
    body: tuple[str, str] | None  # (parameter name, model type)
    files: tuple[str, ...]
    response_type: str | None


def load_operations() -> list[Operation]:
    """Every operation of every generated `*ServiceApi` class."""
    import kfp_server_api.api as api

    operations = []
    for class_name in sorted(dir(api)):
        if not class_name.endswith("ServiceApi"):
            continue
        service = getattr(api, class_name)
        for member in sorted(dir(service)):
            if member.endswith("_with_http_info"):
                source = inspect.getsource(getattr(service, member))
                operations.append(_parse_operation(member.removesuffix("_with_http_info"), source))
    return operations


def _parse_operation(name: str, source: str) -> Operation:
    call = re.search(r"call_api\(\s*'([^']+)',\s*'([A-Z]+)'", source)
    if call is None:
        raise RuntimeError(f"kfp-server-api changed shape: no call_api in {name}")
    path, method = call.groups()
    declared = dict(re.findall(r"^\s*:type (\w+): (.+?)$", source, re.MULTILINE))
    query = {
        param: declared[param].removesuffix(", optional")
        for param in re.findall(r"query_params\.append\(\('(\w+)'", source)
    }
    body = re.search(r"body_params = local_var_params\['(\w+)'\]", source)
    response = re.search(r"response_type='([^']+)'", source)
    path_params = tuple(re.findall(r"\{([^}]+)\}", path))
    regex = "".join(
        "([^/:]+)" if index % 2 else re.escape(piece)
        for index, piece in enumerate(_split_path(path))
    )
    return Operation(
        name=name,
        method=method,
        path=path,
        pattern=re.compile(f"^{regex}$"),
        path_params=path_params,
        query=query,
        body=(body[1], declared[body[1]]) if body else None,
        files=tuple(re.findall(r"local_var_files\['(\w+)'\] =", source)),
        response_type=response[1] if response else None,
    )


def _split_path(path: str) -> list[str]:
    """Literal pieces and `{param}` names, alternating (literals at even indexes)."""
    return re.split(r"\{([^}]+)\}", path)


# --- schema checks --------------------------------------------------------------------------


def _model(type_name: str) -> type | None:
    import kfp_server_api.models as models

    return getattr(models, type_name, None)


def schema_errors(value: Any, type_name: str, where: str) -> list[str]:
    """How `value` (parsed JSON) breaks the swagger type `type_name`; empty when it fits.

    JSON null is accepted anywhere: proto3 JSON reads it as "unset".
    """
    if value is None or type_name == "object":
        return []
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {_json_kind(value)}"]
        return [
            error
            for index, item in enumerate(value)
            for error in schema_errors(item, match[1], f"{where}[{index}]")
        ]
    if match := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {_json_kind(value)}"]
        return [
            error
            for key, item in value.items()
            for error in schema_errors(item, match[1], f"{where}.{key}")
        ]
    if type_name in _PRIMITIVES:
        return [] if _PRIMITIVES[type_name](value) else [_wrong_type(where, type_name, value)]
    model = _model(type_name)
    if model is None:
        return [f"{where}: the schema has no type {type_name!r}"]
    if not model.openapi_types:  # an enum: a string from its allowable values
        allowed = getattr(model, "allowable_values", [])
        if not isinstance(value, str) or value not in allowed:
            return [f"{where}: {value!r} is not one of {type_name} {allowed}"]
        return []
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} object, got {_json_kind(value)}"]
    by_json_key = {json_key: attr for attr, json_key in model.attribute_map.items()}
    errors = []
    for key, item in value.items():
        if key not in by_json_key:
            errors.append(f"{where}: {type_name} has no field {key!r}")
        else:
            errors += schema_errors(item, model.openapi_types[by_json_key[key]], f"{where}.{key}")
    return errors


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


_PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "datetime": _is_timestamp,
    "date": lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) is not None,
}


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _wrong_type(where: str, type_name: str, value: Any) -> str:
    expected = {"datetime": "an RFC 3339 timestamp string"}.get(type_name, type_name)
    return f"{where}: expected {expected}, got {_json_kind(value)} {value!r}"


def _proto_json_to_swagger(value: Any, type_name: str) -> Any:
    """A proto-JSON value in swagger form: lowerCamel keys to field names, enum numbers to
    names. Only for the `filter` query parameter, which the server parses as proto JSON."""
    model = _model(type_name)
    if model is None or not isinstance(value, dict):
        return value
    json_keys = set(model.attribute_map.values())
    result = {}
    for key, item in value.items():
        snake = re.sub(r"([A-Z])", lambda m: "_" + m[1].lower(), key)
        name = key if key in json_keys or snake not in json_keys else snake
        attr = next((a for a, k in model.attribute_map.items() if k == name), None)
        item_type = model.openapi_types.get(attr, "") if attr else ""
        if item_type == "V2beta1PredicateOperation" and isinstance(item, int):
            item = PREDICATE_OPERATIONS.get(item, item)
        elif match := re.fullmatch(r"list\[(.+)\]", item_type):
            item = (
                [_proto_json_to_swagger(x, match[1]) for x in item]
                if isinstance(item, list)
                else item
            )
        elif item_type:
            item = _proto_json_to_swagger(item, item_type)
        result[name] = item
    return result


# --- the server -----------------------------------------------------------------------------


@dataclass
class Request:
    operation: Operation
    path: dict[str, str]
    query: dict[str, Any]
    body: Any = None  # a model instance
    files: dict[str, tuple[str | None, bytes]] = field(default_factory=dict)


class KfpApiServer:
    """The server on 127.0.0.1 with an ephemeral port; use as a context manager."""

    def __init__(self, token: str | None = None) -> None:
        from kfp_server_api import ApiClient, Configuration

        self.token = token
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.operations = load_operations()
        self._codec = ApiClient(Configuration())
        self._lock = threading.Lock()
        self._order = itertools.count()
        self.experiments: dict[str, Any] = {}
        self.pipelines: dict[str, Any] = {}
        self.versions: dict[str, list[Any]] = {}  # pipeline id -> versions, oldest first
        self.runs: dict[str, Any] = {}
        self.recurring_runs: dict[str, Any] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.api = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> KfpApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- plumbing ----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any]:
        url = urlsplit(target)
        self.requests.append((method, url.path))
        try:
            request = self._parse(method, url.path, url.query, headers, body)
            handler = getattr(self, "_" + request.operation.name, None)
            if handler is None:
                raise ApiError(UNIMPLEMENTED, f"{request.operation.name} is not implemented here")
            with self._lock:
                result = handler(request)
            declared = request.operation.response_type
            if type(result).__name__ != declared and not (declared == "object" and result == {}):
                # The server's own mistake: answer like a crashed server, and keep a record.
                message = (
                    f"{request.operation.name} built a {type(result).__name__}, not {declared}"
                )
                self.violations.append(message)
                return 500, {"code": 13, "message": message}
            return 200, self._codec.sanitize_for_serialization(result)
        except ApiError as error:
            status = _model("GoogleRpcStatus")(code=error.code, message=error.message)
            return _HTTP_STATUS[error.code], self._codec.sanitize_for_serialization(status)

    def _violation(self, message: str) -> ApiError:
        self.violations.append(message)
        return ApiError(INVALID_ARGUMENT, message)

    def _parse(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Request:
        matches = [
            (op, m)
            for op in self.operations
            if op.method == method and (m := op.pattern.match(path))
        ]
        if not matches:
            raise self._violation(f"{method} {path}: no such operation in the v2beta1 API")
        operation, match = min(matches, key=lambda pair: len(pair[0].path_params))
        where = f"{method} {operation.path}"
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            raise ApiError(UNAUTHENTICATED, f"{where}: missing or wrong bearer token")
        request = Request(
            operation,
            dict(zip(operation.path_params, map(unquote, match.groups()), strict=True)),
            {},
        )
        errors = []
        for name, values in parse_qs(query, keep_blank_values=True).items():
            if name not in operation.query:
                errors.append(f"{where}: unknown query parameter {name!r}")
            elif len(values) != 1:
                errors.append(f"{where}: query parameter {name!r} given {len(values)} times")
            else:
                value, error = _query_value(values[0], operation.query[name], name)
                errors += [f"{where}: {error}"] if error else []
                request.query[name] = value
        if request.query.get("filter"):
            request.query["filter"], error = _parse_filter(request.query["filter"])
            errors += [f"{where}: query parameter 'filter': {e}" for e in error]
        content_type = headers.get("Content-Type", "")
        if operation.body:
            errors += self._parse_json_body(request, where, content_type, body)
        elif operation.files:
            errors += self._parse_files(request, where, content_type, body)
        elif body:
            errors.append(f"{where}: this operation takes no body")
        if errors:
            raise self._violation("; ".join(errors))
        return request

    def _parse_json_body(
        self, request: Request, where: str, content_type: str, body: bytes
    ) -> list[str]:
        param, type_name = request.operation.body  # type: ignore[misc]
        if not content_type.startswith("application/json"):
            return [f"{where}: body must be application/json, not {content_type!r}"]
        try:
            data = json.loads(body or b"null")
        except ValueError as error:
            return [f"{where}: body is not JSON: {error}"]
        if data is None:
            return [f"{where}: the {param} body ({type_name}) is required"]
        errors = schema_errors(data, type_name, param)
        if not errors:
            raw = types.SimpleNamespace(data=json.dumps(data))
            request.body = self._codec.deserialize(raw, type_name)
        return [f"{where}: {e}" for e in errors]

    def _parse_files(
        self, request: Request, where: str, content_type: str, body: bytes
    ) -> list[str]:
        if not content_type.startswith("multipart/form-data"):
            return [f"{where}: body must be multipart/form-data, not {content_type!r}"]
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        errors = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name not in request.operation.files:
                errors.append(f"{where}: unknown form field {name!r}")
            else:
                request.files[name] = (part.get_filename(), part.get_payload(decode=True))
        missing = set(request.operation.files) - set(request.files)
        return errors + [f"{where}: missing form file {name!r}" for name in sorted(missing)]

    # -- lists -------------------------------------------------------------------------------

    def _page(self, items: list[Any], request: Request, model: str) -> tuple[list[Any], int, str]:
        """Filter, sort and page `items` as the list calls' query parameters ask."""
        cls = _model(model)
        predicates = (request.query.get("filter") or {}).get("predicates") or []
        items = [item for item in items if all(_matches(item, p, cls) for p in predicates)]
        sort_by = (request.query.get("sort_by") or "").split()
        if sort_by:
            key, *direction = sort_by
            if key not in cls.openapi_types or direction not in ([], ["asc"], ["desc"]):
                raise ApiError(INVALID_ARGUMENT, f"cannot sort {model} by {' '.join(sort_by)!r}")
            items = sorted(
                items,
                key=lambda item: (getattr(item, key) is None, getattr(item, key) or ""),
                reverse=direction == ["desc"],
            )
        token = request.query.get("page_token") or "0"
        if not token.isdigit():
            raise ApiError(INVALID_ARGUMENT, f"invalid page_token {token!r}")
        start, size = int(token), request.query.get("page_size") or DEFAULT_PAGE_SIZE
        if size < 0:
            raise ApiError(INVALID_ARGUMENT, f"page_size must not be negative, got {size}")
        page = items[start : start + size]
        next_token = str(start + size) if start + size < len(items) else ""
        return page, len(items), next_token

    # -- healthz -----------------------------------------------------------------------------

    def _healthz_service_get_healthz(self, request: Request) -> Any:
        return _model("V2beta1GetHealthzResponse")(multi_user=False, pipeline_store="database")

    # -- experiments -------------------------------------------------------------------------

    def _experiment_service_create_experiment(self, request: Request) -> Any:
        experiment = request.body
        if not experiment.display_name:
            raise ApiError(INVALID_ARGUMENT, "experiment display_name is required")
        return self._add_experiment(experiment.display_name, experiment.description)

    def _add_experiment(self, name: str, description: str | None = None) -> Any:
        if any(e.display_name == name for e in self.experiments.values()):
            raise ApiError(ALREADY_EXISTS, f"an experiment named {name!r} already exists")
        experiment = _model("V2beta1Experiment")(
            experiment_id=_new_id(),
            display_name=name,
            description=description,
            created_at=_now(),
            namespace="",  # single-user mode
            storage_state="AVAILABLE",
        )
        self.experiments[experiment.experiment_id] = experiment
        return experiment

    def _experiment_service_get_experiment(self, request: Request) -> Any:
        return _get(self.experiments, request.path["experiment_id"], "experiment")

    def _experiment_service_list_experiments(self, request: Request) -> Any:
        page, total, token = self._page(
            list(self.experiments.values()), request, "V2beta1Experiment"
        )
        return _model("V2beta1ListExperimentsResponse")(
            experiments=page, total_size=total, next_page_token=token
        )

    # -- pipelines and versions --------------------------------------------------------------

    def _pipeline_service_create_pipeline(self, request: Request) -> Any:
        pipeline = request.body
        return self._add_pipeline(pipeline.display_name or pipeline.name, pipeline.description)

    def _add_pipeline(self, name: str | None, description: str | None) -> Any:
        if not name:
            raise ApiError(INVALID_ARGUMENT, "pipeline display_name (or name) is required")
        if any(p.display_name == name for p in self.pipelines.values()):
            raise ApiError(ALREADY_EXISTS, f"a pipeline named {name!r} already exists")
        pipeline = _model("V2beta1Pipeline")(
            pipeline_id=_new_id(),
            display_name=name,
            name=name,
            description=description,
            created_at=_now(),
            namespace="",
        )
        self.pipelines[pipeline.pipeline_id] = pipeline
        self.versions[pipeline.pipeline_id] = []
        return pipeline

    def _add_version(
        self, pipeline_id: str, name: str, description: str | None, spec: dict[str, Any]
    ) -> Any:
        if any(v.display_name == name for v in self.versions[pipeline_id]):
            raise ApiError(ALREADY_EXISTS, f"pipeline {pipeline_id} already has a version {name!r}")
        version = _model("V2beta1PipelineVersion")(
            pipeline_id=pipeline_id,
            pipeline_version_id=_new_id(),
            display_name=name,
            name=name,
            description=description,
            created_at=_now(),
            pipeline_spec=spec,
        )
        self.versions[pipeline_id].append(version)
        return version

    def _upload_pipeline(self, request: Request) -> Any:
        query = request.query
        package = request.files["uploadfile"]
        name = query.get("display_name") or query.get("name") or package[0]
        spec = _read_package(*package)  # refuse a bad package before creating anything
        pipeline = self._add_pipeline(name, query.get("description"))
        self._add_version(pipeline.pipeline_id, pipeline.display_name, None, spec)
        return pipeline

    def _upload_pipeline_version(self, request: Request) -> Any:
        query = request.query
        if not query.get("pipelineid"):
            raise ApiError(INVALID_ARGUMENT, "upload_version needs the pipelineid query parameter")
        pipeline = _get(self.pipelines, query["pipelineid"], "pipeline")
        package = request.files["uploadfile"]
        name = query.get("display_name") or query.get("name") or package[0]
        if not name:
            raise ApiError(INVALID_ARGUMENT, "a pipeline version needs a name")
        spec = _read_package(*package)
        return self._add_version(pipeline.pipeline_id, name, query.get("description"), spec)

    def _pipeline_service_get_pipeline(self, request: Request) -> Any:
        return _get(self.pipelines, request.path["pipeline_id"], "pipeline")

    def _pipeline_service_list_pipelines(self, request: Request) -> Any:
        page, total, token = self._page(list(self.pipelines.values()), request, "V2beta1Pipeline")
        return _model("V2beta1ListPipelinesResponse")(
            pipelines=page, total_size=total, next_page_token=token
        )

    def _pipeline_service_get_pipeline_version(self, request: Request) -> Any:
        _get(self.pipelines, request.path["pipeline_id"], "pipeline")
        versions = {v.pipeline_version_id: v for v in self.versions[request.path["pipeline_id"]]}
        return _get(versions, request.path["pipeline_version_id"], "pipeline version")

    def _pipeline_service_list_pipeline_versions(self, request: Request) -> Any:
        _get(self.pipelines, request.path["pipeline_id"], "pipeline")
        versions = self.versions[request.path["pipeline_id"]]
        page, total, token = self._page(list(versions), request, "V2beta1PipelineVersion")
        return _model("V2beta1ListPipelineVersionsResponse")(
            pipeline_versions=page, total_size=total, next_page_token=token
        )

    def _resolve_reference(self, reference: Any) -> Any:
        """The version a reference names; the pipeline's latest when it names none."""
        if reference is None or not reference.pipeline_id:
            raise ApiError(INVALID_ARGUMENT, "pipeline_version_reference.pipeline_id is required")
        _get(self.pipelines, reference.pipeline_id, "pipeline")
        versions = self.versions[reference.pipeline_id]
        if reference.pipeline_version_id:
            by_id = {v.pipeline_version_id: v for v in versions}
            return _get(by_id, reference.pipeline_version_id, "pipeline version")
        if not versions:
            raise ApiError(INVALID_ARGUMENT, f"pipeline {reference.pipeline_id} has no versions")
        return versions[-1]

    # -- runs --------------------------------------------------------------------------------

    def _run_service_create_run(self, request: Request) -> Any:
        run = request.body
        if not run.display_name:
            raise ApiError(INVALID_ARGUMENT, "run display_name is required")
        return self._add_run(
            run, run.experiment_id or request.query.get("experiment_id"), recurring_run_id=None
        )

    def _add_run(
        self, template: Any, experiment_id: str | None, recurring_run_id: str | None
    ) -> Any:
        experiment_id = experiment_id or self._default_experiment()
        _get(self.experiments, experiment_id, "experiment")
        sources = [template.pipeline_spec, template.pipeline_version_reference]
        if sum(source is not None for source in sources) != 1:
            raise ApiError(
                INVALID_ARGUMENT,
                "a run needs exactly one of pipeline_spec and pipeline_version_reference",
            )
        reference = None
        if template.pipeline_version_reference is not None:
            version = self._resolve_reference(template.pipeline_version_reference)
            reference = _model("V2beta1PipelineVersionReference")(
                pipeline_id=version.pipeline_id, pipeline_version_id=version.pipeline_version_id
            )
        now = _now()
        run = _model("V2beta1Run")(
            run_id=_new_id(),
            experiment_id=experiment_id,
            display_name=template.display_name,
            description=template.description,
            pipeline_spec=template.pipeline_spec,
            pipeline_version_reference=reference,
            runtime_config=template.runtime_config,
            service_account=template.service_account,
            created_at=now,
            scheduled_at=now,
            state="PENDING",
            storage_state="AVAILABLE",
            recurring_run_id=recurring_run_id,
            state_history=[_model("V2beta1RuntimeStatus")(update_time=now, state="PENDING")],
        )
        self.runs[run.run_id] = run
        return run

    def _default_experiment(self) -> str:
        for experiment in self.experiments.values():
            if experiment.display_name == "Default":
                return experiment.experiment_id
        return self._add_experiment(
            "Default", "All runs created without specifying an experiment are grouped here."
        ).experiment_id

    def _run_service_get_run(self, request: Request) -> Any:
        return _get(self.runs, request.path["run_id"], "run")

    # -- recurring runs ----------------------------------------------------------------------

    def _recurring_run_service_create_recurring_run(self, request: Request) -> Any:
        job = request.body
        if not job.display_name:
            raise ApiError(INVALID_ARGUMENT, "recurring run display_name is required")
        _check_trigger(job.trigger)
        max_concurrency = int(job.max_concurrency or "0")
        if max_concurrency not in MAX_CONCURRENCY_RANGE:
            raise ApiError(
                INVALID_ARGUMENT,
                f"max_concurrency must be within 1-10, got {job.max_concurrency!r}",
            )
        if job.mode not in ("ENABLE", "DISABLE"):
            raise ApiError(INVALID_ARGUMENT, f"mode must be ENABLE or DISABLE, got {job.mode!r}")
        experiment_id = job.experiment_id or self._default_experiment()
        _get(self.experiments, experiment_id, "experiment")
        if (job.pipeline_spec is None) == (job.pipeline_version_reference is None):
            raise ApiError(
                INVALID_ARGUMENT,
                "a recurring run needs exactly one of pipeline_spec and pipeline_version_reference",
            )
        if job.pipeline_version_reference is not None:
            self._resolve_reference(job.pipeline_version_reference)  # it must resolve now
        now = _now()
        job.recurring_run_id = _new_id()
        job.experiment_id = experiment_id
        job.max_concurrency = str(max_concurrency)
        job.created_at = job.updated_at = now
        job.status = "ENABLED" if job.mode == "ENABLE" else "DISABLED"
        job.namespace = ""
        self.recurring_runs[job.recurring_run_id] = job
        return job

    def _recurring_run_service_get_recurring_run(self, request: Request) -> Any:
        return _get(self.recurring_runs, request.path["recurring_run_id"], "recurring run")

    def _recurring_run_service_list_recurring_runs(self, request: Request) -> Any:
        jobs = [
            job
            for job in self.recurring_runs.values()
            if job.experiment_id == request.query.get("experiment_id", job.experiment_id)
        ]
        page, total, token = self._page(jobs, request, "V2beta1RecurringRun")
        return _model("V2beta1ListRecurringRunsResponse")(
            recurring_runs=page, total_size=total, next_page_token=token
        )

    def _set_mode(self, request: Request, mode: str, status: str) -> dict[str, Any]:
        job = _get(self.recurring_runs, request.path["recurring_run_id"], "recurring run")
        job.mode, job.status, job.updated_at = mode, status, _now()
        return {}

    def _recurring_run_service_enable_recurring_run(self, request: Request) -> dict[str, Any]:
        return self._set_mode(request, "ENABLE", "ENABLED")

    def _recurring_run_service_disable_recurring_run(self, request: Request) -> dict[str, Any]:
        return self._set_mode(request, "DISABLE", "DISABLED")

    def _recurring_run_service_delete_recurring_run(self, request: Request) -> dict[str, Any]:
        _get(self.recurring_runs, request.path["recurring_run_id"], "recurring run")
        del self.recurring_runs[request.path["recurring_run_id"]]
        return {}

    def trigger(self, recurring_run_id: str) -> Any:
        """Start one run of a recurring run now, as the ScheduledWorkflow controller would:
        its pipeline reference is resolved at this moment, so a reference without a version
        id runs the newest version."""
        with self._lock:
            job = _get(self.recurring_runs, recurring_run_id, "recurring run")
            return self._add_run(job, job.experiment_id, recurring_run_id=recurring_run_id)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms stalls between the header and body writes

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        api: KfpApiServer = self.server.api  # type: ignore[attr-defined]
        status, payload = api.handle(self.command, self.path, self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads `requests` and `violations` instead."""


# --- helpers --------------------------------------------------------------------------------


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


def _get(items: dict[str, Any], key: str, kind: str) -> Any:
    if key not in items:
        raise ApiError(NOT_FOUND, f"{kind} {key} not found")
    return items[key]


def _query_value(raw: str, type_name: str, name: str) -> tuple[Any, str | None]:
    if type_name == "int":
        if re.fullmatch(r"-?\d+", raw):
            return int(raw), None
        return None, f"query parameter {name!r} must be an integer, got {raw!r}"
    if type_name == "bool":
        if raw in ("true", "false"):
            return raw == "true", None
        return None, f"query parameter {name!r} must be true or false, got {raw!r}"
    return raw, None


def _parse_filter(raw: str) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        data = json.loads(raw)
    except ValueError as error:
        return None, [f"not JSON: {error}"]
    data = _proto_json_to_swagger(data, "V2beta1Filter")
    return data, schema_errors(data, "V2beta1Filter", "filter")


def _matches(item: Any, predicate: dict[str, Any], model: type) -> bool:
    key, operation = predicate.get("key"), predicate.get("operation")
    if key not in model.openapi_types or model.openapi_types[key] not in ("str", "int", "datetime"):
        raise ApiError(INVALID_ARGUMENT, f"cannot filter {model.__name__} on key {key!r}")
    actual = getattr(item, key)
    if model.openapi_types[key] == "str":
        actual = actual or ""
    if operation in ("IN",):
        values = next(
            (
                predicate[k]["values"]
                for k in ("string_values", "int_values", "long_values")
                if predicate.get(k)
            ),
            [],
        )
        return actual in values
    expected = next(
        (
            predicate[k]
            for k in ("string_value", "int_value", "long_value", "timestamp_value")
            if k in predicate
        ),
        None,
    )
    if model.openapi_types[key] == "datetime" and isinstance(expected, str):
        expected = datetime.fromisoformat(expected.replace("Z", "+00:00"))
    if operation == "IS_SUBSTRING":
        return isinstance(expected, str) and expected in actual
    compare = {
        "EQUALS": lambda a, b: a == b,
        "NOT_EQUALS": lambda a, b: a != b,
        "GREATER_THAN": lambda a, b: a > b,
        "GREATER_THAN_EQUALS": lambda a, b: a >= b,
        "LESS_THAN": lambda a, b: a < b,
        "LESS_THAN_EQUALS": lambda a, b: a <= b,
    }
    if operation not in compare:
        raise ApiError(INVALID_ARGUMENT, f"filter operation {operation!r} is not supported")
    return actual is not None and compare[operation](actual, expected)


def _check_trigger(trigger: Any) -> None:
    kinds = [trigger and trigger.cron_schedule, trigger and trigger.periodic_schedule]
    if sum(kind is not None for kind in kinds) != 1:
        raise ApiError(
            INVALID_ARGUMENT, "trigger needs exactly one of cron_schedule and periodic_schedule"
        )
    if trigger.cron_schedule is not None:
        cron = trigger.cron_schedule.cron or ""
        if not cron.startswith("@") and len(cron.split()) not in _CRON_FIELD_COUNTS:
            raise ApiError(INVALID_ARGUMENT, f"invalid cron {cron!r}: expected 5 or 6 fields")
    elif int(trigger.periodic_schedule.interval_second or "0") <= 0:
        raise ApiError(INVALID_ARGUMENT, "periodic_schedule.interval_second must be positive")


def _read_package(filename: str | None, data: bytes) -> dict[str, Any]:
    """The pipeline spec of an uploaded YAML package, with its platform spec if any."""
    if not (filename or "").endswith((".yaml", ".yml")):
        raise ApiError(UNIMPLEMENTED, f"this server reads YAML packages only, not {filename!r}")
    try:
        documents = [doc for doc in yaml.safe_load_all(data) if doc is not None]
    except yaml.YAMLError as error:
        raise ApiError(INVALID_ARGUMENT, f"{filename}: not valid YAML: {error}") from None
    spec = documents[0] if documents else None
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise ApiError(INVALID_ARGUMENT, f"{filename}: not a pipeline spec (no pipelineInfo/root)")
    if len(documents) == 1:
        return spec
    platform: dict[str, Any] = {}
    for document in documents[1:]:
        platform.update(document)
    return {"pipeline_spec": spec, "platform_spec": platform}
