"""The prepare manifest: what training reads about its data, and where it came from.

Training reads `fingerprint` (of the prepared output: prompts, answers, boxed images) and
`prompt_template_version`. The ingest manifest is carried whole under `ingest`, so the
prepared folder alone gives the full lineage: source revision, ingest fingerprint and
every quarantined record with its reason.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

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
    split_fractions: tuple[float, float, float]
    seed: int


class PrepareManifest(BaseModel):
    step: str = "prepare"
    prompt_template_version: str
    fingerprint: str
    input_fingerprint: str
    settings: PrepareSettings
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

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        path.write_text(self.model_dump_json(by_alias=True, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path) -> PrepareManifest:
        return cls.model_validate_json((folder / MANIFEST_NAME).read_text(encoding="utf-8"))


class GeneralCounts(BaseModel):
    in_: int = Field(alias="in")
    kept: int
    quarantined: int
    train: int
    val: int
    test: int

    model_config = {"populate_by_name": True}


class GeneralManifest(BaseModel):
    """Manifest of a prepared general-captions set (no ingest step: checks happen here)."""

    step: str = "prepare-general"
    prompt_template_version: str
    fingerprint: str
    source: SourceInfo
    settings: PrepareSettings
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

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        path.write_text(self.model_dump_json(by_alias=True, indent=1) + "\n", encoding="utf-8")
        return path
