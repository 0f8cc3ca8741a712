"""Turn a model reference into something that captions, and record exactly what it was.

The evaluation compares models that reach it in three shapes:

- a **model artifact** folder (``uicap_model.json`` next to ``adapter/`` or ``model/``):
  what `uicap train` writes; the base plus adapter are rebuilt by the artifact loader;
- an MLflow registry URI, ``models:/<name>@<alias>`` or ``models:/<name>/<version>``: the
  alias is pinned to its version first (so a moving alias cannot change what is
  evaluated halfway), then that version's files are downloaded and must hold one model
  artifact;
- anything else is a **plain model**: a local folder or a Hub id with an optional
  ``@revision``, loaded by its family (the untuned base, or a full model).

Every resolved model carries an `identity()` that evaluation.json stores: the reference as
given, what it resolved to, the base id and revision, the family, a sha256 of the trained
weights, the registry version, and the artifact's own metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from components.captioner.artifact import METADATA_FILE, ModelMetadata, read_metadata
from components.captioner.families import family_names, get_family
from components.captioner.weights import directory_sha256

if TYPE_CHECKING:
    from components.evaluate.generation import Captioning
    from components.evaluate.result import Identity

REGISTRY_SCHEME = "models:/"
TINY_MODEL_FILE = "uicap_tiny.json"  # written by components.demo.tiny_model
ARTIFACT_SEARCH_DEPTH = 2  # how deep a registry download may hold its model artifact


class ModelReferenceError(ValueError):
    """A model reference cannot be resolved; the message names the reference and the reason."""


@dataclass(frozen=True)
class RegistryVersion:
    """The registry entry a ``models:/`` reference pointed at when it was resolved."""

    uri: str
    name: str
    version: str
    alias: str | None
    run_id: str | None
    source: str | None


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference, resolved to a loadable location, plus what identifies it."""

    reference: str
    kind: Literal["artifact", "plain"]
    location: str  # a local folder (artifact or model) or a Hub id
    revision: str | None
    family: str
    metadata: ModelMetadata | None = None
    registry: RegistryVersion | None = None
    weights_sha256: str | None = None
    tiny_model: dict[str, Any] | None = None  # a tiny local model's build record

    @property
    def base_model(self) -> str:
        return self.metadata.base_model if self.metadata else self.location

    @property
    def base_revision(self) -> str | None:
        return self.metadata.base_revision if self.metadata else self.revision

    def identity(self) -> Identity:
        """What evaluation.json records about this model (`Identity`)."""
        from components.evaluate.result import Identity, RegistryRef

        # A registry download lives in a temporary folder; the pinned version names it.
        location = self.location
        if self.registry is not None:
            location = f"{REGISTRY_SCHEME}{self.registry.name}/{self.registry.version}"
        return Identity(
            reference=self.reference,
            kind=self.kind,
            location=location,
            revision=self.revision,
            family=self.family,
            base_model=self.base_model,
            base_revision=self.base_revision,
            weights_sha256=self.weights_sha256,
            registry=None if self.registry is None else RegistryRef(**self.registry.__dict__),
            metadata=self.metadata,
            tiny_model=self.tiny_model,
        )

    def load(self, device: str, dtype: Any) -> Captioning:
        """Load weights and processor onto `device`, in eval mode."""
        from components.evaluate.generation import Captioning

        family = get_family(self.family)
        if self.kind == "artifact":
            from components.captioner.artifact import load_captioner

            captioner = load_captioner(Path(self.location), device=device, dtype=dtype)
            return Captioning(family, captioner.model.eval(), captioner.processor)
        model, processor = family.load(self.location, self.revision, dtype=dtype, device=device)
        return Captioning(family, model.eval(), processor)


def split_revision(reference: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> (``org/name``, ``rev``); a local folder keeps any ``@`` it has."""
    if Path(reference).expanduser().exists():
        return reference, None
    name, at, revision = reference.rpartition("@")
    if at and name and revision and "/" not in revision:
        return name, revision
    return reference, None


def detect_family(folder: Path) -> str | None:
    """The family of a local plain model: the tiny model's marker, else config's model_type."""
    marker = folder / TINY_MODEL_FILE
    if marker.is_file():
        return str(json.loads(marker.read_text())["family"])
    config = folder / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type")
        if model_type in family_names():
            return str(model_type)
    return None


def _check_family(name: str, reference: str) -> str:
    try:
        get_family(name)
    except ValueError as error:
        raise ModelReferenceError(f"{reference}: {error}") from None
    return name


def resolve_model(
    reference: str,
    family: str | None = None,
    *,
    download_dir: Path | None = None,
    tracking_uri: str | None = None,
) -> ResolvedModel:
    """Resolve `reference`; `family` is used for plain models whose family cannot be read."""
    reference = reference.strip()
    if not reference:
        raise ModelReferenceError("empty model reference")
    if reference.startswith(REGISTRY_SCHEME):
        return _resolve_registry(reference, download_dir, tracking_uri)
    folder = Path(reference).expanduser()
    if (folder / METADATA_FILE).is_file():
        return _resolve_artifact(reference, folder)
    location, revision = split_revision(reference)
    local = Path(location).expanduser()
    tiny_model: dict[str, Any] | None = None
    if local.is_dir():
        location = str(local.resolve())
        detected = detect_family(local)
        if (local / TINY_MODEL_FILE).is_file():
            tiny_model = json.loads((local / TINY_MODEL_FILE).read_text())
        chosen = detected or family
    elif local.exists():
        raise ModelReferenceError(f"{reference}: is a file, not a model folder or Hub id")
    else:
        chosen = family
    if chosen is None:
        raise ModelReferenceError(
            f"{reference}: cannot tell its model family (no {METADATA_FILE}, no {TINY_MODEL_FILE}, "
            f"no known config model_type); pass one of {', '.join(family_names())}"
        )
    return ResolvedModel(
        reference=reference,
        kind="plain",
        location=location,
        revision=revision,
        family=_check_family(chosen, reference),
        tiny_model=tiny_model,
    )


def _resolve_artifact(reference: str, folder: Path) -> ResolvedModel:
    try:
        metadata = read_metadata(folder)
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise ModelReferenceError(f"{reference}: invalid {METADATA_FILE}: {error}") from None
    weights = folder / metadata.weights
    if not weights.is_dir():
        raise ModelReferenceError(
            f"{reference}: {METADATA_FILE} names weights {metadata.weights!r}, "
            f"but {weights} is not a folder"
        )
    return ResolvedModel(
        reference=reference,
        kind="artifact",
        location=str(folder.resolve()),
        revision=None,
        family=_check_family(metadata.family, reference),
        metadata=metadata,
        weights_sha256=directory_sha256(weights),
    )


def parse_registry_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/3`` -> (name, None, "3")."""
    body = uri[len(REGISTRY_SCHEME) :].strip("/")
    if "@" in body:
        name, _, alias = body.partition("@")
        if name and alias and "/" not in alias:
            return name, alias, None
    else:
        name, _, version = body.rpartition("/")
        if name and version.isdigit():
            return name, None, version
    raise ModelReferenceError(f"{uri}: expected models:/<name>@<alias> or models:/<name>/<version>")


def _resolve_registry(
    uri: str, download_dir: Path | None, tracking_uri: str | None
) -> ResolvedModel:
    """A registered version is a model artifact: its own metadata names the family."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_registry_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        entry = (
            client.get_model_version_by_alias(name, alias)
            if alias is not None
            else client.get_model_version(name, str(version))
        )
    except MlflowException as error:
        raise ModelReferenceError(f"{uri}: not in the registry: {error.message}") from None
    if download_dir is None:
        raise ModelReferenceError(f"{uri}: a registry model needs a download folder")
    target = download_dir / f"{name}-v{entry.version}"
    target.mkdir(parents=True, exist_ok=True)
    # The version's own artifact location, read through this client: a `models:/` URI
    # would be resolved against the process-wide registry, not the one asked for.
    source = client.get_model_version_download_uri(name, str(entry.version))
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(target), tracking_uri=tracking_uri
        )
    )
    found = sorted(
        path.parent
        for depth in range(ARTIFACT_SEARCH_DEPTH + 1)
        for path in local.glob("/".join(["*"] * depth + [METADATA_FILE]))
    )
    if len(found) != 1:
        raise ModelReferenceError(
            f"{uri} (version {entry.version}): expected one model artifact "
            f"({METADATA_FILE}) in its files, found {len(found)}: {[str(p) for p in found]}"
        )
    resolved = _resolve_artifact(uri, found[0])
    registry = RegistryVersion(
        uri=uri,
        name=name,
        version=str(entry.version),
        alias=alias,
        run_id=entry.run_id,
        source=entry.source,
    )
    return ResolvedModel(
        reference=uri,
        kind="artifact",
        location=resolved.location,
        revision=None,
        family=resolved.family,
        metadata=resolved.metadata,
        registry=registry,
        weights_sha256=resolved.weights_sha256,
    )


def base_of(candidate: ResolvedModel) -> str:
    """The base model reference a candidate artifact was trained from (``id@revision``)."""
    if candidate.metadata is None:
        return candidate.reference
    base = candidate.metadata.base_model
    revision = candidate.metadata.base_revision
    return f"{base}@{revision}" if revision and not Path(base).exists() else base
