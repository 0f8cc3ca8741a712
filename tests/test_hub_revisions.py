"""A scheduled run against the Hub: revisions that move, pins that hold, and an unchanged
run that downloads nothing.

The real huggingface_hub client, unmodified, talks to a local server that speaks the
Hub's HTTP API (tests/support/fake_hub.py) through HF_ENDPOINT, in a fresh process per
run as in a pod; the server counts every file byte it serves. The registry is a real
MLflow store, and the champion carries the lineage tags its run produced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.demo.samples import write_sample_dataset
from components.register.client import connect
from components.register.config import RegistryConfig
from tests.support.fake_hub import FakeHub, folder_files

REPO = Path(__file__).parents[1]
DATASET, BASE = "acme/ui-elements", "acme/tiny-captioner"


@pytest.fixture
def hub():
    server = FakeHub().start()
    yield server
    server.stop()


def hub_run(hub: FakeHub, tmp_path: Path, name: str, **arguments: str) -> dict[str, Any]:
    """One run's lineage (+ ingest when something is new) in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf-home"))
    payload = {
        "dataset": DATASET,
        "base_model": BASE,
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "output": str(tmp_path / "runs" / name),
        **arguments,
    }
    before = hub.data_bytes[DATASET]
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.hub_run", json.dumps(payload)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["data_bytes"] = hub.data_bytes[DATASET] - before
    return result


def crown(tmp_path: Path, tags: dict[str, str]) -> str:
    """Register a version with a run's lineage tags and make it the champion."""
    registry = connect(
        RegistryConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", model_name="hub-test")
    )
    client = registry.client
    if not client.search_registered_models(f"name = '{registry.model_name}'"):
        client.create_registered_model(registry.model_name)
    source = tmp_path / "model"
    source.mkdir(exist_ok=True)
    version = client.create_model_version(registry.model_name, str(source), tags=tags).version
    client.set_registered_model_alias(registry.model_name, "champion", version)
    return version


def test_a_schedule_sees_new_commits_and_an_unchanged_run_downloads_nothing(
    hub: FakeHub, tmp_path: Path
) -> None:
    first_data = write_sample_dataset(tmp_path / "v1", kind="ui", records=12, seed=0)
    data_v1 = hub.push(DATASET, "dataset", folder_files(first_data))
    base_v1 = hub.push(BASE, "model", {"config.json": b'{"model_type": "minicpmv4_6"}'})

    first = hub_run(hub, tmp_path, "first")
    assert first["changed"] and first["reasons"] == ["no champion yet"]
    lineage = first["lineage"]
    # Branches resolved to the commits they named; nothing downstream sees "main".
    assert lineage["data_revision"] == data_v1
    assert lineage["base_revision"] == base_v1 == lineage["train"]["base_revision"]
    assert first["ingested"] == {"resolved_revision": data_v1, "kept": 12}
    assert first["data_bytes"] == sum(map(len, folder_files(first_data).values()))
    crown(tmp_path, first["tags"])

    hub.calls.clear()
    unchanged = hub_run(hub, tmp_path, "unchanged")
    assert not unchanged["changed"] and unchanged["decision"] == "no new data"
    assert unchanged["data_bytes"] == 0
    assert not [call for call in hub.calls if "/resolve/" in call or "/tree/" in call]

    second_data = write_sample_dataset(tmp_path / "v2", kind="ui", records=15, seed=1)
    data_v2 = hub.push(DATASET, "dataset", folder_files(second_data))
    new_commit = hub_run(hub, tmp_path, "new-commit")
    assert new_commit["changed"]
    assert f"data revision: {data_v1!r} -> {data_v2!r}" in new_commit["reasons"]
    assert new_commit["ingested"] == {"resolved_revision": data_v2, "kept": 15}
    assert new_commit["data_bytes"] > 0
    crown(tmp_path, new_commit["tags"])

    base_v2 = hub.push(BASE, "model", {"config.json": b'{"model_type": "minicpmv4_6", "v": 2}'})
    moved_base = hub_run(hub, tmp_path, "moved-base")
    assert moved_base["changed"]
    assert f"base revision: {base_v1!r} -> {base_v2!r}" in moved_base["reasons"]
    assert moved_base["lineage"]["data_revision"] == data_v2

    # A pinned sha holds while the branch moves on.
    pinned = hub_run(hub, tmp_path, "pinned", revision=data_v1, base_revision=base_v1)
    assert pinned["lineage"]["data_revision"] == data_v1
    assert pinned["lineage"]["base_revision"] == base_v1
    assert pinned["ingested"]["resolved_revision"] == data_v1
    # ... and is read from the Hub cache, which the first run filled.
    assert pinned["data_bytes"] == 0
