"""`uicap models`, `uicap register` and `uicap gate`, run as an operator would, on both stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.register import tags as T
from components.register.client import Registry, connect
from components.register.config import GateConfig, RegistryConfig
from components.register.promotion import gate_and_promote
from components.register.registration import register_candidate
from pipelines.cli import app
from tests.support.registry_support import (
    Tracking,
    evaluation_for,
    make_artifact,
    weights_sha,
    write_json,
)

REASON = "captions cut off mid-sentence in production (INC-4711)"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, registry_base: Path) -> list[Path]:
    root = tmp_path_factory.mktemp("cli-artifacts")
    return [make_artifact(root / f"candidate-{seed}", registry_base, seed) for seed in (7, 8)]


@pytest.fixture
def registry(
    tracking: Tracking, registry_settings: RegistryConfig, monkeypatch: pytest.MonkeyPatch
) -> Registry:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps table cells to the terminal width
    return connect(registry_settings)


def uicap(registry: Registry, *args: str) -> str:
    overrides = [
        "--set",
        f"registry.model_name={registry.model_name}",
        "--set",
        f"registry.experiment_name={registry.experiment_name}",
    ]
    result = CliRunner().invoke(app, [*args, *overrides])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def promoted_twice(registry: Registry, artifacts: list[Path], data: Path) -> None:
    """v1 promoted over the base, then v2 promoted over v1, both by the gate."""
    first = evaluation_for(weights_sha(artifacts[0]), 0.6)
    register_candidate(registry, artifacts[0], first, "run-1", data_dir=data)
    assert gate_and_promote(registry, "1", first, GateConfig()).outcome == "promoted"
    second = evaluation_for(
        weights_sha(artifacts[1]), 0.9, champion=(registry.model_name, "1"), baseline_quality=0.6
    )
    register_candidate(registry, artifacts[1], second, "run-2", data_dir=data)
    assert gate_and_promote(registry, "2", second, GateConfig()).outcome == "promoted"


def test_rollback_then_list_shows_the_previous_champion_serving_with_the_reason(
    registry: Registry, artifacts: list[Path], registry_data: Path
) -> None:
    promoted_twice(registry, artifacts, registry_data)
    output = uicap(registry, "models", "rollback", "--reason", REASON)
    assert "champion: v2 -> v1" in output

    listing = uicap(registry, "models", "list")
    assert f"models:/{registry.model_name}@champion serves v1" in listing
    assert f"rollback promotion: rolled back from v2: {REASON}" in listing
    assert f"rolled back to v1: {REASON}" in listing  # on v2's row
    assert registry.champion() == "1"
    tags = registry.version("2").tags
    assert tags[T.ROLLED_BACK_REASON] == REASON and tags[T.ROLLED_BACK_TO] == "1"


def test_list_shows_aliases_metrics_decisions_and_lineage(
    registry: Registry, artifacts: list[Path], registry_data: Path
) -> None:
    promoted_twice(registry, artifacts, registry_data)
    listing = uicap(registry, "models", "list")
    assert "serves v2" in listing
    assert "gate promotion: supersedes" not in listing
    assert "run run-2" in listing and "run run-1" in listing
    assert "0.900" in listing  # v2's CIDEr
    assert "+0.300" in listing and "vs champion v1" in listing
    assert "passed" in listing
    assert "base " in listing and "registry-tiny-base" in listing


def test_show_prints_every_recorded_tag(
    registry: Registry, artifacts: list[Path], registry_data: Path
) -> None:
    promoted_twice(registry, artifacts, registry_data)
    shown = uicap(registry, "models", "show", "2")
    for key in (T.PIPELINE_RUN_ID, T.DATA_FINGERPRINT, T.GATE_DECISION, T.PREVIOUS_CHAMPION):
        assert key in shown
    assert "champion" in shown


def test_manual_promotion_is_recorded_and_rolls_back(
    registry: Registry, artifacts: list[Path], registry_data: Path
) -> None:
    promoted_twice(registry, artifacts, registry_data)
    output = uicap(registry, "models", "promote", "1", "--reason", "v2 mislabels links")
    assert "champion: v2 -> v1" in output
    assert registry.champion() == "1"
    listing = uicap(registry, "models", "list")
    assert "manual promotion: v2 mislabels links" in listing
    uicap(registry, "models", "rollback", "--reason", "the link fix shipped")
    assert registry.champion() == "2"


def test_rollback_without_a_previous_champion_explains_what_to_do(
    registry: Registry, artifacts: list[Path], registry_data: Path
) -> None:
    first = evaluation_for(weights_sha(artifacts[0]), 0.6)
    register_candidate(registry, artifacts[0], first, "run-1", data_dir=registry_data)
    gate_and_promote(registry, "1", first, GateConfig())
    result = CliRunner().invoke(
        app,
        [
            "models",
            "rollback",
            "--reason",
            "oops",
            "--set",
            f"registry.model_name={registry.model_name}",
        ],
    )
    assert result.exit_code == 1
    assert "v1 records no previous champion" in result.output
    assert registry.champion() == "1"


def test_register_and_gate_commands_run_the_pipeline_steps(
    registry: Registry, artifacts: list[Path], registry_data: Path, tmp_path: Path
) -> None:
    evaluation = write_json(
        tmp_path / "eval" / "evaluation.json", evaluation_for(weights_sha(artifacts[0]), 0.6)
    )
    args = ["--model", str(artifacts[0]), "--evaluation", str(evaluation)]
    args += ["--data", str(registry_data), "--pipeline-run-id", "cli-run"]
    assert f"registered {registry.model_name} v1, alias challenger" in uicap(
        registry, "register", *args
    )
    assert "already registered as" in uicap(registry, "register", *args)

    decision = tmp_path / "decision.json"
    gated = uicap(
        registry,
        "gate",
        "--evaluation",
        str(evaluation.parent),
        "--version",
        "1",
        "--output",
        str(decision),
    )
    assert "v1: promoted" in gated
    assert json.loads(decision.read_text())["outcome"] == "promoted"
    assert registry.aliases() == {"champion": "1"}


# Only an HTTP tracking URI carries user info: this test runs on the server store alone.
@pytest.mark.parametrize("tracking", ["server"], indirect=True)
def test_credentials_in_the_tracking_uri_are_never_printed(
    tracking: Tracking,
    registry: Registry,
    artifacts: list[Path],
    registry_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    promoted_twice(registry, artifacts, registry_data)
    with_secret = tracking.uri.replace("http://", "http://ops:s3cret-token@")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", with_secret)
    listing = uicap(registry, "models", "list")
    assert "serves v2" in listing
    assert tracking.uri.removeprefix("http://") in listing  # the table title names the server
    assert "s3cret" not in listing and "ops:" not in listing
