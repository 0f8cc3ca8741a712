"""The ingest manifest: what was read, what was kept, and every record that was not.

It is the contract between ingest and its readers (prepare, lineage tags, people), so it
is a typed model that checks its own invariants: in == kept + quarantined, and one
quarantine line per quarantined record.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

MANIFEST_NAME = "manifest.json"


class QuarantineEntry(BaseModel):
    """One record left out: where it was, which field was wrong, and how."""

    row: int
    external_id: str | None
    field: str
    reason: str  # short and stable, so reasons can be counted
    detail: str = ""


class SourceInfo(BaseModel):
    dataset: str
    kind: str
    requested_revision: str | None
    resolved_revision: str
    split: str
    column_map: dict[str, Any]


class IngestCounts(BaseModel):
    in_: int = Field(alias="in")
    kept: int
    quarantined: int

    model_config = {"populate_by_name": True}


class Gate(BaseModel):
    max_quarantine_fraction: float
    quarantined_fraction: float
    passed: bool


class IngestManifest(BaseModel):
    step: str = "ingest"
    source: SourceInfo
    fingerprint: str
    counts: IngestCounts
    normalised: dict[str, int] = Field(default_factory=dict)
    gate: Gate
    quarantine: list[QuarantineEntry]

    @model_validator(mode="after")
    def _every_record_accounted_for(self) -> IngestManifest:
        counts = self.counts
        if counts.in_ != counts.kept + counts.quarantined:
            raise ValueError(
                f"counts do not add up: in={counts.in_} != kept={counts.kept} + "
                f"quarantined={counts.quarantined}"
            )
        if len(self.quarantine) != counts.quarantined:
            raise ValueError(
                f"{counts.quarantined} records quarantined but {len(self.quarantine)} listed"
            )
        return self

    def common_reasons(self, top: int = 5) -> list[tuple[str, int]]:
        """The most frequent `field: reason` pairs, most frequent first."""
        counter = Counter(f"{entry.field}: {entry.reason}" for entry in self.quarantine)
        return counter.most_common(top)

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        path.write_text(self.model_dump_json(by_alias=True, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path) -> IngestManifest:
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no {MANIFEST_NAME}: is it an ingest output?")
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


class RecordFingerprint:
    """sha256 over the kept records in order: canonical JSON of the fields + image digest.

    Canonical JSON (sorted keys, no whitespace, UTF-8) and Python's shortest float repr make
    the text part identical on every machine. The image enters as the sha256 of its source
    bytes, not of the stored PNG, so a different zlib or Pillow cannot change the hash.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def add(self, fields: dict[str, Any], image_sha256: str) -> None:
        canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        self._digest.update(canonical.encode("utf-8"))
        self._digest.update(b"\0" + image_sha256.encode("ascii") + b"\n")

    def hexdigest(self) -> str:
        return f"sha256:{self._digest.hexdigest()}"
