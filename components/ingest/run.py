"""The ingest step: source dataset -> validated records in the contract + manifest.

Every source row ends up either in DIR/data or as a line in DIR/manifest.json's
quarantine list. When more than `max_quarantine_fraction` of the rows are quarantined the
source is too broken to train on: DIR then holds only the manifest (so the reasons can be
read) and QuarantineThresholdError is raised.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.ingest.column_maps import (
    ColumnMap,
    ColumnMapError,
    ResolvedColumnMap,
    parse_column_map,
)
from components.ingest.contract import contract_features
from components.ingest.manifest import (
    Gate,
    IngestCounts,
    IngestManifest,
    QuarantineEntry,
    RecordFingerprint,
    SourceInfo,
)
from components.ingest.publish import check_replaceable, staged_output
from components.ingest.source import Source, load_source
from components.ingest.validate import KeptRecord, RecordValidator, Rejected

if TYPE_CHECKING:
    from datasets import Dataset

DATA_DIR = "data"
DEFAULT_MAX_QUARANTINE_FRACTION = 0.05


class QuarantineThresholdError(RuntimeError):
    """Too many records were quarantined; the manifest was still written."""

    def __init__(self, manifest: IngestManifest, manifest_path: Path) -> None:
        counts, gate = manifest.counts, manifest.gate
        reasons = ", ".join(f"{reason} ({n})" for reason, n in manifest.common_reasons())
        super().__init__(
            f"quarantined {counts.quarantined} of {counts.in_} records "
            f"({gate.quarantined_fraction:.1%}), above the allowed "
            f"{gate.max_quarantine_fraction:.1%}; kept {counts.kept}. "
            f"Most common reasons: {reasons}. Every quarantined record is listed in "
            f"{manifest_path}"
        )
        self.manifest = manifest
        self.manifest_path = manifest_path


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence `datasets`' own progress bars (one per internal write) inside a step."""
    import datasets

    were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if were_on:
            datasets.enable_progress_bars()


def track(rows: Iterable[Any], total: int, description: str, enabled: bool) -> Iterable[Any]:
    """A rich progress bar on stderr when enabled; the plain iterable otherwise."""
    if not enabled:
        return rows
    from rich.console import Console
    from rich.progress import track as rich_track

    return rich_track(
        rows, total=total, description=description, console=Console(stderr=True), transient=True
    )


def ingest(
    dataset: str,
    output: Path,
    *,
    revision: str | None = None,
    split: str = "train",
    column_map: str | ColumnMap | None = None,
    max_quarantine_fraction: float = DEFAULT_MAX_QUARANTINE_FRACTION,
    progress: bool = False,
) -> IngestManifest:
    """Validate every record of `dataset` and write the kept ones plus a manifest to `output`.

    Raises QuarantineThresholdError (after writing the manifest) when too many records are
    quarantined; SourceError / ColumnMapError before writing anything when the source
    cannot be read or does not have the required columns.
    """
    if not 0.0 <= max_quarantine_fraction <= 1.0:
        raise ValueError(
            f"max_quarantine_fraction must be in [0, 1], got {max_quarantine_fraction}"
        )
    output = Path(output)
    mapping = column_map if isinstance(column_map, ColumnMap) else parse_column_map(column_map)
    check_replaceable(output)
    with quiet_datasets():
        source = load_source(dataset, revision, split)
        columns = mapping.resolve(list(source.rows.column_names))
        rows = _undecoded(source.rows, columns.image_column)
        validator = RecordValidator(columns, split, source.resolved_revision)
        run = _Run(validator)
        with staged_output(output) as staging:
            cache = staging / ".generator-cache"
            kept = _write_kept(run.kept_rows(track(rows, len(rows), "ingest", progress)), cache)
            manifest = run.manifest(source, columns, max_quarantine_fraction)
            if manifest.gate.passed:
                kept.save_to_disk(str(staging / DATA_DIR), num_shards=1 if not len(kept) else None)
            del kept
            shutil.rmtree(cache, ignore_errors=True)
            manifest.write(staging)
    if not manifest.gate.passed:
        raise QuarantineThresholdError(manifest, output / "manifest.json")
    return manifest


def _undecoded(rows: Dataset, image_column: str) -> Dataset:
    """The rows with the image column as raw bytes: decoding is ours to do, record by record."""
    from datasets import Image

    try:
        return rows.cast_column(image_column, Image(decode=False))
    except (TypeError, ValueError) as error:
        feature = rows.features[image_column]
        raise ColumnMapError(
            f"image column {image_column!r} holds {feature}, which is not an image, image "
            f"bytes or an image path: {error}"
        ) from error


class _Run:
    """Counts and quarantine lines of one ingest run, filled while rows stream through."""

    def __init__(self, validator: RecordValidator) -> None:
        self.validator = validator
        self.rows_in = 0
        self.kept = 0
        self.quarantine: list[QuarantineEntry] = []
        self.normalised = {"bbox_clipped": 0, "image_converted": 0}
        self.fingerprint = RecordFingerprint()

    def kept_rows(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for index, row in enumerate(rows):
            self.rows_in += 1
            try:
                record = self.validator.validate(row, index)
            except Rejected as rejected:
                self.quarantine.append(
                    QuarantineEntry(
                        row=index,
                        external_id=self.validator.external_id(row, index),
                        field=rejected.field,
                        reason=rejected.reason,
                        detail=rejected.detail,
                    )
                )
                continue
            yield self._keep(record)

    def _keep(self, record: KeptRecord) -> dict[str, Any]:
        self.kept += 1
        self.normalised["bbox_clipped"] += record.bbox_clipped
        self.normalised["image_converted"] += record.image.converted
        self.fingerprint.add(record.fields, record.image_sha256)
        return {**record.fields, "image": {"bytes": record.image.png, "path": None}}

    def manifest(
        self, source: Source, columns: ResolvedColumnMap, max_quarantine_fraction: float
    ) -> IngestManifest:
        quarantined = len(self.quarantine)
        fraction = quarantined / self.rows_in if self.rows_in else 0.0
        return IngestManifest(
            source=SourceInfo(
                dataset=source.dataset,
                kind=source.kind,
                requested_revision=source.requested_revision,
                resolved_revision=source.resolved_revision,
                split=source.split,
                column_map=columns.describe(),
            ),
            fingerprint=self.fingerprint.hexdigest(),
            counts=IngestCounts(in_=self.rows_in, kept=self.kept, quarantined=quarantined),
            normalised=self.normalised,
            gate=Gate(
                max_quarantine_fraction=max_quarantine_fraction,
                quarantined_fraction=round(fraction, 6),
                passed=fraction <= max_quarantine_fraction,
            ),
            quarantine=self.quarantine,
        )


def _write_kept(rows: Iterator[dict[str, Any]], cache: Path) -> Dataset:
    """Stream kept rows into an Arrow file (never all images in memory at once)."""
    from datasets import Dataset

    features = contract_features()
    first = next(rows, None)
    if first is None:
        return Dataset.from_dict({name: [] for name in features}, features=features)

    def chained() -> Iterator[dict[str, Any]]:
        yield first
        yield from rows

    # A fixed fingerprint: the cache folder is fresh, and hashing the generator is pointless.
    return Dataset.from_generator(
        chained, features=features, cache_dir=str(cache), fingerprint="uicap-ingest"
    )
