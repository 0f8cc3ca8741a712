"""manifests/: each overlay rendered by kustomize, validated strictly, and held to its promises.

Rendering uses the real kustomize (kubectl's built-in one, or a standalone binary). Every
rendered document is validated strictly: built-in kinds by kubernetes-validate against the
newest Kubernetes version it ships, Kubeflow Trainer's kinds against the v2.3.0 CRDs
vendored in tests/schemas/ (tests/support/crd_schema.py). The rest checks what a platform
team relies on: a locked-down tracking server with probes and resources, a NetworkPolicy
that admits exactly the pipeline and serving namespaces, a least-privilege Role, no
literal secret in prod, the dev and prod backend stores, and a TrainingRuntime whose
failure policy restarts every rank after a preemption without spending a restart. The
checks that could pass vacuously are run once on a broken copy, to show they catch what
they are for.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from pipelines.settings import load_settings
from tests.support.crd_schema import (
    CLUSTERTRAININGRUNTIME_CRD,
    TRAINER_COMMIT,
    TRAINER_CRDS,
    TRAINER_VERSION,
    TRAININGRUNTIME_CRD,
    TRAINJOB_CRD,
    UPSTREAM_BLOBS,
    assert_valid,
    cel_rules,
    crd_errors,
    git_blob_id,
    validate_against_crd,
)

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
OVERLAYS = ("dev", "prod")
TARGETS = ("base", "overlays/dev", "overlays/prod")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob"}
PIPELINE_NAMESPACE = "kubeflow"
SERVING_NAMESPACE = "serving"
# Kubeflow Trainer's kinds are validated against its vendored CRDs, not kubernetes-validate
# (which knows only built-in kinds); a kind of that group without a CRD here fails.
TRAINER_GROUP = "trainer.kubeflow.org"
TRAINER_KINDS = {
    "TrainJob": TRAINJOB_CRD,
    "TrainingRuntime": TRAININGRUNTIME_CRD,
    "ClusterTrainingRuntime": CLUSTERTRAININGRUNTIME_CRD,
}
RUNTIME = "uicap-torch-distributed"

Doc = dict[str, Any]


def kustomize_command() -> list[str]:
    """A standalone kustomize if there is one, else kubectl's; `make install` installs kubectl.

    Missing tools fail the test rather than skip it: a skipped manifest check in CI would
    look like a passed one.
    """
    if binary := shutil.which("kustomize"):
        return [binary, "build"]
    if binary := shutil.which("kubectl"):
        return [binary, "kustomize"]
    pytest.fail("kubectl is not on PATH: run `make kubectl` (or `make install`)", pytrace=False)


@functools.cache
def _rendered(target: str) -> tuple[Doc, ...]:
    command = kustomize_command()
    result = subprocess.run(
        [*command, str(MANIFESTS / target)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kustomize failed on {target}:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(target: str) -> list[Doc]:
    """A fresh deep copy of what kustomize renders for `target` (rendered once per session)."""
    return copy.deepcopy(list(_rendered(target)))


def overlay(name: str) -> list[Doc]:
    return render(f"overlays/{name}")


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = find(docs, kind, name)
    return doc


def pod_spec(workload: Doc) -> Doc:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def runtime_job(runtime: Doc) -> Doc:
    """The Job spec of a TrainingRuntime's first replicated job (ours has one, `node`)."""
    return runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]


def runtime_pod(runtime: Doc) -> Doc:
    return runtime_job(runtime)["template"]["spec"]


def all_containers(spec: Doc) -> list[Doc]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(workload: Doc, name: str) -> Doc:
    (found,) = [c for c in all_containers(pod_spec(workload)) if c["name"] == name]
    return found


def env_value(c: Doc, name: str) -> Doc:
    (found,) = [e for e in c.get("env", []) if e["name"] == name]
    return found


def expanded_args(c: Doc) -> list[str]:
    """The container's args with $(VAR) replaced by its literal env values, as the kubelet does."""
    values = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    return [
        re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), a)
        for a in c.get("args", [])
    ]


def flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


# --- checks that return the problems they find ---------------------------------------


def image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in {"", "latest"}


# The one workload allowed to start as root: it hands the NFS share's root to the images'
# user (Kubernetes applies no fsGroup to NFS), with these capabilities and no others.
ROOT_SETUP = {"Job/uicap-hf-cache-prepare": ["CHOWN", "FOWNER"]}


def security_problems(workload: Doc) -> list[str]:
    """Restricted-profile settings, resources and a pinned image for every container."""
    name = f"{workload['kind']}/{workload['metadata']['name']}"
    spec = pod_spec(workload)
    pod = spec.get("securityContext", {})
    problems = []
    root_setup = name in ROOT_SETUP
    if pod.get("runAsNonRoot") is not True and not root_setup:
        problems.append(f"{name}: pod does not set runAsNonRoot")
    if pod.get("runAsUser", 1) == 0 and not root_setup:
        problems.append(f"{name}: pod runs as uid 0")
    for c in all_containers(spec):
        where = f"{name}/{c['name']}"
        sc = c.get("securityContext", {})
        seccomp = sc.get("seccompProfile", pod.get("seccompProfile", {}))
        if seccomp.get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile is not RuntimeDefault")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{where}: does not drop ALL capabilities")
        if sc.get("capabilities", {}).get("add", []) != ROOT_SETUP.get(name, []):
            problems.append(f"{where}: adds capabilities")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root filesystem is writable")
        if sc.get("runAsUser") == 0 and not root_setup:
            problems.append(f"{where}: runs as uid 0")
        resources = c.get("resources", {})
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(section, {}):
                    problems.append(f"{where}: no {resource} {section[:-1]}")
        if not image_is_pinned(c["image"]):
            problems.append(f"{where}: image {c['image']!r} is not pinned")
    return problems


def admitted_namespaces(policy: Doc) -> set[str] | None:
    """Namespaces an ingress policy admits by name; None when it admits anything else."""
    names: set[str] = set()
    for rule in policy["spec"].get("ingress", []):
        peers = rule.get("from")
        if not peers:
            return None  # a rule without `from` admits every source
        for peer in peers:
            selector = peer.get("namespaceSelector")
            if set(peer) != {"namespaceSelector"} or set(selector or {}) != {"matchLabels"}:
                return None  # pods of this namespace, address blocks, or expressions
            labels = selector["matchLabels"]
            if set(labels) != {"kubernetes.io/metadata.name"}:
                return None
            names.add(labels["kubernetes.io/metadata.name"])
    return names


READ_VERBS = {"get", "list", "watch"}
# Argo's executor writes its step results and the trainjob launcher creates and deletes
# its TrainJobs; nothing else may be written.
WRITES_ALLOWED = {
    ("argoproj.io", "workflowtaskresults"): {"create", "patch"},
    (TRAINER_GROUP, "trainjobs"): {"create", "delete"},
}


# (API group, resource, verb, resource names) the pipeline's Role grants, exactly: what
# KFP's driver and launcher and Argo's executor need, and what the trainjob launcher needs
# to run, follow and clean up its TrainJobs.
EXPECTED_GRANTS = {
    ("", "pods", "get", ()),
    ("", "configmaps", "get", ("kfp-launcher",)),
    ("argoproj.io", "workflowtaskresults", "create", ()),
    ("argoproj.io", "workflowtaskresults", "patch", ()),
    *{("", "pods", verb, ()) for verb in ("list", "watch")},
    ("", "pods/log", "get", ()),
    *{("", "events", verb, ()) for verb in ("get", "list", "watch")},
    *{
        (TRAINER_GROUP, "trainjobs", verb, ())
        for verb in ("create", "get", "list", "watch", "delete")
    },
    *{(TRAINER_GROUP, "trainingruntimes", verb, ()) for verb in ("get", "list")},
}


def granted_permissions(role: Doc) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {
        (group, resource, verb, tuple(sorted(rule.get("resourceNames", []))))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def rbac_problems(docs: list[Doc]) -> list[str]:
    problems = [
        f"{d['kind']}/{d['metadata']['name']}: cluster-wide RBAC"
        for d in docs
        if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}
    ]
    for role in find(docs, "Role"):
        for rule in role.get("rules", []):
            where = f"Role/{role['metadata']['name']}"
            fields = [*rule.get("verbs", []), *rule.get("resources", [])]
            fields += rule.get("apiGroups", [])
            if "*" in fields:
                problems.append(f"{where}: wildcard in {rule}")
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    allowed = READ_VERBS | WRITES_ALLOWED.get((group, resource), set())
                    extra = set(rule.get("verbs", [])) - allowed
                    if extra:
                        problems.append(f"{where}: {sorted(extra)} on {group or 'core'}/{resource}")
                    if resource == "secrets" and not rule.get("resourceNames"):
                        problems.append(f"{where}: reads every Secret, not named ones")
    return problems


def literal_secrets(docs: list[Doc]) -> list[str]:
    return [
        f"Secret/{d['metadata']['name']} holds {sorted(set(d) & {'data', 'stringData'})}"
        for d in find(docs, "Secret")
        if d.get("data") or d.get("stringData")
    ]


# Failure-policy rule names, as JobSet's webhook checks them (the CRD's description says so;
# the schema itself has no pattern).
JOBSET_RULE_NAME = r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?"
# The JobSet actions that restart without counting: only a preemption may trigger them, or
# a crash-looping job would restart forever.
FREE_RESTARTS = {"RestartJobSetAndIgnoreMaxRestarts", "RestartJobAndIgnoreMaxRestarts"}
DISRUPTION_RULE = {
    "action": "FailJob",
    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
}


def key_paths(node: Any, key: str, path: str = "") -> list[str]:
    """Every place `key` appears in a nested document, as dotted paths."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{path}.{k}".lstrip(".")
            if k == key:
                found.append(here)
            found += key_paths(v, key, here)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += key_paths(v, key, f"{path}[{i}]")
    return found


def runtime_problems(runtime: Doc) -> list[str]:
    """The stock torch runtime's shape, plus a failure policy that restarts every rank
    after a preemption without spending a restart and never loops."""
    where = f"TrainingRuntime/{runtime['metadata']['name']}"
    problems = [
        f"{where}: {path} is set (the TrainJob would recreate its JobSet in a loop)"
        for path in key_paths(runtime, "ttlSecondsAfterFinished")
    ]
    spec = runtime["spec"]
    if spec.get("mlPolicy") != {"numNodes": 1, "torch": {}}:
        problems.append(f"{where}: mlPolicy is not the torch policy with numNodes 1")
    jobset = spec["template"]["spec"]
    failure = jobset.get("failurePolicy", {})
    restarts = failure.get("maxRestarts")
    if not isinstance(restarts, int) or restarts < 1:
        problems.append(f"{where}: failurePolicy.maxRestarts is {restarts!r}, not a count")
    rules = failure.get("rules", [])
    for rule in rules:
        if not re.fullmatch(JOBSET_RULE_NAME, rule.get("name", "")):
            problems.append(f"{where}: failure rule name {rule.get('name')!r} is refused by JobSet")
        if rule.get("action") in FREE_RESTARTS and rule.get("onJobFailureReasons") != [
            "PodFailurePolicy"
        ]:
            problems.append(f"{where}: {rule.get('name')} restarts for free on any failure")
    # Rules are tried in order and the first match wins; an empty list matches every reason.
    reasons = [r.get("onJobFailureReasons") or ["PodFailurePolicy"] for r in rules]
    first = next((r for r, rs in zip(rules, reasons, strict=True) if "PodFailurePolicy" in rs), {})
    if (
        first.get("action") != "RestartJobSetAndIgnoreMaxRestarts"
        or first.get("targetReplicatedJobs")
        or first.get("onJobFailureMessagePatterns")
    ):
        problems.append(f"{where}: a preempted pod does not restart the JobSet for free")

    trainers = [
        r
        for r in jobset["replicatedJobs"]
        if r["template"]
        .get("metadata", {})
        .get("labels", {})
        .get("trainer.kubeflow.org/trainjob-ancestor-step")
        == "trainer"
    ]
    if [r["name"] for r in trainers] != ["node"]:
        problems.append(f"{where}: no single replicated job `node` labelled as the trainer")
        return problems
    (node,) = trainers
    if node.get("replicas", 1) != 1:  # Trainer's webhook refuses any other count
        problems.append(f"{where}: node has replicas {node['replicas']}; nodes come from numNodes")
    job = node["template"]["spec"]
    if job.get("backoffLimit") != 0:
        problems.append(f"{where}: backoffLimit is {job.get('backoffLimit')!r}, not 0")
    pod_rules = job.get("podFailurePolicy", {}).get("rules", [])
    if not pod_rules or pod_rules[0] != DISRUPTION_RULE:
        problems.append(f"{where}: a DisruptionTarget pod does not fail the Job first")
    pod = job["template"]["spec"]
    if pod.get("restartPolicy") != "Never":  # podFailurePolicy needs it
        problems.append(f"{where}: restartPolicy is {pod.get('restartPolicy')!r}, not Never")
    if [c["name"] for c in pod["containers"]] != ["node"]:
        problems.append(f"{where}: the containers are not exactly one named `node`")
    pod_security = pod.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod does not set runAsNonRoot")
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        capabilities = sc.get("capabilities", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}/{c['name']}: allowPrivilegeEscalation is not false")
        if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
            problems.append(f"{where}/{c['name']}: does not drop ALL capabilities")
    return problems


# --- every document validates ---------------------------------------------------------


def test_a_missing_kubectl_fails_the_manifest_tests_and_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    # A failure, not a skip: a skipped manifest check in CI would read as a passed one.
    with pytest.raises(pytest.fail.Exception, match=r"kubectl is not on PATH.*make kubectl"):
        kustomize_command()


@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_document_validates_strictly(target: str) -> None:
    version = kubernetes_validate.latest_version()
    docs = render(target)
    assert docs
    for doc in docs:
        where = f"{target}: {doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"].partition("/")[0] == TRAINER_GROUP:
            assert doc["kind"] in TRAINER_KINDS, f"{where}: no vendored CRD for this kind"
            assert_valid(doc, TRAINER_KINDS[doc["kind"]])
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where} is invalid for Kubernetes {version}: {error.message}")


def test_strict_validation_rejects_a_misspelt_field() -> None:
    version = kubernetes_validate.latest_version()
    deployment = one(overlay("prod"), "Deployment", "mlflow")
    mlflow = container(deployment, "mlflow")
    mlflow["readinesProbe"] = mlflow.pop("readinessProbe")
    # Without strict mode the typo passes, and the server would run with no readiness probe.
    kubernetes_validate.validate(deployment, version, strict=False)
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, version, strict=True)
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=False)


# --- the CRD validator and the vendored Kubeflow Trainer CRDs ---------------------------


def test_the_vendored_trainer_crds_are_the_published_ones_unchanged() -> None:
    assert TRAINER_CRDS.name == f"kubeflow-trainer-{TRAINER_VERSION}"
    for path, blob in UPSTREAM_BLOBS.items():
        assert git_blob_id(path) == blob, f"{path.name} differs from {TRAINER_VERSION}'s"
    readme = (TRAINER_CRDS / "README.md").read_text()
    for fact in (TRAINER_VERSION, TRAINER_COMMIT, "Apache License 2.0", *UPSTREAM_BLOBS.values()):
        assert fact in readme, fact
    assert "Apache License" in (TRAINER_CRDS / "LICENSE").read_text()


def test_the_crd_validator_names_the_path_of_each_failure() -> None:
    runtime = one(overlay("prod"), "TrainingRuntime", RUNTIME)
    assert crd_errors(runtime, TRAININGRUNTIME_CRD) == []
    validate_against_crd(runtime, TRAININGRUNTIME_CRD)
    job_path = "spec.template.spec.replicatedJobs[0].template.spec"
    pod_path = f"{job_path}.template.spec"

    unknown = copy.deepcopy(runtime)
    unknown["spec"]["template"]["spec"]["failurePolicy"]["maxRestart"] = 3
    assert crd_errors(unknown, TRAININGRUNTIME_CRD) == [
        "spec.template.spec.failurePolicy.maxRestart: unknown field (not in the CRD schema)"
    ]
    wrong_type = copy.deepcopy(runtime)
    runtime_job(wrong_type)["backoffLimit"] = "0"
    assert crd_errors(wrong_type, TRAININGRUNTIME_CRD) == [
        f"{job_path}.backoffLimit: '0' is not of type 'integer'"
    ]
    missing = copy.deepcopy(runtime)
    del runtime_pod(missing)["containers"][0]["name"]
    assert crd_errors(missing, TRAININGRUNTIME_CRD) == [
        f"{pod_path}.containers[0].name: required field is missing"
    ]
    # All of them at once, each named, in the AssertionError a test sees.
    broken = copy.deepcopy(missing)
    broken["spec"]["template"]["spec"]["failurePolicy"]["maxRestart"] = 3
    broken["spec"]["template"]["spec"]["failurePolicy"]["rules"][0]["action"] = "Restart"
    broken["metadata"]["labels"]["trainer.kubeflow.org/framework"] = "not a label value"
    with pytest.raises(AssertionError) as caught:
        assert_valid(broken, TRAININGRUNTIME_CRD)
    message = str(caught.value)
    for path in (
        "spec.template.spec.failurePolicy.maxRestart: unknown field",
        "spec.template.spec.failurePolicy.rules[0].action: 'Restart' is not one of",
        f"{pod_path}.containers[0].name: required field is missing",
        "metadata.labels['trainer.kubeflow.org/framework']: 'not a label value' does not match",
    ):
        assert path in message, message


def test_the_crd_validator_applies_kubernetes_schema_extensions() -> None:
    runtime = one(overlay("prod"), "TrainingRuntime", RUNTIME)
    (node,) = runtime_pod(runtime)["containers"]
    where = "spec.template.spec.replicatedJobs[0].template.spec.template.spec.containers[0]"
    # x-kubernetes-int-or-string: a quantity is an integer or a string, never a float.
    node["resources"] = {"limits": {"nvidia.com/gpu": 1, "memory": "128Gi", "cpu": 0.5}}
    # x-kubernetes-list-type: map keyed by containerPort and protocol (default TCP).
    node["ports"] = [{"containerPort": 29500}, {"containerPort": 29500, "protocol": "TCP"}]
    # format: int32.
    runtime["spec"]["mlPolicy"]["numNodes"] = 2**31
    assert crd_errors(runtime, TRAININGRUNTIME_CRD) == [
        "spec.mlPolicy.numNodes: 2147483648 is not a valid int32",
        f"{where}.ports[1]: duplicate entry (containerPort=29500, protocol='TCP'); "
        "item 0 has the same key",
        f"{where}.resources.limits.cpu: 0.5 must be an integer or a string",
    ]
    # The kind and the served apiVersion are the CRD's, and metadata is ObjectMeta.
    other = {**runtime, "apiVersion": "trainer.kubeflow.org/v1", "kind": "TrainJob"}
    assert crd_errors(other, TRAININGRUNTIME_CRD) == [
        "kind: 'TrainJob' is not 'TrainingRuntime'",
        "apiVersion: 'trainer.kubeflow.org/v1' is not one of ['trainer.kubeflow.org/v1alpha1']",
    ]
    nameless = copy.deepcopy(one(overlay("prod"), "TrainingRuntime", RUNTIME))
    nameless["metadata"]["uuid"] = nameless["metadata"].pop("name")
    assert crd_errors(nameless, TRAININGRUNTIME_CRD) == [
        "metadata.name: required field is missing",
        "metadata.uuid: unknown field (not in the CRD schema)",
    ]


def test_a_trainjob_on_our_runtime_validates_and_cel_rules_are_listed_not_checked() -> None:
    trainjob = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "uicap-run-train", "namespace": PIPELINE_NAMESPACE},
        "spec": {
            # kind defaults to ClusterTrainingRuntime: a namespaced runtime must say so.
            "runtimeRef": {"name": RUNTIME, "kind": "TrainingRuntime"},
            "trainer": {
                "numNodes": 2,
                "command": ["torchrun"],
                "args": ["-m", "components.train"],
                "resourcesPerNode": {"limits": {"nvidia.com/gpu": 1}},
            },
        },
    }
    assert_valid(trainjob, TRAINJOB_CRD)
    trainjob["spec"]["trainer"]["nodes"] = 2
    assert crd_errors(trainjob, TRAINJOB_CRD) == [
        "spec.trainer.nodes: unknown field (not in the CRD schema)"
    ]
    # The name rules are CEL, which this validator does not run: a test checks them itself.
    rules = {(path, rule) for path, rule, _ in cel_rules(TRAINJOB_CRD)}
    assert ("<root>", "size(self.metadata.name) <= 63") in rules


# --- the tracking server ----------------------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_workload_is_locked_down(name: str) -> None:
    workloads = [d for d in overlay(name) if d["kind"] in WORKLOAD_KINDS]
    assert {"Deployment/mlflow", "Job/uicap-hf-cache-prepare"} <= {
        f"{w['kind']}/{w['metadata']['name']}" for w in workloads
    }
    assert [p for w in workloads for p in security_problems(w)] == []


def test_the_security_check_catches_a_loosened_pod() -> None:
    deployment = one(overlay("prod"), "Deployment", "mlflow")
    spec = pod_spec(deployment)
    del spec["securityContext"]["runAsNonRoot"]
    mlflow = container(deployment, "mlflow")
    mlflow["securityContext"]["allowPrivilegeEscalation"] = True
    mlflow["image"] = "ghcr.io/mlflow/mlflow:latest"
    del container(deployment, "cloud-sql-proxy")["resources"]["limits"]
    assert security_problems(deployment) == [
        "Deployment/mlflow: pod does not set runAsNonRoot",
        "Deployment/mlflow/cloud-sql-proxy: no cpu limit",
        "Deployment/mlflow/cloud-sql-proxy: no memory limit",
        "Deployment/mlflow/mlflow: allowPrivilegeEscalation is not false",
        "Deployment/mlflow/mlflow: image 'ghcr.io/mlflow/mlflow:latest' is not pinned",
    ]


@pytest.mark.parametrize("name", OVERLAYS)
def test_mlflow_serves_on_5000_with_health_probes(name: str) -> None:
    docs = overlay(name)
    deployment = one(docs, "Deployment", "mlflow")
    assert deployment["metadata"]["namespace"] == "mlflow"
    mlflow = container(deployment, "mlflow")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert mlflow[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert {"name": "http", "containerPort": 5000, "protocol": "TCP"} in mlflow["ports"]

    service = one(docs, "Service", "mlflow")
    assert service["metadata"]["namespace"] == "mlflow"
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (5000, "http")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_gke_profile_reaches_the_server_it_is_given(name: str) -> None:
    """The tracking URI in gke.yaml is this Service's address, and the server accepts it."""
    docs = overlay(name)
    service = one(docs, "Service", "mlflow")
    uri = urlsplit(load_settings("gke").registry.tracking_uri)
    meta = service["metadata"]
    assert uri.hostname == f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
    assert uri.port == service["spec"]["ports"][0]["port"]
    args = expanded_args(container(one(docs, "Deployment", "mlflow"), "mlflow"))
    allowed_hosts = (flag(args, "--allowed-hosts") or "").split(",")
    assert any(fnmatch.fnmatchcase(uri.netloc, pattern) for pattern in allowed_hosts)


@pytest.mark.parametrize("name", OVERLAYS)
def test_artifacts_go_to_gcs_through_the_server_as_its_workload_identity(name: str) -> None:
    docs = overlay(name)
    deployment = one(docs, "Deployment", "mlflow")
    mlflow = container(deployment, "mlflow")
    args = expanded_args(mlflow)
    assert args[0] == "server"
    assert "--serve-artifacts" in args
    destination = flag(args, "--artifacts-destination") or ""
    assert destination.startswith("gs://uicap-ml-pipelines/"), destination

    account = one(docs, "ServiceAccount", pod_spec(deployment)["serviceAccountName"])
    email = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert re.fullmatch(
        r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9-]+\.iam\.gserviceaccount\.com", email
    )

    store = env_value(mlflow, "MLFLOW_BACKEND_STORE_URI")
    assert set(store) == {"name", "valueFrom"}
    assert store["valueFrom"]["secretKeyRef"]["key"] == "uri"


# --- access ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_only_the_pipeline_and_serving_namespaces_reach_mlflow(name: str) -> None:
    docs = overlay(name)
    deny = one(docs, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"]["podSelector"] == {} and "ingress" not in deny["spec"]
    policy = one(docs, "NetworkPolicy", "mlflow-ingress")
    assert policy["metadata"]["namespace"] == "mlflow"
    pod_labels = one(docs, "Deployment", "mlflow")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert admitted_namespaces(policy) == {PIPELINE_NAMESPACE, SERVING_NAMESPACE}
    ports = [p for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert ports == [{"protocol": "TCP", "port": 5000}]


def test_the_network_check_catches_a_wider_policy() -> None:
    policy = one(overlay("prod"), "NetworkPolicy", "mlflow-ingress")
    peers = policy["spec"]["ingress"][0]["from"]
    peers.append({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}}})
    assert admitted_namespaces(policy) == {PIPELINE_NAMESPACE, SERVING_NAMESPACE, "x"}
    peers.append({"podSelector": {}})
    assert admitted_namespaces(policy) is None
    policy["spec"]["ingress"] = [{"ports": [{"port": 5000}]}]
    assert admitted_namespaces(policy) is None


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_pipeline_runner_has_a_least_privilege_role(name: str) -> None:
    docs = overlay(name)
    assert rbac_problems(docs) == []
    kube = load_settings("gke").kubernetes
    assert kube is not None
    # The pipeline's pods run in the namespace the NetworkPolicy admits to MLflow.
    account = one(docs, "ServiceAccount", kube.service_account)
    assert account["metadata"]["namespace"] == PIPELINE_NAMESPACE
    assert "iam.gke.io/gcp-service-account" in account["metadata"]["annotations"]
    subject = {
        "kind": "ServiceAccount",
        "name": kube.service_account,
        "namespace": PIPELINE_NAMESPACE,
    }
    (binding,) = [b for b in find(docs, "RoleBinding") if subject in b["subjects"]]
    assert binding["metadata"]["namespace"] == PIPELINE_NAMESPACE
    assert binding["roleRef"]["kind"] == "Role"
    role = one(docs, "Role", binding["roleRef"]["name"])
    assert role["metadata"]["namespace"] == PIPELINE_NAMESPACE
    assert granted_permissions(role) == EXPECTED_GRANTS


def test_the_rbac_check_catches_wildcards_and_cluster_roles() -> None:
    docs = overlay("prod")
    role = one(docs, "Role", "uicap-pipeline-runner")
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    role["rules"].append({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]})
    docs.append({"kind": "ClusterRole", "metadata": {"name": "too-wide"}, "rules": []})
    assert rbac_problems(docs) == [
        "ClusterRole/too-wide: cluster-wide RBAC",
        "Role/uicap-pipeline-runner: reads every Secret, not named ones",
        "Role/uicap-pipeline-runner: wildcard in "
        "{'apiGroups': [''], 'resources': ['pods'], 'verbs': ['*']}",
        "Role/uicap-pipeline-runner: ['*'] on core/pods",
    ]
    role = one(overlay("prod"), "Role", "uicap-pipeline-runner")
    trainjobs = next(r for r in role["rules"] if r["resources"] == ["trainjobs"])
    trainjobs["verbs"].append("patch")
    assert rbac_problems([role]) == [
        "Role/uicap-pipeline-runner: ['patch'] on trainer.kubeflow.org/trainjobs"
    ]
    assert granted_permissions(role) - EXPECTED_GRANTS == {
        (TRAINER_GROUP, "trainjobs", "patch", ())
    }


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_hf_cache_is_shared_across_zones_and_writable_by_the_images_user(name: str) -> None:
    docs = overlay(name)
    claim = one(docs, "PersistentVolumeClaim", "uicap-hf-cache")
    assert claim["metadata"]["namespace"] == PIPELINE_NAMESPACE
    # ingest (CPU pool), train and evaluate (H100 pool) and overlapping runs mount it at once.
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "standard-rwx"

    job = one(docs, "Job", "uicap-hf-cache-prepare")
    spec = pod_spec(job)
    (volume,) = spec["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "uicap-hf-cache"
    image_users = {
        int(m.group(1))
        for path in (REPO / "images").glob("*.Dockerfile")
        for m in re.finditer(r"^USER (\d+)", path.read_text(), re.MULTILINE)
    }
    (container,) = spec["containers"]
    command = " ".join(container["args"])
    assert image_users == {int(n) for n in re.findall(r"chown (\d+):\1 ", command)}
    assert container["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["CHOWN", "FOWNER"],
    }
    # A share needs no zone: the job is not tied to the GPU pool.
    assert "nodeSelector" not in spec


# --- the Kubeflow Trainer runtime ---------------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_training_runtime_validates_strictly_against_the_trainer_crd(name: str) -> None:
    (runtime,) = find(overlay(name), "TrainingRuntime")
    assert runtime["metadata"]["name"] == RUNTIME
    # TrainJobs reference a namespaced runtime in their own namespace: the pipeline's.
    assert runtime["metadata"]["namespace"] == PIPELINE_NAMESPACE
    assert_valid(runtime, TRAININGRUNTIME_CRD)


def test_strict_crd_validation_rejects_a_misspelt_failure_policy() -> None:
    runtime = one(overlay("prod"), "TrainingRuntime", RUNTIME)
    rule = runtime["spec"]["template"]["spec"]["failurePolicy"]["rules"][0]
    rule["onJobFailureReason"] = rule.pop("onJobFailureReasons")
    job = runtime_job(runtime)
    job["podFailurePolicy"]["rules"][0]["onPodCondition"] = job["podFailurePolicy"]["rules"][0].pop(
        "onPodConditions"
    )
    # A server without strict field validation would drop both and run with no policy.
    assert crd_errors(runtime, TRAININGRUNTIME_CRD) == [
        "spec.template.spec.failurePolicy.rules[0].onJobFailureReason: "
        "unknown field (not in the CRD schema)",
        "spec.template.spec.replicatedJobs[0].template.spec.podFailurePolicy.rules[0]."
        "onPodCondition: unknown field (not in the CRD schema)",
    ]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_training_runtime_restarts_every_rank_after_a_preemption_for_free(name: str) -> None:
    runtime = one(overlay(name), "TrainingRuntime", RUNTIME)
    assert runtime_problems(runtime) == []
    failure = runtime["spec"]["template"]["spec"]["failurePolicy"]
    assert failure["rules"] == [
        {
            "name": "restartOnDisruption",
            "action": "RestartJobSetAndIgnoreMaxRestarts",
            "onJobFailureReasons": ["PodFailurePolicy"],
        }
    ]
    assert failure["maxRestarts"] == 3
    assert key_paths(runtime, "ttlSecondsAfterFinished") == []
    assert len(runtime["spec"]["template"]["spec"]["replicatedJobs"]) == 1
    (trainer,) = runtime_pod(runtime)["containers"]
    assert trainer["name"] == "node"  # where the torch plugin injects PET_*
    kube = load_settings("gke").kubernetes
    assert kube is not None
    assert trainer["image"] == kube.trainer_image


def test_the_runtime_check_catches_a_looping_or_costly_failure_policy() -> None:
    runtime = one(overlay("prod"), "TrainingRuntime", RUNTIME)
    jobset = runtime["spec"]["template"]["spec"]
    jobset["ttlSecondsAfterFinished"] = 0
    jobset["failurePolicy"]["rules"][0]["onJobFailureReasons"] = []
    jobset["failurePolicy"]["rules"][0]["name"] = "restart-on-disruption"
    job = runtime_job(runtime)
    job["backoffLimit"] = 6
    job["podFailurePolicy"]["rules"].insert(
        0, {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    )
    pod = job["template"]["spec"]
    del pod["restartPolicy"]
    pod["containers"][0]["name"] = "trainer"
    where = f"TrainingRuntime/{RUNTIME}"
    assert runtime_problems(runtime) == [
        f"{where}: spec.template.spec.ttlSecondsAfterFinished is set "
        "(the TrainJob would recreate its JobSet in a loop)",
        f"{where}: failure rule name 'restart-on-disruption' is refused by JobSet",
        f"{where}: restart-on-disruption restarts for free on any failure",
        f"{where}: backoffLimit is 6, not 0",
        f"{where}: a DisruptionTarget pod does not fail the Job first",
        f"{where}: restartPolicy is None, not Never",
        f"{where}: the containers are not exactly one named `node`",
    ]
    # Without the free rule, a preemption would spend one of maxRestarts.
    jobset["failurePolicy"]["rules"] = []
    assert f"{where}: a preempted pod does not restart the JobSet for free" in runtime_problems(
        runtime
    )


# --- dev and prod backends ----------------------------------------------------------------


def backend_secret_name(docs: list[Doc]) -> str:
    mlflow = container(one(docs, "Deployment", "mlflow"), "mlflow")
    return env_value(mlflow, "MLFLOW_BACKEND_STORE_URI")["valueFrom"]["secretKeyRef"]["name"]


def test_prod_keeps_every_credential_out_of_the_repository() -> None:
    docs = overlay("prod")
    assert literal_secrets(docs) == []
    assert find(docs, "Secret") == []
    # The backend Secret is the operator's to create, under the name the README gives.
    assert backend_secret_name(docs) == "mlflow-backend"


def test_the_secret_check_sees_literal_data() -> None:
    assert literal_secrets(overlay("dev"))  # dev generates throwaway credentials on purpose


def test_every_secret_the_cluster_needs_is_documented() -> None:
    readme = (MANIFESTS / "README.md").read_text()
    settings = load_settings("gke")
    kube = settings.kubernetes
    assert kube is not None
    optional = (kube.mlflow_credentials_secret, settings.notify.webhook_secret)
    needed = {backend_secret_name(overlay("prod")), kube.hf_token_secret.name}
    needed |= {secret.name for secret in optional if secret is not None}
    for name in needed:
        assert f"kubectl create secret generic {name}" in readme, name


def test_prod_stores_runs_in_cloud_sql_through_the_auth_proxy() -> None:
    docs = overlay("prod")
    assert find(docs, "StatefulSet") == []
    deployment = one(docs, "Deployment", "mlflow")
    assert deployment["spec"]["replicas"] >= 2
    proxy = container(deployment, "cloud-sql-proxy")
    assert proxy in pod_spec(deployment)["initContainers"]
    assert proxy["restartPolicy"] == "Always"  # a native sidecar: up before the server
    assert proxy["image"].startswith("gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.")
    assert re.fullmatch(r"[a-z][-a-z0-9]*:[a-z]+-[a-z]+\d:[a-z][-a-z0-9]*", proxy["args"][-1])
    assert {"--private-ip", "--port=5432"} <= set(proxy["args"])
    assert proxy["startupProbe"]["httpGet"]["path"] == "/startup"
    (budget,) = find(docs, "PodDisruptionBudget")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_dev_stores_runs_in_its_own_postgres() -> None:
    docs = overlay("dev")
    deployment = one(docs, "Deployment", "mlflow")
    assert "initContainers" not in pod_spec(deployment)
    secret = one(docs, "Secret", backend_secret_name(docs))
    uri = urlsplit(base64.b64decode(secret["data"]["uri"]).decode())
    assert uri.scheme.startswith("postgresql")

    service = one(docs, "Service", "mlflow-postgres")
    meta = service["metadata"]
    assert uri.hostname == f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
    assert uri.port == service["spec"]["ports"][0]["port"] == 5432
    postgres = one(docs, "StatefulSet", "mlflow-postgres")
    assert (
        service["spec"]["selector"].items()
        <= postgres["spec"]["template"]["metadata"]["labels"].items()
    )
    credentials = one(
        docs, "Secret", container(postgres, "postgres")["envFrom"][0]["secretRef"]["name"]
    )
    decoded = {k: base64.b64decode(v).decode() for k, v in credentials["data"].items()}
    assert (uri.username, uri.password, uri.path.lstrip("/")) == (
        decoded["POSTGRES_USER"],
        decoded["POSTGRES_PASSWORD"],
        decoded["POSTGRES_DB"],
    )
    # Only the tracking server may reach the database.
    policy = one(docs, "NetworkPolicy", "mlflow-postgres-ingress")
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    server_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert peer["podSelector"]["matchLabels"].items() <= server_labels.items()


def test_dev_and_prod_keep_their_artifacts_apart() -> None:
    destinations = {
        name: flag(
            expanded_args(container(one(overlay(name), "Deployment", "mlflow"), "mlflow")),
            "--artifacts-destination",
        )
        for name in OVERLAYS
    }
    assert all(d and d.startswith("gs://") for d in destinations.values()), destinations
    assert destinations["dev"] != destinations["prod"]
    assert not destinations["prod"].startswith(destinations["dev"])
    assert not destinations["dev"].startswith(destinations["prod"])
