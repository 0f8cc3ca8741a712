"""Create a TrainJob, follow it to its end, and leave nothing behind.

The launcher is the train task when training spans nodes. It must behave on a real
cluster, where its own pod can be retried, cancelled or preempted:
- a retry of the task computes the same job name, so it finds its first attempt's job:
  running, it attaches; complete, it succeeds without training again; failed, it deletes
  the job and creates it again (training resumes from the checkpoints);
- it watches the job's conditions, never only "Running": a job that Kueue has not yet
  admitted is suspended, and a job can fail before any pod runs;
- it follows node 0's log across the job's restarts (JobSet recreates every pod);
- a failure raises with the condition's reason and message and the job's events;
- it deletes the job once its model is safe, and when the run is cancelled (SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.trainjob.manifest import API_GROUP, API_VERSION, PLURAL, QUEUE_LABEL, RUN_LABEL

# Labels JobSet and the Job controller put on every pod: node 0 is completion index 0.
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
RESTART_LABEL = "jobset.sigs.k8s.io/restart-attempt"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DELETE_WAIT_SECONDS = 300.0
LOG_DRAIN_SECONDS = 15.0


class TrainJobFailed(RuntimeError):
    """The TrainJob ended Failed; the message holds its reason, message and events."""


class TrainJobCancelled(RuntimeError):
    """The launcher was told to stop (SIGTERM/SIGINT); its TrainJob was deleted."""


def api_client() -> Any:
    """A client for the cluster this runs in (its service account), else the kubeconfig's."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def current_namespace() -> str:
    """The launcher pod's namespace, else the kubeconfig context's, else `default`."""
    if SERVICE_ACCOUNT_NAMESPACE.is_file():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    from kubernetes import config

    try:
        _, context = config.list_kube_config_contexts()
    except (config.ConfigException, OSError):
        return "default"
    return str(context.get("context", {}).get("namespace") or "default")


def condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The job's condition of type `kind` when its status is True."""
    for item in job.get("status", {}).get("conditions") or []:
        if item.get("type") == kind and item.get("status") == "True":
            return item
    return None


def state_of(job: dict[str, Any]) -> str:
    """Complete, Failed, Suspended or Active, from the conditions the controller sets."""
    for kind in ("Complete", "Failed", "Suspended"):
        if condition(job, kind) is not None:
            return kind
    return "Active"


@dataclass
class TrainJobLauncher:
    """One TrainJob through the Kubernetes API: `run` it, then `delete` it."""

    api: Any
    namespace: str
    poll_seconds: float = 5.0
    say: Callable[[str], None] = print
    _logs_stop: threading.Event = field(default_factory=threading.Event)
    _finishing: threading.Event = field(default_factory=threading.Event)
    # The highest JobSet restart attempt seen on node 0's pods (0: never restarted).
    restarts_seen: int = 0

    def __post_init__(self) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    # --- the API, a call each ---------------------------------------------------------
    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create the job; None when it already exists (another attempt got there first)."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom.create_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, PLURAL, manifest
            )
        except ApiException as error:
            if error.status == 409:
                return None
            raise

    def delete(self, name: str, *, wait: bool = False) -> None:
        """Delete the job and its pods (foreground); `wait` until it is gone."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.delete_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                self.namespace,
                PLURAL,
                name,
                propagation_policy="Foreground",
            )
        except ApiException as error:
            if error.status != 404:
                raise
        deadline = time.monotonic() + DELETE_WAIT_SECONDS
        while wait and self.get(name) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"TrainJob {name} still exists {DELETE_WAIT_SECONDS:.0f} s on")
            time.sleep(min(self.poll_seconds, 1.0))

    def events(self, name: str, limit: int = 20) -> list[str]:
        """The newest events of the job and of everything named after it (JobSet, pods)."""
        listed = self.core.list_namespaced_event(self.namespace)
        items = [e for e in listed.items if (e.involved_object.name or "").startswith(name)]
        items.sort(key=lambda e: str(e.last_timestamp or e.event_time or ""))
        return [
            f"{e.involved_object.kind}/{e.involved_object.name}: {e.reason}: {e.message}"
            for e in items[-limit:]
        ]

    # --- one run ----------------------------------------------------------------------
    def run(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Bring the job to Complete (creating, attaching or recreating it); raises
        `TrainJobFailed` with the reason, `TrainJobCancelled` on SIGTERM/SIGINT."""
        name = manifest["metadata"]["name"]
        with self._cancel_deletes(name):
            self._start(manifest)
            follower = threading.Thread(target=self._follow_node0, args=(name,), daemon=True)
            follower.start()
            try:
                job = self._wait(name)
            except TrainJobCancelled:
                self._logs_stop.set()  # the follower is a daemon: no wait for its read
                raise
            except TrainJobFailed:
                self._drain_logs(follower)
                raise
            self._drain_logs(follower)
            return job

    def _drain_logs(self, follower: threading.Thread) -> None:
        """The job ended and so did node 0's pod: its last lines (which say why) arrive
        before the follower stops."""
        self._finishing.set()
        follower.join(timeout=LOG_DRAIN_SECONDS)
        self._logs_stop.set()

    def _start(self, manifest: dict[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        existing = self.get(name)
        if existing is not None:
            self._check_ours(existing, manifest)
            state = state_of(existing)
            if state == "Complete":
                self.say(f"TrainJob {name} already completed: not training again")
                return
            if state != "Failed":
                self.say(f"TrainJob {name} exists ({state}): attaching to it")
                return
            failed = condition(existing, "Failed") or {}
            self.say(
                f"TrainJob {name} failed before ({failed.get('reason')}: "
                f"{failed.get('message')}): deleting it and creating it again; "
                "training resumes from its last complete checkpoint"
            )
            self.delete(name, wait=True)
        self._check_runtime(manifest)
        if self.create(manifest) is None:
            self.say(f"TrainJob {name} was created meanwhile: attaching to it")
            return
        trainer = manifest["spec"]["trainer"]
        self.say(
            f"created TrainJob {self.namespace}/{name}: {trainer['numNodes']} node(s) x "
            f"{trainer.get('numProcPerNode', 1)} process(es), runtime "
            f"{manifest['spec']['runtimeRef']['name']}"
        )

    def _check_runtime(self, manifest: dict[str, Any]) -> None:
        """The runtime the job names must exist: say so plainly rather than leave it to the
        admission webhook's message."""
        from kubernetes.client.exceptions import ApiException

        runtime = manifest["spec"]["runtimeRef"]["name"]
        try:
            self.custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, self.namespace, "trainingruntimes", runtime
            )
        except ApiException as error:
            if error.status != 404:
                raise
            raise RuntimeError(
                f"TrainingRuntime {runtime} does not exist in namespace {self.namespace}: "
                "apply manifests/ (kubectl apply -k manifests/overlays/<env>) after "
                "installing Kubeflow Trainer v2.3, or set kubernetes.training_runtime"
            ) from None

    def _check_ours(self, existing: dict[str, Any], manifest: dict[str, Any]) -> None:
        """A job of the same name from another run is never adopted (nor deleted)."""
        mine = manifest["metadata"]["labels"].get(RUN_LABEL)
        theirs = (existing.get("metadata", {}).get("labels") or {}).get(RUN_LABEL)
        if mine != theirs:
            raise RuntimeError(
                f"TrainJob {manifest['metadata']['name']} exists but belongs to pipeline run "
                f"{theirs!r}, not {mine!r}: delete it, or rename this task"
            )

    def _wait(self, name: str) -> dict[str, Any]:
        last = None
        while True:
            job = self.get(name)
            if job is None:
                raise TrainJobFailed(f"TrainJob {name} was deleted before it finished")
            state = state_of(job)
            if state != last:
                self._report(name, job, state)
                last = state
            if state == "Complete":
                return job
            if state == "Failed":
                failed = condition(job, "Failed") or {}
                events = "\n  ".join(self.events(name)) or "(none)"
                raise TrainJobFailed(
                    f"TrainJob {name} failed: {failed.get('reason')}: {failed.get('message')}"
                    f"\nevents:\n  {events}"
                )
            time.sleep(self.poll_seconds)

    def _report(self, name: str, job: dict[str, Any], state: str) -> None:
        labels = job.get("metadata", {}).get("labels") or {}
        if state == "Suspended":
            queue = labels.get(QUEUE_LABEL)
            why = f"waiting for Kueue to admit it to queue {queue}" if queue else "suspended"
            self.say(f"TrainJob {name}: {why}")
        else:
            self.say(f"TrainJob {name}: {state}")

    # --- node 0's log, across restarts --------------------------------------------------
    def _node0_pods(self, name: str) -> list[Any]:
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{JOBSET_LABEL}={name},{INDEX_LABEL}=0"
        ).items
        return sorted(pods, key=lambda p: str(p.metadata.creation_timestamp or ""))

    def _follow_node0(self, name: str) -> None:
        followed: set[str] = set()
        while not self._logs_stop.is_set():
            try:
                fresh = [
                    p
                    for p in self._node0_pods(name)
                    if p.metadata.uid not in followed
                    and p.status.phase in ("Running", "Succeeded", "Failed")
                ]
                if not fresh:
                    if self._finishing.is_set():
                        return
                    self._logs_stop.wait(self.poll_seconds)
                    continue
                pod = fresh[0]
                followed.add(pod.metadata.uid)
                attempt = (pod.metadata.labels or {}).get(RESTART_LABEL, "0")
                self.restarts_seen = max(self.restarts_seen, int(attempt))
                self.say(f"--- {pod.metadata.name} (node 0, restart attempt {attempt}) ---")
                for line in self._log_lines(pod.metadata.name):
                    self.say(f"[node-0] {line}")
            except Exception as error:  # the log is a courtesy: the conditions decide
                if self._logs_stop.is_set():
                    return
                self.say(f"(log of node 0 interrupted: {error})")
                self._logs_stop.wait(self.poll_seconds)

    def _log_lines(self, pod: str) -> Iterator[str]:
        stream = self.core.read_namespaced_pod_log(
            pod, self.namespace, container="node", follow=True, _preload_content=False
        )
        pending = b""
        try:
            for chunk in stream.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from (line.decode(errors="replace") for line in lines)
            if pending:
                yield pending.decode(errors="replace")
        finally:
            stream.release_conn()

    # --- cancellation -------------------------------------------------------------------
    @contextlib.contextmanager
    def _cancel_deletes(self, name: str) -> Iterator[None]:
        """On SIGTERM/SIGINT (the run was cancelled, or this pod is going away), delete
        the job so no GPU node keeps training for nobody."""

        def cancel(signum: int, _frame: Any) -> None:
            raise TrainJobCancelled(f"stopped by signal {signum}")

        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, cancel) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        except TrainJobCancelled:
            self.say(f"cancelled: deleting TrainJob {name}")
            self.delete(name)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
