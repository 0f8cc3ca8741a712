"""A loopback stand-in for the Kubernetes API with Kubeflow Trainer v2's TrainJob controller.

No package these machines can install ships an API server, so the launcher is tested
against this one. It speaks the REST paths the `kubernetes` client calls (TrainJobs as
custom objects, pods, pod logs, events) and behaves like the controllers behind them:
- create validates the TrainJob against the vendored CRD schema (strict), refuses the
  `PET_*` variables the torch plugin owns, and needs the runtime it names;
- a job with a Kueue queue label starts Suspended until admitted;
- each node runs the job's command as a local process, with the `PET_*` environment the
  torch plugin sets, its own scratch folder (nodes share no disk), and Secrets resolved;
- a failed node fails the job's pods; the JobSet failure policy of the runtime restarts
  every node (a disruption, i.e. a lost node, without spending one of `maxRestarts`);
  past them the job is Failed with JobSet's reason, and events say what happened;
- `activeDeadlineSeconds` fails it with DeadlineExceeded; delete stops its processes
  (SIGTERM, the grace period, then SIGKILL), as the kubelet does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TRAINJOBS = re.compile(
    r"^/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/([^/]+)/trainjobs/?([^/]*)$"
)
RUNTIMES = re.compile(
    r"^/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/([^/]+)/trainingruntimes/([^/]+)$"
)
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/?$")
POD_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
EVENTS = re.compile(r"^/api/v1/namespaces/([^/]+)/events/?$")
PET = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Node:
    """One pod of the job's `node` replicated job: a local process."""

    name: str
    index: int
    attempt: int
    process: subprocess.Popen[bytes]
    log: Path
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=now)
    disrupted: bool = False

    @property
    def phase(self) -> str:
        code = self.process.poll()
        return "Running" if code is None else ("Succeeded" if code == 0 else "Failed")

    def pod(self, job: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "uid": self.uid,
                "creationTimestamp": self.created,
                "labels": {
                    "jobset.sigs.k8s.io/jobset-name": job,
                    "jobset.sigs.k8s.io/replicatedjob-name": "node",
                    "jobset.sigs.k8s.io/restart-attempt": str(self.attempt),
                    "batch.kubernetes.io/job-completion-index": str(self.index),
                },
            },
            "status": {"phase": self.phase},
        }


@dataclass
class Job:
    obj: dict[str, Any]
    root: Path
    nodes: list[Node] = field(default_factory=list)
    attempt: int = 0
    restarts: int = 0
    started: float = 0.0
    admitted: bool = True
    deleted: bool = False

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    def set_condition(self, kind: str, reason: str, message: str) -> None:
        conditions = self.obj.setdefault("status", {}).setdefault("conditions", [])
        conditions[:] = [c for c in conditions if c["type"] != kind]
        conditions.append(
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now(),
            }
        )

    def clear_condition(self, kind: str) -> None:
        conditions = self.obj.setdefault("status", {}).setdefault("conditions", [])
        for item in conditions:
            if item["type"] == kind:
                item["status"] = "False"

    def finished(self) -> bool:
        return any(
            c["type"] in ("Complete", "Failed") and c["status"] == "True"
            for c in self.obj.get("status", {}).get("conditions", [])
        )


@dataclass
class RuntimePolicy:
    """What the stand-in reads of a TrainingRuntime: JobSet's restart budget."""

    max_restarts: int = 0


class KubeStandIn:
    """The API server and the Trainer/JobSet/Job controllers, for one test."""

    def __init__(
        self,
        root: Path,
        *,
        runtimes: dict[str, RuntimePolicy],
        secrets: dict[str, dict[str, str]] | None = None,
        validate: Callable[[dict[str, Any]], list[str]] | None = None,
        env: dict[str, str] | None = None,
        auto_admit_seconds: float | None = 0.5,
    ) -> None:
        self.root = Path(root)
        self.runtimes = runtimes
        self.secrets = secrets or {}
        self.validate = validate
        self.env = env or {}
        self.auto_admit_seconds = auto_admit_seconds
        self.jobs: dict[tuple[str, str], Job] = {}
        self.events: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._threads = [
            threading.Thread(target=self.server.serve_forever, daemon=True),
            threading.Thread(target=self._reconcile_loop, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path: Path, namespace: str = "kubeflow") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "standin", "user": {"token": "standin"}}],
            "contexts": [
                {
                    "name": "standin",
                    "context": {"cluster": "standin", "user": "standin", "namespace": namespace},
                }
            ],
            "current-context": "standin",
        }
        path.write_text(json.dumps(config))
        return path

    def close(self) -> None:
        self._stop.set()
        with self.lock:
            for job in self.jobs.values():
                self._stop_nodes(job, grace=2)
        self.server.shutdown()
        self.server.server_close()

    # --- what a test does to the "cluster" ----------------------------------------------
    def job(self, name: str, namespace: str = "kubeflow") -> Job:
        return self.jobs[(namespace, name)]

    def kill_node(self, name: str, index: int, namespace: str = "kubeflow") -> None:
        """SIGKILL one node's process, as when its VM is preempted or lost (a disruption:
        the runtime's policy restarts the job without spending a restart)."""
        with self.lock:
            node = next(n for n in self.job(name, namespace).nodes if n.index == index)
            node.disrupted = True
            # The whole pod goes at once: torchrun's agent and its training processes.
            _kill_tree(node.process.pid)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"stand-in: {what} within {timeout:.0f} s")
            time.sleep(0.1)

    def log_of(
        self, name: str, index: int, attempt: int | None = None, namespace: str = "kubeflow"
    ) -> str:
        """Node `index`'s log in one attempt (default: the newest), kept after deletion."""
        folder = self.root / namespace / name
        attempts = sorted(folder.glob("attempt-*"), key=lambda p: int(p.name.split("-")[1]))
        if not attempts:
            return ""
        chosen = folder / f"attempt-{attempt}" if attempt is not None else attempts[-1]
        log = chosen / f"node-{index}" / "node.log"
        return log.read_text(errors="replace") if log.is_file() else ""

    # --- controllers ----------------------------------------------------------------------
    def _event(self, kind: str, name: str, reason: str, message: str, namespace: str) -> None:
        self.events.append(
            {
                "metadata": {"name": f"{name}.{uuid.uuid4().hex[:10]}", "namespace": namespace},
                "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
                "reason": reason,
                "message": message,
                "type": "Warning" if reason in ("Failed", "BackoffLimitExceeded") else "Normal",
                "lastTimestamp": now(),
            }
        )

    def _create(self, namespace: str, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        problems = list(self.validate(obj)) if self.validate else []
        trainer = obj.get("spec", {}).get("trainer", {})
        owned = [e["name"] for e in trainer.get("env", []) if e["name"] in PET]
        if owned:
            problems.append(f"spec.trainer.env: {owned} are set by the torch runtime")
        runtime = obj.get("spec", {}).get("runtimeRef", {}).get("name")
        if runtime not in self.runtimes:
            problems.append(f"spec.runtimeRef.name: TrainingRuntime {runtime!r} not found")
        if problems:
            return 422, _status(422, "Invalid", "; ".join(problems))
        name = obj["metadata"]["name"]
        with self.lock:
            if (namespace, name) in self.jobs:
                return 409, _status(409, "AlreadyExists", f'trainjobs "{name}" already exists')
            obj = json.loads(json.dumps(obj))
            obj["metadata"].update(
                {"namespace": namespace, "uid": str(uuid.uuid4()), "creationTimestamp": now()}
            )
            obj.setdefault("status", {})
            job = Job(obj=obj, root=self.root / namespace / name)
            queued = "kueue.x-k8s.io/queue-name" in (obj["metadata"].get("labels") or {})
            if queued:
                job.admitted = False
                job.set_condition("Suspended", "Suspended", "waiting for Kueue admission")
            self.jobs[(namespace, name)] = job
            self.created.append(json.loads(json.dumps(obj)))
            self._event("TrainJob", name, "Created", "TrainJob created", namespace)
            if not queued:
                self._start_nodes(job)
            return 201, obj

    def _delete(self, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            job = self.jobs.get((namespace, name))
            if job is None:
                return 404, _status(404, "NotFound", f'trainjobs "{name}" not found')
            job.deleted = True
        self._stop_nodes(job, grace=_grace(job.obj))
        with self.lock:
            self.jobs.pop((namespace, name), None)
        return 200, _status(200, "Success", f"{name} deleted")

    def _start_nodes(self, job: Job) -> None:
        spec = job.obj["spec"]["trainer"]
        nodes, per_node = int(spec.get("numNodes", 1)), int(spec.get("numProcPerNode", 1))
        port = _free_port()
        base = {**os.environ, **self.env}
        base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
        for item in spec.get("env", []):
            if "value" in item:
                base[item["name"]] = item["value"]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                base[item["name"]] = self.secrets[ref["name"]][ref["key"]]
        job.nodes = []
        job.started = time.monotonic()
        for index in range(nodes):
            node_dir = job.root / f"attempt-{job.attempt}" / f"node-{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            env = {
                **base,
                "PET_NNODES": str(nodes),
                "PET_NPROC_PER_NODE": str(per_node),
                "PET_NODE_RANK": str(index),
                "PET_MASTER_ADDR": "127.0.0.1",
                "PET_MASTER_PORT": str(port),
                # Nodes share no disk: each has its own scratch and temp folder.
                "UICAP_SCRATCH": str(node_dir / "scratch"),
                "TMPDIR": str(node_dir),
            }
            log = node_dir / "node.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    [*spec["command"], *spec.get("args", [])],
                    env=env,
                    cwd=node_dir,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            name = f"{job.name}-node-0-{index}-{uuid.uuid4().hex[:5]}"
            job.nodes.append(Node(name, index, job.attempt, process, log))
            self._event("Pod", name, "Started", f"node {index} attempt {job.attempt}", _ns(job))

    def _stop_nodes(self, job: Job, grace: float) -> None:
        """As the kubelet stops a container: SIGTERM to its first process (torchrun passes
        it on to the training processes), then SIGKILL to all of them after the grace."""
        alive = [n for n in job.nodes if n.process.poll() is None]
        for node in alive:
            with contextlib.suppress(ProcessLookupError):
                node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for node in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        for node in job.nodes:
            _kill_tree(node.process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=10)

    def _reconcile_loop(self) -> None:
        while not self._stop.wait(0.2):
            with self.lock:
                jobs = [j for j in self.jobs.values() if not j.deleted and not j.finished()]
            for job in jobs:
                self._reconcile(job)

    def _reconcile(self, job: Job) -> None:
        namespace = _ns(job)
        if not job.admitted:
            waited = time.monotonic() - job.started if job.started else 0
            if job.started == 0:
                job.started = time.monotonic()
            elif self.auto_admit_seconds is not None and waited >= self.auto_admit_seconds:
                job.admitted = True
                job.clear_condition("Suspended")
                self._event("TrainJob", job.name, "Admitted", "admitted by Kueue", namespace)
                self._start_nodes(job)
            return
        deadline = job.obj["spec"].get("activeDeadlineSeconds")
        if deadline and time.monotonic() - job.started > deadline:
            self._stop_nodes(job, grace=_grace(job.obj))
            job.set_condition("Failed", "DeadlineExceeded", "TrainJob exceeded its deadline")
            return
        phases = [n.phase for n in job.nodes]
        if phases and all(p == "Succeeded" for p in phases):
            job.set_condition("Complete", "JobSetCompleted", "jobset completed successfully")
            self._event("TrainJob", job.name, "Completed", "every node succeeded", namespace)
            return
        failed = [n for n in job.nodes if n.phase == "Failed"]
        if not failed:
            return
        disrupted = any(n.disrupted for n in failed)
        for node in failed:
            code = node.process.returncode
            reason = "DisruptionTarget" if node.disrupted else "Error"
            self._event("Pod", node.name, "Failed", f"exit code {code} ({reason})", namespace)
        policy = self.runtimes[job.obj["spec"]["runtimeRef"]["name"]]
        if not disrupted and job.restarts >= policy.max_restarts:
            self._stop_nodes(job, grace=_grace(job.obj))
            message = "jobset failed due to reaching max number of restarts"
            job.set_condition("Failed", "ReachedMaxRestarts", message)
            self._event("JobSet", job.name, "Failed", message, namespace)
            return
        self._stop_nodes(job, grace=_grace(job.obj))
        if not disrupted:
            job.restarts += 1
        job.attempt += 1
        why = "a node was disrupted (restart not counted)" if disrupted else "a node failed"
        self._event("JobSet", job.name, "Restarting", f"{why}: attempt {job.attempt}", namespace)
        self._start_nodes(job)

    # --- HTTP --------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                return

            def _send(self, code: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                standin.requests.append((method, url.path))
                if m := TRAINJOBS.match(url.path):
                    self._trainjobs(method, m.group(1), m.group(2))
                elif (m := RUNTIMES.match(url.path)) and method == "GET":
                    if m.group(2) in standin.runtimes:
                        self._send(
                            200, {"kind": "TrainingRuntime", "metadata": {"name": m.group(2)}}
                        )
                    else:
                        self._send(404, _status(404, "NotFound", f"{m.group(2)} not found"))
                elif (m := PODS.match(url.path)) and method == "GET":
                    self._send(200, standin._pods(m.group(1), query.get("labelSelector", "")))
                elif (m := POD_LOG.match(url.path)) and method == "GET":
                    self._log(m.group(1), m.group(2), query.get("follow", "").lower() == "true")
                elif (m := EVENTS.match(url.path)) and method == "GET":
                    items = [e for e in standin.events if e["metadata"]["namespace"] == m.group(1)]
                    self._send(200, {"kind": "EventList", "apiVersion": "v1", "items": items})
                else:
                    self._send(404, _status(404, "NotFound", f"{method} {url.path}"))

            def _trainjobs(self, method: str, namespace: str, name: str) -> None:
                if method == "POST" and not name:
                    length = int(self.headers.get("Content-Length", 0))
                    self._send(*standin._create(namespace, json.loads(self.rfile.read(length))))
                elif method == "GET" and name:
                    with standin.lock:
                        job = standin.jobs.get((namespace, name))
                        body = json.loads(json.dumps(job.obj)) if job else None
                    if body is None:
                        self._send(404, _status(404, "NotFound", f'trainjobs "{name}" not found'))
                    else:
                        self._send(200, body)
                elif method == "DELETE" and name:
                    self._send(*standin._delete(namespace, name))
                else:
                    self._send(405, _status(405, "MethodNotAllowed", method))

            def _log(self, namespace: str, pod: str, follow: bool) -> None:
                node = standin._node(namespace, pod)
                if node is None:
                    self._send(404, _status(404, "NotFound", f'pods "{pod}" not found'))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    for chunk in _tail(node, follow):
                        self.wfile.write(chunk)
                        self.wfile.flush()

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler

    def _pods(self, namespace: str, selector: str) -> dict[str, Any]:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        items = []
        with self.lock:
            for (ns, _), job in self.jobs.items():
                if ns != namespace:
                    continue
                for node in job.nodes:
                    pod = node.pod(job.name)
                    labels = pod["metadata"]["labels"]
                    if all(labels.get(k) == v for k, v in wanted.items()):
                        items.append(pod)
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}

    def _node(self, namespace: str, pod: str) -> Node | None:
        with self.lock:
            for (ns, _), job in self.jobs.items():
                for node in job.nodes:
                    if ns == namespace and node.name == pod:
                        return node
        return None


def _tail(node: Node, follow: bool) -> Iterator[bytes]:
    with node.log.open("rb") as handle:
        while True:
            chunk = handle.read(65536)
            if chunk:
                yield chunk
                continue
            if not follow or node.process.poll() is not None:
                rest = handle.read()
                if rest:
                    yield rest
                return
            time.sleep(0.1)


def _kill_tree(pid: int) -> None:
    """SIGKILL `pid` and every process under it (torchrun starts its workers in sessions
    of their own, so a process group does not reach them; a container's cgroup would)."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Success" if code < 300 else "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


def _ns(job: Job) -> str:
    return str(job.obj["metadata"]["namespace"])


def _grace(obj: dict[str, Any]) -> float:
    """terminationGracePeriodSeconds from the job's runtime patch (30, Kubernetes' default)."""
    for patch in obj["spec"].get("runtimePatches", []):
        jobs = patch.get("trainingRuntimeSpec", {}).get("template", {}).get("spec", {})
        for replicated in jobs.get("replicatedJobs", []):
            pod = replicated.get("template", {}).get("spec", {}).get("template", {})
            grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
            if grace is not None:
                return float(grace)
    return 30.0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
