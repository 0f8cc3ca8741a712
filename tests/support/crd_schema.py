"""Strict validation of custom resources against a CRD's published OpenAPI v3 schema.

kubernetes-validate knows only the built-in kinds, so objects of a CRD's kind (Kubeflow
Trainer's TrainingRuntime and TrainJob) are checked here against the schema the CRD
itself carries, the way an API server with `fieldValidation=Strict` (kubectl's default)
would accept or refuse them. The CRD's structural schema is converted to a JSON Schema
(draft 4, the dialect Kubernetes' OpenAPI v3 subset follows) and `jsonschema` validates:

- unknown fields fail: every object schema without `x-kubernetes-preserve-unknown-fields:
  true` and without its own `additionalProperties` becomes `additionalProperties: false`,
  which is what structural pruning plus strict field validation amounts to;
- `required`, `type`, `enum`, `pattern`, lengths, item and property counts, `minimum`/
  `maximum`, as written in the CRD;
- `x-kubernetes-int-or-string` (an integer or a string), `nullable` (null only where it is
  true; the server would silently drop other nulls, this refuses them);
- `x-kubernetes-list-type: set` (no duplicate items) and `map` (no two items with the same
  `x-kubernetes-list-map-keys`, a missing key taking its default);
- the formats `int32`, `int64` (range) and `date-time` (RFC 3339);
- apiVersion (the CRD's group and a served version), kind, and the top-level metadata as
  the API server's ObjectMeta: known fields only, `name` required, a DNS-1123 subdomain,
  `namespace` a DNS-1123 label, string label and annotation values.

Out of scope, on purpose: the CRD's CEL rules (`x-kubernetes-validations`; `cel_rules`
lists them so a test can say which it checks by hand), defaulting, admission webhooks
(Trainer's and JobSet's), and the built-in validation the API server applies to the
embedded Job and Pod templates only when the controller creates them.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
TRAINER_VERSION = "v2.3.0"
TRAINER_CRDS = SCHEMAS / f"kubeflow-trainer-{TRAINER_VERSION}"
TRAINJOB_CRD = TRAINER_CRDS / "trainer.kubeflow.org_trainjobs.yaml"
TRAININGRUNTIME_CRD = TRAINER_CRDS / "trainer.kubeflow.org_trainingruntimes.yaml"
CLUSTERTRAININGRUNTIME_CRD = TRAINER_CRDS / "trainer.kubeflow.org_clustertrainingruntimes.yaml"
# Upstream commit of kubeflow/trainer tag v2.3.0 and the git blob id of each vendored file
# (`git hash-object`), so a test can prove the copies are unchanged.
TRAINER_COMMIT = "658725bdae5c7e3a0854d93ac6ff492e109a22ab"
UPSTREAM_BLOBS = {
    TRAINJOB_CRD: "a5f2a17714acd92c11be743562498e83e20c25d1",
    TRAININGRUNTIME_CRD: "92de7e94370bd4f2b2e8468a97f7251607a88367",
    CLUSTERTRAININGRUNTIME_CRD: "567ec335d01e171ba0e41f63fc59da6cc34e4b9f",
}

Obj = dict[str, Any]

# Keys that carry no validation here (documentation, defaulting, merge hints) or that are
# CEL, which is out of scope. `default` stays: list-map keys fall back to it.
_DROPPED = {
    "description",
    "example",
    "externalDocs",
    "x-kubernetes-validations",
    "x-kubernetes-map-type",
    "x-kubernetes-patch-strategy",
    "x-kubernetes-patch-merge-key",
}
_BRANCHES = ("anyOf", "allOf", "oneOf")

_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_STRINGS: Obj = {"type": "object", "additionalProperties": {"type": "string"}}
# The top-level metadata of a created object. CRDs publish it as a bare `type: object`;
# the API server validates it as ObjectMeta, so these are ObjectMeta's fields (the
# server-set ones included, so a `kubectl get -o yaml` copy also passes).
_OBJECT_META: Obj = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS1123_SUBDOMAIN},
        "generateName": {"type": "string"},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS1123_LABEL},
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": _LABEL_VALUE},
        },
        "annotations": _STRINGS,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["apiVersion", "kind", "name", "uid"],
                "additionalProperties": False,
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "uid": {"type": "string"},
                    "controller": {"type": "boolean"},
                    "blockOwnerDeletion": {"type": "boolean"},
                },
            },
        },
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": ["string", "null"], "format": "date-time"},
        "deletionTimestamp": {"type": "string", "format": "date-time"},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array", "items": {"type": "object"}},
        "selfLink": {"type": "string"},
    },
}
_EMBEDDED_TYPE_META: Obj = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


# --- schema conversion ------------------------------------------------------------------


def _convert(node: Obj, *, strict: bool = True) -> Obj:
    """One structural-schema node as JSON Schema; `strict` is False inside anyOf/allOf/oneOf/not,
    whose branches only add value checks to the node's skeleton and may not close it."""
    out = {k: v for k, v in node.items() if k not in _DROPPED}
    if "properties" in out:
        out["properties"] = {k: _convert(v, strict=strict) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _convert(out["items"], strict=strict)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(out["additionalProperties"], strict=strict)
    for key in _BRANCHES:
        if key in out:
            out[key] = [_convert(branch, strict=False) for branch in out[key]]
    if "not" in out:
        out["not"] = _convert(out["not"], strict=False)
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        out["x-uicap-int-or-string"] = True
    if out.get("x-kubernetes-embedded-resource"):
        out["properties"] = {**_EMBEDDED_TYPE_META, **out.get("properties", {})}
    preserve = out.get("x-kubernetes-preserve-unknown-fields") is True
    if strict and out.get("type") == "object" and not preserve:
        out.setdefault("additionalProperties", False)
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def _crd(crd_path: Path) -> Obj:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = [d for d in yaml.load_all(Path(crd_path).read_text(), Loader=loader) if d]
    (crd,) = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    return crd


def served_api_versions(crd_path: Path) -> list[str]:
    crd = _crd(Path(crd_path))
    group = crd["spec"]["group"]
    return [f"{group}/{v['name']}" for v in crd["spec"]["versions"] if v.get("served")]


@functools.cache
def strict_schema(crd_path: Path, api_version: str) -> Obj:
    """The JSON Schema (draft 4) an object of `api_version` is validated against."""
    crd = _crd(Path(crd_path))
    group = crd["spec"]["group"]
    (version,) = [
        v for v in crd["spec"]["versions"] if f"{group}/{v['name']}" == api_version and v["served"]
    ]
    schema = _convert(version["schema"]["openAPIV3Schema"])
    schema["properties"] = {**schema.get("properties", {}), "metadata": _OBJECT_META}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return schema


# --- the validator ------------------------------------------------------------------------


def _list_type(
    validator: Any, list_type: str, instance: Any, schema: Obj
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "array"):
        return
    if list_type == "set":
        seen: list[Any] = []
        for index, item in enumerate(instance):
            if item in seen:
                yield jsonschema.ValidationError(f"duplicate entry {item!r} in a set", path=[index])
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        fields = schema.get("items", {}).get("properties", {})
        seen_keys: dict[tuple[Any, ...], int] = {}
        for index, item in enumerate(instance):
            if not isinstance(item, dict):
                continue
            key = tuple(item.get(k, fields.get(k, {}).get("default")) for k in keys)
            if key in seen_keys:
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
                yield jsonschema.ValidationError(
                    f"duplicate entry ({shown}); item {seen_keys[key]} has the same key",
                    path=[index],
                )
            seen_keys.setdefault(key, index)


def _int32(value: Any) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


def _int64(value: Any) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


_RFC3339 = re.compile(
    r"^\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$",
)


def _date_time(value: Any) -> bool:
    return not isinstance(value, str) or bool(_RFC3339.match(value))


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("int32")(_int32)
_FORMATS.checks("int64")(_int64)
_FORMATS.checks("date-time")(_date_time)

_Validator = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"x-kubernetes-list-type": _list_type}
)


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$-]*", part):
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out.lstrip(".") or "<root>"


def _messages(error: jsonschema.ValidationError) -> list[str]:
    parts = list(error.absolute_path)
    where = _path(parts)
    instance = error.instance
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = set(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        extra = sorted(
            k for k in instance if k not in known and not any(re.search(p, k) for p in patterns)
        )
        return [f"{_path([*parts, k])}: unknown field (not in the CRD schema)" for k in extra]
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in instance]
        return [f"{_path([*parts, k])}: required field is missing" for k in missing]
    if error.validator == "anyOf" and error.schema.get("x-uicap-int-or-string"):
        return [f"{where}: {instance!r} must be an integer or a string"]
    if error.validator == "format":
        return [f"{where}: {instance!r} is not a valid {error.validator_value}"]
    return [f"{where}: {error.message}"]


def crd_errors(obj: Obj, crd_path: Path) -> list[str]:
    """Every reason `obj` would be refused, as "path: message" lines (empty when valid)."""
    crd_path = Path(crd_path)
    crd = _crd(crd_path)
    if not isinstance(obj, dict):
        return [f"<root>: {type(obj).__name__} is not an object"]
    kind = crd["spec"]["names"]["kind"]
    problems = []
    if obj.get("kind") != kind:
        problems.append(f"kind: {obj.get('kind')!r} is not {kind!r}")
    served = served_api_versions(crd_path)
    api_version = obj.get("apiVersion")
    if api_version not in served:
        return [*problems, f"apiVersion: {api_version!r} is not one of {served}"]
    validator = _Validator(strict_schema(crd_path, api_version), format_checker=_FORMATS)
    for error in validator.iter_errors(obj):
        problems.extend(_messages(error))
    return sorted(set(problems))


class CrdValidationError(ValueError):
    def __init__(self, obj: Obj, crd_path: Path, errors: list[str]) -> None:
        self.errors = errors
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        kind = obj.get("kind") if isinstance(obj, dict) else None
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(
            f"{kind}/{name} does not validate against {Path(crd_path).name} "
            f"(Kubeflow Trainer {TRAINER_VERSION}):\n{lines}"
        )


def validate_against_crd(obj: Obj, crd_path: Path) -> None:
    """Raise CrdValidationError (with `.errors`, every path) unless `obj` validates strictly."""
    if errors := crd_errors(obj, crd_path):
        raise CrdValidationError(obj, crd_path, errors)


def assert_valid(obj: Obj, crd_path: Path) -> None:
    """validate_against_crd for pytest: an AssertionError that names every failing path."""
    try:
        validate_against_crd(obj, crd_path)
    except CrdValidationError as error:
        raise AssertionError(str(error)) from None


def cel_rules(crd_path: Path) -> list[tuple[str, str, str]]:
    """(schema path, rule, message) of every CEL rule in the CRD: none is checked here."""
    crd = _crd(Path(crd_path))
    rules: list[tuple[str, str, str]] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        for rule in node.get("x-kubernetes-validations", []):
            rules.append((path or "<root>", rule["rule"], rule.get("message", "")))
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}".lstrip("."))
        walk(node.get("items"), f"{path}[]")
        walk(node.get("additionalProperties"), f"{path}{{}}")

    for version in crd["spec"]["versions"]:
        walk(version["schema"]["openAPIV3Schema"], "")
    return rules


def git_blob_id(path: Path) -> str:
    """What `git hash-object` prints for a file: proves a vendored copy is unchanged."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
