"""Faults: the server dies mid-registration, the server is unreachable, two gates race.

The restart tests run their own `mlflow server` (SQLite backend store, artifacts served by
it), stop it at a named step of the registration, start it again on the same port with
the same stores, and run the registration again. The race runs two `uicap gate`
processes against the session server and against a SQLite file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.register import tags as T
from components.register.client import (
    Registry,
    RegistryUnavailableError,
    RetryPolicy,
    connect,
)
from components.register.config import GateConfig, RegistryConfig
from components.register.lock import LockTimeoutError, promotion_lock
from components.register.promotion import STALE, gate_and_promote
from components.register.registration import RUN_STEP, register_candidate
from tests.support.registry_support import (
    Tracking,
    evaluation_for,
    make_artifact,
    weights_sha,
    write_json,
)
from tests.support.servers import MlflowServer, free_port, start_mlflow_server

FAST_RETRY = RetryPolicy(attempts=2, first_delay_s=0.1, max_delay_s=0.2)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, registry_base: Path) -> list[Path]:
    root = tmp_path_factory.mktemp("fault-artifacts")
    return [make_artifact(root / f"candidate-{seed}", registry_base, seed) for seed in (4, 5, 6)]


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MlflowServer]]:
    """A server of this module's own, which its tests stop and restart; the last is running."""
    servers = [start_mlflow_server(tmp_path_factory.mktemp("restartable"))]
    try:
        yield servers
    finally:
        servers[-1].stop()


@pytest.fixture
def own_server(
    restartable: list[MlflowServer], monkeypatch: pytest.MonkeyPatch
) -> list[MlflowServer]:
    """The restartable server, running, as this test's tracking URI."""
    if restartable[-1].server.process.poll() is not None:
        restartable.append(restartable[-1].restart())
    # One quick HTTP retry per request: a dead server is reported in seconds.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", restartable[-1].uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)  # the registry is this server too
    return restartable


def registration_runs(registry: Registry, pipeline_run_id: str) -> list[str]:
    experiment = registry.client.get_experiment_by_name(registry.experiment_name)
    runs = registry.client.search_runs(
        [experiment.experiment_id],
        f"tags.`{T.PIPELINE_RUN_ID}` = '{pipeline_run_id}' and tags.`{T.RUN_STEP}` = '{RUN_STEP}'",
    )
    return [run.info.status for run in runs]


@pytest.mark.parametrize("stop_at", ["artifacts-uploaded", "creating-version"])
def test_server_stopped_before_the_version_exists_then_a_rerun_registers_it_once(
    own_server: list[MlflowServer],
    registry_settings: RegistryConfig,
    artifacts: list[Path],
    registry_data: Path,
    stop_at: str,
) -> None:
    registry = connect(registry_settings, retry=FAST_RETRY)
    evaluation = evaluation_for(weights_sha(artifacts[0]), 0.6)

    def stop_server(step: str) -> None:
        if step == stop_at:
            own_server[-1].stop()

    with pytest.raises(RegistryUnavailableError, match=own_server[-1].uri) as failure:
        register_candidate(
            registry,
            artifacts[0],
            evaluation,
            "run-7",
            data_dir=registry_data,
            progress=stop_server,
        )
    assert "no version was created" in str(failure.value)

    own_server.append(own_server[-1].restart())
    assert registry.versions() == []  # nothing half-registered survived the outage

    again = register_candidate(registry, artifacts[0], evaluation, "run-7", data_dir=registry_data)
    assert (again.version, again.created) == ("1", True)
    assert [str(v.version) for v in registry.versions()] == ["1"]
    assert registry.aliases() == {"challenger": "1"}
    # The failed attempt's run is gone; the one that registered is closed.
    assert registration_runs(registry, "run-7") == ["FINISHED"]


def test_server_stopped_after_the_version_exists_then_a_rerun_sets_the_alias(
    own_server: list[MlflowServer],
    registry_settings: RegistryConfig,
    artifacts: list[Path],
    registry_data: Path,
) -> None:
    registry = connect(registry_settings, retry=FAST_RETRY)
    evaluation = evaluation_for(weights_sha(artifacts[0]), 0.6)

    def stop_server(step: str) -> None:
        if step == "version-created":
            own_server[-1].stop()

    with pytest.raises(RegistryUnavailableError, match=own_server[-1].uri):
        register_candidate(
            registry,
            artifacts[0],
            evaluation,
            "run-8",
            data_dir=registry_data,
            progress=stop_server,
        )
    own_server.append(own_server[-1].restart())
    assert [str(v.version) for v in registry.versions()] == ["1"]
    assert registry.aliases() == {}  # the alias move is what the outage interrupted

    again = register_candidate(registry, artifacts[0], evaluation, "run-8", data_dir=registry_data)
    assert (again.version, again.created) == ("1", False)
    assert [str(v.version) for v in registry.versions()] == ["1"]
    assert registry.aliases() == {"challenger": "1"}
    assert registration_runs(registry, "run-8") == ["FINISHED"]


def test_an_unreachable_server_fails_after_bounded_retries_naming_the_uri(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port = free_port()
    uri = f"http://alice:s3cret-pass@127.0.0.1:{port}/"
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as failure:
        connect(RegistryConfig(tracking_uri=uri), retry=RetryPolicy(attempts=3, first_delay_s=0.2))
    elapsed = time.monotonic() - started
    message = str(failure.value)
    assert f"http://127.0.0.1:{port}/ is unreachable" in message
    assert "failed 3 times" in message
    assert "s3cret" not in message and "alice" not in message
    assert 0.3 < elapsed < 20


def test_the_cli_reports_an_unreachable_server_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    # Without MLFLOW_REGISTRY_URI the registry is the (unreachable) tracking server too.
    inherited = {key: value for key, value in os.environ.items() if key != "MLFLOW_REGISTRY_URI"}
    env = {
        **inherited,
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
        "MLFLOW_TRACKING_PASSWORD": "hunter2-secret",
        "MLFLOW_TRACKING_USERNAME": "ops",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "models", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"http://127.0.0.1:{port} is unreachable" in " ".join(result.stderr.split())
    assert "hunter2" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# --- racing gates ---------------------------------------------------------------------------


@pytest.fixture
def contest(
    tracking: Tracking,
    registry_settings: RegistryConfig,
    artifacts: list[Path],
    registry_data: Path,
    tmp_path: Path,
) -> dict[str, object]:
    """Champion v1; v2 (better) and v3 (worse) both evaluated against v1, both passing."""
    registry = connect(registry_settings)
    first = evaluation_for(weights_sha(artifacts[0]), 0.6)
    register_candidate(registry, artifacts[0], first, "race-1", data_dir=registry_data)
    assert gate_and_promote(registry, "1", first, GateConfig()).outcome == "promoted"
    champion = (registry.model_name, "1")
    evaluations = {
        "better": evaluation_for(
            weights_sha(artifacts[1]), 0.95, champion=champion, baseline_quality=0.6
        ),
        "worse": evaluation_for(
            weights_sha(artifacts[2]), 0.75, champion=champion, baseline_quality=0.6
        ),
    }
    versions = {}
    for (name, evaluation), artifact, run in zip(
        evaluations.items(), artifacts[1:], ("race-2", "race-3"), strict=True
    ):
        versions[name] = register_candidate(
            registry, artifact, evaluation, run, data_dir=registry_data
        ).version
        decided = gate_and_promote(
            registry, versions[name], evaluation, GateConfig(), promote=False
        )
        assert decided.outcome == "awaiting promotion"
    paths = {name: write_json(tmp_path / f"{name}.json", e) for name, e in evaluations.items()}
    return {"registry": registry, "versions": versions, "evaluations": evaluations, "paths": paths}


@pytest.mark.parametrize("first", ["worse", "better"])
def test_gates_in_either_order_end_with_the_better_candidate(contest: dict, first: str) -> None:
    registry: Registry = contest["registry"]
    versions, evaluations = contest["versions"], contest["evaluations"]
    second = "better" if first == "worse" else "worse"
    one = gate_and_promote(registry, versions[first], evaluations[first], GateConfig())
    two = gate_and_promote(registry, versions[second], evaluations[second], GateConfig())
    assert one.outcome == "promoted"
    assert registry.champion() == versions["better"]
    if first == "worse":
        assert two.outcome == "promoted" and two.supersedes == versions["worse"]
        assert two.head_to_head is not None and two.head_to_head.passed
        # Rollback from the better one goes to the worse one it superseded.
        tags = registry.version(versions["better"]).tags
        assert tags[T.PREVIOUS_CHAMPION] == versions["worse"]
        assert registry.version(versions["worse"]).tags[T.SUPERSEDED_BY] == versions["better"]
    else:
        assert two.outcome == STALE
        assert two.reasons[0].startswith(
            f"{STALE}: evaluated against v1, but the champion is now v{versions['better']}"
        )


def test_two_gate_processes_racing_end_with_the_better_candidate(contest: dict) -> None:
    registry: Registry = contest["registry"]
    overrides = [
        "--set",
        f"registry.model_name={registry.model_name}",
        "--set",
        f"registry.experiment_name={registry.experiment_name}",
    ]
    processes = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipelines.cli",
                "gate",
                "--evaluation",
                str(contest["paths"][name]),
                "--version",
                contest["versions"][name],
                *overrides,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("worse", "better")
    }
    outputs = {name: process.communicate(timeout=240)[0] for name, process in processes.items()}
    for name, process in processes.items():
        assert process.returncode == 0, outputs[name]
    assert registry.champion() == contest["versions"]["better"], outputs
    worse_outcome = registry.version(contest["versions"]["worse"]).tags[T.GATE_OUTCOME]
    assert worse_outcome in ("promoted", STALE)  # promoted first and then superseded, or stale
    assert registry.aliases().get("challenger") != contest["versions"]["better"]
    assert not any(
        model.name.endswith(".promotion-lock")
        for model in registry.client.search_registered_models(
            f"name = '{registry.model_name}.promotion-lock'"
        )
    )


def test_the_promotion_lock_waits_then_gives_up_naming_the_holder(
    tracking: Tracking, registry_settings: RegistryConfig
) -> None:
    registry = connect(registry_settings)
    with promotion_lock(registry, "gate-of-run-41"):
        started = time.monotonic()
        with (
            pytest.raises(LockTimeoutError, match="held by gate-of-run-41"),
            promotion_lock(registry, "gate-of-run-42", timeout_s=0.5),
        ):
            pass
        assert time.monotonic() - started < 10
    # Released: the next promoter gets it at once.
    with promotion_lock(registry, "gate-of-run-42", timeout_s=0.5) as lock:
        assert lock.still_held()


def test_a_lock_older_than_its_ttl_is_broken(
    tracking: Tracking, registry_settings: RegistryConfig
) -> None:
    registry = connect(registry_settings)
    with promotion_lock(registry, "stalled-gate") as stalled:
        time.sleep(1.1)
        with promotion_lock(registry, "next-gate", timeout_s=5, ttl_s=1) as taken:
            assert taken.still_held()
            assert not stalled.still_held()
