"""Typed settings of a pipeline run: one YAML file per profile, then `key=value` overrides.

Both profiles run the same code; only sizes, locations and hardware differ, and all of
those live here. `profiles/local.yaml` runs on a laptop CPU; `profiles/gke.yaml` on an
H100 node pool. Every group forbids unknown keys, so a misspelt setting in a file or an
override is an error that names it, never a silently ignored value.

The groups of the steps are the steps' own configs (`prepare`: PrepareConfig, `train`:
TrainConfig, `evaluate`: EvaluateConfig, `gate`: GateConfig, `registry`: RegistryConfig),
defined next to the code that uses them; this module composes them and adds what only
the pipeline knows (the data source, the base model, the cluster, the notification).

Settings hold no secrets: only the names of Kubernetes Secrets and of environment
variables that carry them. Values that look like credentials are refused, so printing
the settings (`uicap config show`) or logging them to MLflow cannot leak one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from components.captioner.families import family_names
from components.config_overrides import OverrideError, apply_override
from components.evaluate.config import EvaluateConfig
from components.plan.config import PlanConfig
from components.prepare.config import PrepareConfig
from components.register.config import GateConfig, RegistryConfig
from components.train.config import TrainConfig

PROFILES_DIR = Path(__file__).with_name("profiles")
PROFILES = ("local", "gke")
WORKDIR_PLACEHOLDER = "{workdir}"

Fraction = Annotated[float, Field(ge=0, le=1)]
# A Kubernetes object name (DNS-1123 subdomain), e.g. a Secret or a PVC.
KubernetesName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", max_length=253)
]
EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]
# A resource quantity as Kubernetes writes it: "64Gi", "500m", "8".
Quantity = Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")]


class SettingsError(ValueError):
    """Settings that cannot be used; the message names each offending dotted key and why."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- groups ---------------------------------------------------------------------------------


class DataSettings(_Group):
    """Where the labelled interactions come from and how their columns map to the contract."""

    # A Hugging Face dataset id, or a local folder that `datasets.load_dataset` reads.
    dataset: str = "{workdir}/data/ui"
    # Branch, tag or commit of a Hub dataset; runs record the commit it resolved to.
    revision: str = "main"
    split: str = "train"
    # A named mapping known to the ingest step (e.g. "wave-ui"), applied first...
    column_map_preset: str | None = None
    # ...then these entries, source column -> contract column (e.g. purpose: summary).
    column_map: dict[str, str] = Field(default_factory=dict)
    # The run fails when more than this fraction of records is quarantined as invalid.
    max_quarantine_fraction: Fraction = 0.05


class ModelSettings(_Group):
    """The base model that the adapters are trained on."""

    # A Hub id or a local folder (the local profile builds a tiny model there).
    base: str = "{workdir}/base-model"
    # Branch, tag or commit of a Hub model; ignored for a local folder.
    revision: str | None = None
    # One of the implemented families (components/captioner/families), nothing else.
    family: str = "minicpmv4_6"

    @model_validator(mode="after")
    def _family_is_implemented(self) -> ModelSettings:
        if self.family not in family_names():
            known = ", ".join(family_names())
            raise ValueError(f"family {self.family!r} is not implemented; use one of {known}")
        return self


class TrainSettings(TrainConfig):
    """The fine-tune: `components.train.config.TrainConfig` (what `uicap train --config`
    reads), plus how many processes run it.

    The base model's family and revision come from the `model` group, and the generation
    length from `evaluate`; `Settings` fills them in, so each is set in one place.
    """

    # Processes (GPUs) per node for torchrun.
    nproc_per_node: int = Field(1, ge=1)

    def config(self) -> TrainConfig:
        """The training config as the train step receives it."""
        return TrainConfig.model_validate(self.model_dump(exclude={"nproc_per_node"}))


class EvaluateSettings(EvaluateConfig):
    """The evaluate step's config (`components.evaluate.config.EvaluateConfig`), plus the
    forgetting holdout the pipeline imports for it."""

    # A prepared general-captions folder (local or gs://, as `uicap prepare-general`
    # writes it): the guard against forgetting.
    general_holdout: str = "{workdir}/data/general"

    def config(self) -> EvaluateConfig:
        """The evaluate config as the evaluate step receives it."""
        return EvaluateConfig.model_validate(self.model_dump(exclude={"general_holdout"}))


def _default_registry() -> RegistryConfig:
    return RegistryConfig(tracking_uri="sqlite:///{workdir}/mlflow.db")


class SecretEnv(_Group):
    """Keys of a Kubernetes Secret exposed to a container as environment variables."""

    name: KubernetesName
    key_to_env: dict[str, EnvVarName] = Field(min_length=1)


class Toleration(_Group):
    key: str
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


def _gpu_tolerations() -> list[Toleration]:
    # GKE taints GPU nodes with nvidia.com/gpu=present:NoSchedule.
    return [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]


class KubernetesSettings(_Group):
    """Placement, images and credentials of the pipeline's pods (gke profile)."""

    # The Kubernetes service account of the pods, bound to a Google service account
    # through Workload Identity (GCS and Artifact Registry access, no key files).
    service_account: KubernetesName | None = None
    # Pinned by tag or digest (never `latest`): a rerun must run the same code.
    runtime_image: str
    trainer_image: str
    accelerator_type: str = "nvidia.com/gpu"
    accelerator_count: int = Field(1, ge=1)
    node_selector: dict[str, str] = Field(
        default_factory=lambda: {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    )
    tolerations: list[Toleration] = Field(default_factory=_gpu_tolerations)
    train_cpu_limit: Quantity = "16"
    train_memory_limit: Quantity = "128Gi"
    hf_token_secret: SecretEnv = Field(
        default_factory=lambda: SecretEnv(name="hf-token", key_to_env={"token": "HF_TOKEN"})
    )
    mlflow_credentials_secret: SecretEnv | None = None
    # A claim mounted as HF_HOME, so weights download once, not per run (the manifests'
    # uicap-hf-cache is ReadWriteOnce: one GPU node uses it at a time).
    hf_cache_pvc: KubernetesName | None = None
    # The claim can be mounted by several nodes at once (e.g. Filestore): only then does a
    # TrainJob of several nodes mount it; otherwise each of its nodes downloads the base.
    hf_cache_read_write_many: bool = False
    # /dev/shm for data-loader workers and NCCL (a memory-backed emptyDir).
    shm_size: Quantity = "16Gi"
    train_timeout_seconds: int = Field(6 * 3600, ge=60)
    retries: int = Field(1, ge=0)
    # `pod`: the train task is the training pod (one node). `trainjob`: the train task is a
    # small CPU launcher that creates a Kubeflow Trainer TrainJob of `train_nodes` nodes,
    # each with `accelerator_count` GPUs, and waits for it.
    train_launcher: Literal["pod", "trainjob"] = "pod"
    train_nodes: int = Field(1, ge=1)
    # The TrainingRuntime the TrainJob names (manifests/base/pipeline/ ships this one).
    training_runtime: KubernetesName = "uicap-torch-distributed"
    # A Kueue LocalQueue: the TrainJob waits, suspended, until Kueue admits it.
    kueue_queue: KubernetesName | None = None
    # The TrainJob's namespace; None: the launcher pod's own (the pipeline's namespace).
    trainjob_namespace: KubernetesName | None = None

    @model_validator(mode="after")
    def _nodes_need_a_trainjob(self) -> KubernetesSettings:
        if self.train_nodes > 1 and self.train_launcher != "trainjob":
            raise ValueError(
                f"train_nodes={self.train_nodes} needs train_launcher=trainjob: "
                "the pod launcher trains on one node"
            )
        if self.kueue_queue and self.train_launcher != "trainjob":
            raise ValueError("kueue_queue applies to the trainjob launcher only")
        return self

    @model_validator(mode="after")
    def _images_are_pinned(self) -> KubernetesSettings:
        for field in ("runtime_image", "trainer_image"):
            reference = getattr(self, field)
            name, _, tag = reference.rpartition(":")
            if "@sha256:" in reference:
                continue
            if not name or "/" in tag or tag == "latest":
                raise ValueError(f"{field} must be pinned to a tag or digest, not {reference!r}")
        return self


class StepImages(_Group):
    """The images the steps run in off a cluster (`uicap run --runner docker`): the
    runtime image for the CPU steps, the trainer image for train and evaluate. On a
    cluster the kubernetes group names them; unset, the steps run in this environment."""

    runtime: str
    trainer: str


class NotifySettings(_Group):
    """Where the run's outcome (promoted or why not) is posted."""

    # Name of the env var holding the webhook URL: a Slack-style URL is a credential.
    webhook_url_env: EnvVarName | None = None
    # On a cluster, the Secret that provides that env var.
    webhook_secret: SecretEnv | None = None

    @model_validator(mode="after")
    def _secret_provides_the_env_var(self) -> NotifySettings:
        if self.webhook_secret is None:
            return self
        if self.webhook_url_env not in self.webhook_secret.key_to_env.values():
            raise ValueError("webhook_secret must map one of its keys to webhook_url_env")
        return self


class Settings(_Group):
    """Everything a pipeline run needs to know, for one profile."""

    profile: Literal["local", "gke"]
    # Local working folder for samples, the local model, MLflow's SQLite file and outputs.
    workdir: str = ".uicap"
    # Where KFP writes artifacts: a local folder or gs://bucket/prefix.
    pipeline_root: str = "{workdir}/pipeline-root"
    data: DataSettings = Field(default_factory=DataSettings)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    model: ModelSettings = Field(default_factory=ModelSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    gate: GateConfig = Field(default_factory=GateConfig)
    # Without a profile, MLflow is a SQLite file in the work folder.
    registry: RegistryConfig = Field(default_factory=_default_registry)
    kubernetes: KubernetesSettings | None = None
    images: StepImages | None = None
    notify: NotifySettings = Field(default_factory=NotifySettings)
    # What `uicap plan` (and compile/submit) assume about the GPU, its price and the data.
    plan: PlanConfig = Field(default_factory=PlanConfig)

    @model_validator(mode="after")
    def _train_follows_model_and_evaluate(self) -> Settings:
        """One place for each fact: the base in `model`, the caption length in `evaluate`."""
        derived = {
            "family": (self.model.family, "model.family"),
            "base_revision": (self.model.revision, "model.revision"),
        }
        for name, (value, home) in derived.items():
            if name in self.train.model_fields_set and getattr(self.train, name) != value:
                raise ValueError(f"train.{name} follows {home}: set {home} instead")
            setattr(self.train, name, value)
        self.train.generation.max_new_tokens = self.evaluate.max_new_tokens
        return self

    @model_validator(mode="after")
    def _gke_runs_on_shared_services(self) -> Settings:
        if WORKDIR_PLACEHOLDER in self.workdir:
            raise ValueError(f"workdir cannot contain {WORKDIR_PLACEHOLDER}")
        if self.profile != "gke":
            return self
        # Pods share nothing but GCS and the network: no local roots, no SQLite file.
        if not self.pipeline_root.startswith("gs://"):
            raise ValueError(
                f"the gke profile needs a gs:// pipeline_root, not {self.pipeline_root!r}"
            )
        if not (self.registry.tracking_uri or "").startswith(("http://", "https://")):
            raise ValueError("the gke profile needs an http(s) registry.tracking_uri (a server)")
        if self.kubernetes is None:
            raise ValueError("the gke profile needs the kubernetes group")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(
            self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=1000
        )


# --- loading --------------------------------------------------------------------------------


def load_settings(
    profile: str = "local", overrides: Sequence[str] = (), path: Path | None = None
) -> Settings:
    """The settings of `profile` (or of the YAML at `path`), with `key=value` overrides.

    Override values are YAML scalars (`train.full=true`, `train.deepspeed=null`) or flow
    collections (`kubernetes.node_selector={pool: h100}`). `{workdir}` in any value is
    replaced by the final `workdir` after the overrides.
    """
    if path is None:
        if profile not in PROFILES:
            raise SettingsError(f"unknown profile {profile!r}: use one of {', '.join(PROFILES)}")
        path = PROFILES_DIR / f"{profile}.yaml"
    source = str(path)
    data = _read_yaml(Path(path))
    data.setdefault("profile", profile)
    for override in overrides:
        try:
            apply_override(data, override)
        except OverrideError as error:
            raise SettingsError(str(error)) from None
    _refuse_secrets(data, source)
    settings = _validate(data, source)
    resolved = _replace_workdir(settings.model_dump(mode="python"), settings.workdir)
    return _validate(resolved, source)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such settings file") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML: {error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"{path}: settings must be a mapping, not {type(loaded).__name__}")
    return loaded


def _validate(data: dict[str, Any], source: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        lines = [_describe(item) for item in error.errors(include_url=False)]
        raise SettingsError(f"invalid settings ({source}):\n  " + "\n  ".join(lines)) from None


def _describe(item: Any) -> str:
    where = ".".join(str(part) for part in item["loc"]) or "settings"
    if item["type"] == "extra_forbidden":
        return f"{where}: not a known setting"
    message = item["msg"].removeprefix("Value error, ")
    value = item.get("input")
    if isinstance(value, (str, int, float, bool)) and item["type"] != "missing":
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return f"{where}: {message} (got {shown})"
    return f"{where}: {message}"


def _replace_workdir(value: Any, workdir: str) -> Any:
    if isinstance(value, str):
        return value.replace(WORKDIR_PLACEHOLDER, workdir)
    if isinstance(value, dict):
        return {key: _replace_workdir(item, workdir) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_workdir(item, workdir) for item in value]
    return value


# --- credentials ----------------------------------------------------------------------------

# Shapes of well-known credentials; a match anywhere in a value refuses the settings.
_TOKEN_SHAPES = re.compile(
    r"hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}"  # GitHub
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI-style API keys
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}"  # AWS, Google
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
_SECRET_QUERY_KEYS = re.compile(
    r"((access|auth|id|refresh)_)?token|(client_)?secret|password|passwd|api[-_]?key|key"
    r"|sig|signature|x-goog-signature|x-amz-signature|x-amz-security-token",
    re.I,
)
_SECRET_URL_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com", "webhook.office.com")


def secret_reason(value: str) -> str | None:
    """Why `value` looks like a credential, or None; the reason never quotes the value."""
    if _TOKEN_SHAPES.search(value):
        return "it has the shape of an access token or key"
    if "://" in value:
        try:
            url = urlsplit(value)
        except ValueError:
            return None
        if url.password:
            return "the URL carries a password"
        if any(_SECRET_QUERY_KEYS.fullmatch(name) for name, _ in parse_qsl(url.query)):
            return "the URL carries a credential in its query"
        if (url.hostname or "").endswith(_SECRET_URL_HOSTS):
            return "a webhook URL is itself a credential"
    return None


def _refuse_secrets(data: dict[str, Any], source: str) -> None:
    found = [
        f"{where}: {reason}; put it in a Kubernetes Secret or an env var and give its name"
        for where, text in _strings(data, ())
        if (reason := secret_reason(text))
    ]
    if found:
        raise SettingsError(f"settings must not hold secrets ({source}):\n  " + "\n  ".join(found))


def _strings(value: Any, where: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield ".".join(where) or "settings", value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(str(key), (*where, "<key>"))
            yield from _strings(item, (*where, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*where, str(index)))
