"""Profiles load as typed settings; overrides apply; bad values fail naming the dotted key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from components.captioner.families import family_names
from components.evaluate.config import EvaluateConfig
from components.prepare.config import PrepareConfig
from components.register.config import GateConfig, RegistryConfig
from components.train.config import parse_config
from pipelines.cli import app
from pipelines.settings import (
    PROFILES,
    PROFILES_DIR,
    Settings,
    SettingsError,
    load_settings,
    secret_reason,
)


def test_local_profile_is_tiny_offline_and_resolves_workdir() -> None:
    settings = load_settings("local")
    assert settings.profile == "local"
    assert settings.workdir == ".uicap"
    assert settings.pipeline_root == ".uicap/pipeline-root"
    assert settings.model.base == ".uicap/base-model"
    assert settings.registry.tracking_uri == "sqlite:///.uicap/mlflow.db"
    assert settings.prepare.max_image_side <= 448
    assert settings.kubernetes is None
    assert "{workdir}" not in settings.to_yaml()


def test_gke_profile_targets_h100_gcs_and_the_cluster_mlflow() -> None:
    settings = load_settings("gke")
    assert settings.pipeline_root.startswith("gs://")
    assert settings.model.base == "openbmb/MiniCPM-V-4.6"
    assert settings.model.family == "minicpmv4_6"
    assert settings.model.revision
    assert settings.registry.tracking_uri.startswith("http://mlflow.")
    k8s = settings.kubernetes
    assert k8s is not None
    assert k8s.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert k8s.accelerator_type == "nvidia.com/gpu" and k8s.accelerator_count >= 1
    assert [t.key for t in k8s.tolerations] == ["nvidia.com/gpu"]
    assert k8s.hf_token_secret.key_to_env == {"token": "HF_TOKEN"}
    for image in (k8s.runtime_image, k8s.trainer_image):
        assert re.search(r":[\w.-]+$|@sha256:", image) and not image.endswith(":latest")


def test_profiles_ship_as_package_data() -> None:
    import pipelines

    folder = Path(pipelines.__file__).parent / "profiles"
    assert sorted(path.stem for path in folder.glob("*.yaml")) == sorted(PROFILES)


def test_overrides_apply_typed_and_workdir_follows() -> None:
    settings = load_settings(
        "local",
        [
            "train.lora.rank=8",
            "gate.cider_min_abs_gain=0.05",
            "train.full=true",
            "train.lora.modules_to_save=[]",
            "train.deepspeed=zero3",
            "workdir=/srv/uicap",
            "data.column_map={purpose: summary, OCR: text}",
            "train.schedule.patience=null",
        ],
    )
    assert settings.train.lora.rank == 8 and isinstance(settings.train.lora.rank, int)
    assert settings.gate.cider_min_abs_gain == 0.05
    assert settings.train.full is True
    assert settings.train.deepspeed == "zero3"
    assert settings.train.schedule.patience is None
    assert settings.data.column_map == {"purpose": "summary", "OCR": "text"}
    assert settings.pipeline_root == "/srv/uicap/pipeline-root"
    assert settings.registry.tracking_uri == "sqlite:////srv/uicap/mlflow.db"
    # The profile file itself is untouched: a fresh load has the file's values.
    in_file = yaml.safe_load((PROFILES_DIR / "local.yaml").read_text())["train"]["lora"]["rank"]
    assert in_file != 8 and load_settings("local").train.lora.rank == in_file


def test_invalid_value_names_the_dotted_field_and_why() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings("local", ["train.lora.rank=0", "train.deepspeed=zero9"])
    message = str(raised.value)
    assert re.search(r"train\.lora\.rank: .*greater than or equal to 1.*\(got 0\)", message)
    assert re.search(r"train\.deepspeed: .*'zero2' or 'zero3'", message)
    assert "local.yaml" in message


def test_unknown_keys_are_rejected_wherever_they_are() -> None:
    with pytest.raises(SettingsError, match=r"train\.lora\.rnak: not a known setting"):
        load_settings("local", ["train.lora.rnak=4"])
    with pytest.raises(SettingsError, match=r"colour: not a known setting"):
        load_settings("local", ["colour=blue"])


def test_split_fractions_must_sum_to_one() -> None:
    with pytest.raises(SettingsError, match=r"prepare\.splits: .*sum to 1, not 1\.1"):
        load_settings("local", ["prepare.splits.train=0.9"])
    ok = load_settings("local", ["prepare.splits.train=0.7", "prepare.splits.validation=0.2"])
    assert (ok.prepare.splits.train, ok.prepare.splits.validation) == (0.7, 0.2)


def test_malformed_overrides_are_errors() -> None:
    with pytest.raises(SettingsError, match="not key=value"):
        load_settings("local", ["train.lora.rank"])
    with pytest.raises(SettingsError, match=r"train\.lora\.rank is a value, not a group"):
        load_settings("local", ["train.lora.rank.x=1"])
    with pytest.raises(SettingsError, match="unknown profile 'prod'"):
        load_settings("prod")


def test_cross_field_rules() -> None:
    with pytest.raises(SettingsError, match="gke profile needs a gs:// pipeline_root"):
        load_settings("gke", ["pipeline_root=/data/root"])
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert load_settings("gke", [f"model.revision={sha}"]).model.revision == sha
    with pytest.raises(SettingsError, match=r"kubernetes: .*trainer_image must be pinned"):
        load_settings("gke", ["kubernetes.trainer_image=example.com/uicap/trainer:latest"])


def test_every_family_the_settings_accept_is_implemented() -> None:
    for name in family_names():
        settings = load_settings("local", [f"model.family={name}"])
        assert settings.model.family == settings.train.config().family == name
    with pytest.raises(SettingsError, match=r"model: family 'minicpmv2_6' is not implemented"):
        load_settings("gke", ["model.family=minicpmv2_6"])


@pytest.mark.parametrize(
    "unread",
    [
        "model.trust_remote_code=true",
        "evaluate.general_holdout_revision=main",
        "evaluate.general_holdout_split=train",
        "kubernetes.namespace=kubeflow",
    ],
)
def test_settings_that_nothing_read_are_gone(unread: str) -> None:
    with pytest.raises(SettingsError, match=rf"{re.escape(unread.partition('=')[0])}: not a known"):
        load_settings("gke", [unread])


def test_the_step_groups_are_the_steps_own_configs() -> None:
    settings = load_settings("gke")
    assert type(settings.prepare) is PrepareConfig
    assert type(settings.gate) is GateConfig and type(settings.registry) is RegistryConfig
    assert type(settings.evaluate.config()) is EvaluateConfig
    assert settings.evaluate.config().max_new_tokens == settings.evaluate.max_new_tokens
    # Each travels to its component as one JSON parameter and comes back the same.
    assert PrepareConfig.from_parameter(settings.prepare.to_parameter()) == settings.prepare
    assert GateConfig.from_parameter(settings.gate.to_parameter()) == settings.gate
    assert RegistryConfig.from_parameter(settings.registry.to_parameter()) == settings.registry
    assert parse_config(settings.train.config().to_parameter()) == settings.train.config()


def test_settings_and_the_train_config_share_one_override_parser() -> None:
    with pytest.raises(SettingsError, match=r"train\.lora\.rank is a value, not a group"):
        load_settings("local", ["train.lora.rank.x=1"])
    with pytest.raises(ValueError, match=r"lora\.rank is a value, not a group"):
        parse_config("", ["lora.rank=4", "lora.rank.x=1"])


@pytest.mark.parametrize(
    "override",
    [
        "kubernetes.hf_token_secret.name=hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        "registry.tracking_uri=https://ops:hunter2@mlflow.example.com",
        "evaluate.general_holdout=https://storage.example.com/h.parquet?X-Goog-Signature=abc123",
        "model.base=https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
    ],
)
def test_secret_looking_values_are_refused_without_echoing_them(override: str) -> None:
    key, _, value = override.partition("=")
    profile = "gke" if key.startswith("kubernetes") else "local"
    with pytest.raises(SettingsError) as raised:
        load_settings(profile, [override])
    message = str(raised.value)
    assert f"{key}: " in message and "must not hold secrets" in message
    assert value not in message
    assert "hunter2" not in message and "hf_AbCd" not in message


def test_revisions_and_names_do_not_look_like_secrets() -> None:
    for text in (
        "1b77b749cb4c9936f35838ed8cb0f1b69957ad08",
        "http://mlflow.mlflow.svc.cluster.local:5000",
        "gs://uicap-ml-pipelines/uicap",
        "hf-token",
        "HF_TOKEN",
    ):
        assert secret_reason(text) is None, text


def test_any_yaml_path_loads_and_round_trips(tmp_path: Path) -> None:
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(load_settings("gke", ["train.lora.rank=64"]).to_yaml())
    again = load_settings(path=dumped)
    assert again.profile == "gke" and again.train.lora.rank == 64
    assert again == Settings.model_validate(yaml.safe_load(dumped.read_text()))

    broken = tmp_path / "broken.yaml"
    broken.write_text("profile: local\ntrain: [1, 2\n")
    with pytest.raises(SettingsError, match=r"broken\.yaml: not valid YAML"):
        load_settings(path=broken)
    with pytest.raises(SettingsError, match="no such settings file"):
        load_settings(path=tmp_path / "absent.yaml")


# --- the CLI ----------------------------------------------------------------------------------


def test_config_show_prints_resolved_yaml() -> None:
    result = CliRunner().invoke(
        app, ["config", "show", "--profile", "gke", "--set", "train.lora.rank=32"]
    )
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["profile"] == "gke"
    assert shown["train"]["lora"]["rank"] == 32
    assert shown == load_settings("gke", ["train.lora.rank=32"]).model_dump(mode="json")


def test_config_show_defaults_to_local_with_workdir_resolved() -> None:
    result = CliRunner().invoke(app, ["config", "show", "--set", "workdir=/w"])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["profile"] == "local"
    assert shown["model"]["base"] == "/w/base-model"


def test_config_show_bad_override_exits_2_naming_the_field() -> None:
    result = CliRunner().invoke(
        app, ["config", "show", "--set", "train.lora.rank=-1", "--set", "gate.colour=red"]
    )
    assert result.exit_code == 2
    assert "train.lora.rank: Input should be greater than or equal to 1" in result.stderr
    assert "gate.colour: not a known setting" in result.stderr
    assert result.stdout == ""


def test_train_takes_the_base_and_caption_length_from_model_and_evaluate() -> None:
    settings = load_settings("gke", ["model.revision=abc123", "evaluate.max_new_tokens=40"])
    config = settings.train.config()
    assert (config.family, config.base_revision) == ("minicpmv4_6", "abc123")
    assert config.generation.max_new_tokens == 40
    with pytest.raises(SettingsError, match=r"train\.family follows model\.family"):
        load_settings("gke", ["train.family=qwen2_vl"])
