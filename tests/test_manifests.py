"""manifests/: each overlay rendered by kustomize, validated strictly, and held to its promises.

Rendering uses the real kustomize (kubectl's built-in one, or a standalone binary). Every
rendered document is validated by kubernetes-validate in strict mode against the newest
Kubernetes version it ships. The rest checks what a platform team relies on: a locked-down
tracking server with probes and resources, a NetworkPolicy that admits exactly the
pipeline and serving namespaces, a least-privilege Role, no literal secret in prod, and
the dev and prod backend stores. The checks that could pass vacuously are run once on a
broken copy, to show they catch what they are for.
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

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
OVERLAYS = ("dev", "prod")
TARGETS = ("base", "overlays/dev", "overlays/prod")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob"}
PIPELINE_NAMESPACE = "kubeflow"
SERVING_NAMESPACE = "serving"

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
# Argo's executor writes its step results; nothing else may be written.
WRITES_ALLOWED = {("argoproj.io", "workflowtaskresults"): {"create", "patch"}}


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
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert ("", "pods", "get") in granted
    assert ("argoproj.io", "workflowtaskresults", "create") in granted


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
