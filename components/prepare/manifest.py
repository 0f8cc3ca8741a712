"""The manifest of a prepared folder: what its readers learn about the data, and where it came from.

Two steps write prepared folders: `prepare` (UI records from ingest: `PrepareManifest`)
and `prepare-general` (general captions: `GeneralManifest`). Both share `PreparedManifest`,
the part training, evaluation and registration read: `fingerprint` (of the prepared
output: prompts, answers, images), `prompt_template_version` and the `settings` it was
prepared with; both also give `source`, the dataset and revision the records came from.
`read_manifest` is the one reader; the `step` field tells the two apart.

The UI manifest carries the ingest manifest whole under `ingest`, so the prepared
folder alone gives the full lineage: source revision, ingest fingerprint and every
quarantined record with its reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from components.ingest.manifest import IngestManifest, QuarantineEntry, SourceInfo

MANIFEST_NAME = "manifest.json"


class PrepareCounts(BaseModel):
    in_: int = Field(alias="in")
    duplicates_removed: int
    kept: int
    train: int
    val: int
    test: int

    model_config = {"populate_by_name": True}


class Duplicate(BaseModel):
    """A record left out because an earlier one has the same image, box and summary."""

    external_id: str
    duplicate_of: str


class PrepareSettings(BaseModel):
    max_image_side: int | None
    html_budget: int
    # What the budget counted, and whose tokenizer (None: the model-free pattern).
    html_tokens: str = "pattern"
    html_tokenizer: str | None = None
    split_fractions: tuple[float, float, float]
    seed: int


class PreparedManifest(BaseModel):
    """What every prepared folder's manifest says, whichever step wrote it."""

    step: str
    prompt_template_version: str
    fingerprint: str
    settings: PrepareSettings

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        path.write_text(self.model_dump_json(by_alias=True, indent=1) + "\n", encoding="utf-8")
        return path


class PrepareManifest(PreparedManifest):
    """Manifest of prepared UI records (the `prepare` step, after ingest)."""

    step: Literal["prepare"] = "prepare"
    input_fingerprint: str
    counts: PrepareCounts
    groups: dict[str, int]
    duplicates: list[Duplicate]
    ingest: IngestManifest

    @model_validator(mode="after")
    def _every_record_accounted_for(self) -> PrepareManifest:
        counts = self.counts
        if counts.in_ != counts.kept + counts.duplicates_removed:
            raise ValueError(f"in={counts.in_} != kept={counts.kept} + duplicates")
        if counts.kept != counts.train + counts.val + counts.test:
            raise ValueError(f"kept={counts.kept} != train + val + test")
        if len(self.duplicates) != counts.duplicates_removed:
            raise ValueError("every removed duplicate must be listed")
        return self

    @property
    def source(self) -> SourceInfo:
        """The dataset (and resolved revision) the records came from, as ingest read it."""
        return self.ingest.source

    @classmethod
    def read(cls, folder: Path) -> PrepareManifest:
        manifest = read_manifest(folder)
        if not isinstance(manifest, PrepareManifest):
            raise ValueError(f"{folder} holds {manifest.step} output, not prepared UI records")
        return manifest


class GeneralCounts(BaseModel):
    in_: int = Field(alias="in")
    kept: int
    quarantined: int
    train: int
    val: int
    test: int

    model_config = {"populate_by_name": True}


class GeneralManifest(PreparedManifest):
    """Manifest of a prepared general-captions set (no ingest step: checks happen here)."""

    step: Literal["prepare-general"] = "prepare-general"
    source: SourceInfo  # no ingest step: the source is recorded here
    counts: GeneralCounts
    quarantine: list[QuarantineEntry]

    @model_validator(mode="after")
    def _every_record_accounted_for(self) -> GeneralManifest:
        counts = self.counts
        if counts.in_ != counts.kept + counts.quarantined:
            raise ValueError(f"in={counts.in_} != kept={counts.kept} + quarantined")
        if counts.kept != counts.train + counts.val + counts.test:
            raise ValueError(f"kept={counts.kept} != train + val + test")
        if len(self.quarantine) != counts.quarantined:
            raise ValueError("every quarantined record must be listed")
        return self


AnyManifest = Annotated[PrepareManifest | GeneralManifest, Field(discriminator="step")]
_ANY_MANIFEST: TypeAdapter[PrepareManifest | GeneralManifest] = TypeAdapter(AnyManifest)


def read_manifest(folder: Path) -> PrepareManifest | GeneralManifest:
    """The manifest of a prepared folder, checked; errors name the folder and the fields."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {MANIFEST_NAME}: is it a prepared directory?")
    try:
        return _ANY_MANIFEST.validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors(include_url=False)
        )
        raise ValueError(f"{path} is not a prepared folder's manifest: {problems}") from None
