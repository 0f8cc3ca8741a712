"""General (non-UI) captions in the same conversation format: the forgetting guard.

A `general` dataset (columns external_id, image, caption; no box) becomes train/val/test
files with one fixed prompt and no box drawn. Its test split is the general holdout the
promotion gate scores; its train split warms up the tiny local base. It has no ingest
step, so the record checks run here, with the same rules: an undecodable image, a blank
caption, or a missing or repeated external_id puts the record in the manifest's
quarantine list. Records are grouped by image hash when splitting.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from components.ingest.column_maps import ColumnMapError
from components.ingest.images import ImageDecodeError, normalise_image
from components.ingest.manifest import QuarantineEntry, SourceInfo
from components.ingest.publish import check_replaceable, staged_output
from components.ingest.run import quiet_datasets
from components.ingest.source import load_source
from components.ingest.validate import Rejected, image_cell_bytes
from components.prepare.boxing import DEFAULT_MAX_SIDE, bound_image
from components.prepare.conversations import (
    IMAGES_DIR,
    SplitFingerprint,
    conversation,
    image_name,
    write_splits,
)
from components.prepare.manifest import GeneralCounts, GeneralManifest, PrepareSettings
from components.prepare.prompt import GENERAL_PROMPT, GENERAL_PROMPT_TEMPLATE_VERSION
from components.prepare.render import PNG_COMPRESS_LEVEL
from components.prepare.splits import DEFAULT_FRACTIONS, SPLITS, assign_splits, parse_fractions

GENERAL_COLUMNS = ("external_id", "image", "caption")


def prepare_general(
    dataset: str,
    output: Path,
    *,
    revision: str | None = None,
    split: str = "train",
    max_image_side: int | None = DEFAULT_MAX_SIDE,
    split_fractions: str | Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> GeneralManifest:
    """Turn a general-captions dataset (Hub id or local folder) into prepared splits."""
    from datasets import Image as ImageFeature

    fractions = parse_fractions(split_fractions)
    output = Path(output)
    check_replaceable(output)
    with quiet_datasets():
        source = load_source(dataset, revision, split)
        missing = [c for c in GENERAL_COLUMNS if c not in source.rows.column_names]
        if missing:
            raise ColumnMapError(
                f"a general captions dataset needs columns {', '.join(GENERAL_COLUMNS)}; "
                f"{dataset} lacks {', '.join(missing)} (it has "
                f"{', '.join(source.rows.column_names)})"
            )
        rows = source.rows.select_columns(list(GENERAL_COLUMNS))
        rows = rows.cast_column("image", ImageFeature(decode=False))
        kept, quarantine = _check(rows)
        groups = assign_splits((digest for _, _, _, digest in kept), fractions, seed)
        with staged_output(output) as staging:
            (staging / IMAGES_DIR).mkdir()
            placed: dict[str, list[tuple[dict[str, Any], str]]] = {s: [] for s in SPLITS}
            for record_id, png, caption, digest in kept:
                name = image_name(record_id)
                image_sha256 = _write_image(png, staging / name, max_image_side)
                item = conversation(record_id, name, GENERAL_PROMPT, caption, external_id=record_id)
                placed[groups[digest]].append((item, image_sha256))
            fingerprint = SplitFingerprint()
            for split_name in SPLITS:
                for item, image_sha256 in placed[split_name]:
                    fingerprint.add(split_name, item, image_sha256)
            counts = write_splits(staging, {s: [i for i, _ in placed[s]] for s in SPLITS})
            manifest = GeneralManifest(
                prompt_template_version=GENERAL_PROMPT_TEMPLATE_VERSION,
                fingerprint=fingerprint.hexdigest(),
                source=SourceInfo(
                    dataset=source.dataset,
                    kind=source.kind,
                    requested_revision=source.requested_revision,
                    resolved_revision=source.resolved_revision,
                    split=source.split,
                    column_map={"name": "general", "columns": list(GENERAL_COLUMNS)},
                ),
                settings=PrepareSettings(
                    max_image_side=max_image_side,
                    html_budget=0,
                    split_fractions=fractions,
                    seed=seed,
                ),
                counts=GeneralCounts(
                    in_=len(kept) + len(quarantine),
                    kept=len(kept),
                    quarantined=len(quarantine),
                    **counts,
                ),
                quarantine=quarantine,
            )
            manifest.write(staging)
    return manifest


def _check(rows: Any) -> tuple[list[tuple[str, bytes, str, str]], list[QuarantineEntry]]:
    """(id, png bytes, caption, image digest) of valid records, and the quarantine lines."""
    kept: list[tuple[str, bytes, str, str]] = []
    quarantine: list[QuarantineEntry] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        raw_id = row["external_id"]
        record_id = raw_id.strip() if isinstance(raw_id, str) and raw_id.strip() else None
        try:
            data = image_cell_bytes(row["image"])
            try:
                image = normalise_image(data)
            except ImageDecodeError as error:
                raise Rejected("image", "undecodable", str(error)) from error
            caption = row["caption"].strip() if isinstance(row["caption"], str) else ""
            if not caption:
                raise Rejected("caption", "missing or blank")
            if record_id is None:
                raise Rejected("external_id", "missing or blank")
            if record_id in seen:
                raise Rejected("external_id", "duplicate", f"already kept at row {seen[record_id]}")
        except Rejected as rejected:
            quarantine.append(
                QuarantineEntry(
                    row=index,
                    external_id=record_id,
                    field=rejected.field,
                    reason=rejected.reason,
                    detail=rejected.detail,
                )
            )
            continue
        seen[record_id] = index
        kept.append((record_id, image.png, caption, hashlib.sha256(data).hexdigest()))
    return kept, quarantine


def _write_image(png: bytes, path: Path, max_side: int | None) -> str:
    """Bound and write one image; returns the sha256 of the file written."""
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        bounded, _ = bound_image(image, max_side)
    encoded = io.BytesIO()
    bounded.save(encoded, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    path.write_bytes(encoded.getvalue())
    return hashlib.sha256(encoded.getvalue()).hexdigest()
