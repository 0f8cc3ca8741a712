"""The "no new data" check: a run's lineage key, and the verdict against a real registry.

The Hub side (revisions resolved through the real huggingface_hub client) is in
tests/test_hub_revisions.py; here the sources are local folders, whose revision is
their content hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.content_hash import content_hash
from components.demo.samples import write_sample_dataset
from components.ingest.source import SourceError
from components.lineage import LINEAGE_KEY_TAG, check_against_champion, run_lineage
from components.lineage.run import resolve_inputs
from components.prepare.config import PrepareConfig
from components.register.client import connect
from components.register.config import RegistryConfig
from components.train.config import parse_config

PREPARE = PrepareConfig(max_image_side=448, html_budget_tokens=128)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Two local datasets of different data (seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("lineage")
    return {
        seed: write_sample_dataset(root / f"source{seed}", kind="ui", records=24, seed=seed)
        for seed in (0, 1)
    }


def lineage_of(
    folder: Path,
    train_config: str = '{"optim": {"lr": 0.001}}',
    *,
    base_revision: str = "abc123",
    prepare: PrepareConfig = PREPARE,
):
    """The lineage as the lineage step computes it from the JSON its configs travel as."""
    train = parse_config(train_config, ["family=minicpmv4_6"])
    return run_lineage(
        dataset=str(folder),
        data_revision=content_hash(folder),
        base_model="openbmb/MiniCPM-V-4.6",
        base_revision=base_revision,
        prepare=prepare,
        train=train,
    )


def test_the_key_ignores_how_the_config_is_written(ingested) -> None:
    as_json = lineage_of(ingested[0], '{"optim": {"lr": 0.001}, "seed": 0}')
    as_yaml = lineage_of(ingested[0], "# tuned\nseed: 0\noptim:\n  lr: 1.0e-3\n")
    assert as_json.key == as_yaml.key


def test_settings_that_only_change_speed_leave_the_key_alone(ingested) -> None:
    reference = lineage_of(ingested[0]).key
    faster = '{"optim": {"lr": 0.001}, "batch": {"num_workers": 4, "encoding_cache_mb": 0}}'
    assert lineage_of(ingested[0], train_config=faster).key == reference
    bookkeeping = '{"optim": {"lr": 0.001}, "schedule": {"save_steps": 7, "log_steps": 5}}'
    assert lineage_of(ingested[0], train_config=bookkeeping).key == reference
    more_workers = PREPARE.model_copy(update={"workers": 8})
    assert lineage_of(ingested[0], prepare=more_workers).key == reference


def test_data_base_and_settings_each_change_the_key(ingested) -> None:
    reference = lineage_of(ingested[0]).key
    assert lineage_of(ingested[1]).key != reference
    assert lineage_of(ingested[0], base_revision="def456").key != reference
    assert lineage_of(ingested[0], train_config='{"optim": {"lr": 0.002}}').key != reference
    larger = PREPARE.model_copy(update={"max_image_side": 896})
    assert lineage_of(ingested[0], prepare=larger).key != reference
    reseeded = PREPARE.model_copy(update={"seed": 1})
    assert lineage_of(ingested[0], prepare=reseeded).key != reference


def test_local_folders_resolve_to_their_content_hash_and_hold_to_it(
    ingested, tmp_path: Path
) -> None:
    base = write_sample_dataset(tmp_path / "base", kind="ui", records=3, seed=3)
    resolved = resolve_inputs(str(ingested[0]), "", str(base), None)
    assert resolved.data_revision == content_hash(ingested[0])
    # A local base records a non-empty revision: the hash of its files.
    assert resolved.base_revision == content_hash(base)
    assert resolved.base_revision.startswith("sha256:")
    with pytest.raises(SourceError, match="its revision is the content hash"):
        resolve_inputs(str(ingested[0]), "main", str(base), None)


def test_the_base_revision_in_the_key_is_the_resolved_one(ingested) -> None:
    lineage = lineage_of(ingested[0], base_revision="0" * 40)
    assert lineage.train["base_revision"] == "0" * 40
    assert lineage.to_dict()["base_revision"] == "0" * 40


@pytest.fixture
def registry(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return connect(RegistryConfig(tracking_uri=uri, model_name="lineage-test"))


def _champion_with(registry, tags: dict[str, str], source: Path) -> str:
    client = registry.client
    client.create_registered_model(registry.model_name)
    source.mkdir(parents=True, exist_ok=True)
    version = client.create_model_version(registry.model_name, str(source), tags=tags).version
    client.set_registered_model_alias(registry.model_name, "champion", version)
    return version


def test_without_a_champion_there_is_always_something_to_do(ingested, registry) -> None:
    check = check_against_champion(lineage_of(ingested[0]), registry)
    assert check.changed and check.reasons == ["no champion yet"]


def test_the_champions_own_inputs_mean_no_new_data(ingested, registry, tmp_path) -> None:
    lineage = lineage_of(ingested[0])
    version = _champion_with(registry, lineage.tags(), tmp_path / "model")
    check = check_against_champion(lineage_of(ingested[0]), registry)
    assert not check.changed
    assert check.decision == "no new data"
    assert check.record()["decision"] == "no new data"
    assert f"champion version {version}" in check.reasons[0]


def test_new_data_is_named_in_the_reasons(ingested, registry, tmp_path) -> None:
    _champion_with(registry, lineage_of(ingested[0]).tags(), tmp_path / "model")
    check = check_against_champion(
        lineage_of(ingested[1], train_config='{"optim": {"lr": 0.002}}'), registry
    )
    assert check.changed and check.record()["decision"] is None
    assert any(reason.startswith("data revision") for reason in check.reasons)
    assert any("train settings changed: optim" in reason for reason in check.reasons)


def test_a_champion_without_lineage_is_retrained_against(ingested, registry, tmp_path) -> None:
    _champion_with(registry, {"other": "tag"}, tmp_path / "model")
    check = check_against_champion(lineage_of(ingested[0]), registry)
    assert check.changed
    assert "no recorded lineage" in check.reasons[0]
    assert LINEAGE_KEY_TAG in lineage_of(ingested[0]).tags()
    assert json.loads(lineage_of(ingested[0]).tags()["uicap.lineage"])["family"] == "minicpmv4_6"
