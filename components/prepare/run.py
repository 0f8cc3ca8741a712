"""The prepare step: ingest output -> boxed images, prompts, conversations, splits.

Planning (which records, which split, which file) happens first, in this process, from
the metadata columns and one pass over the image bytes for their hashes. Rendering (the
expensive part) then runs per screen in worker processes (see render). The output
folder is published all at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.content_hash import PinMismatchError
from components.ingest.contract import CONTRACT_COLUMNS, METADATA_COLUMNS
from components.ingest.manifest import IngestManifest
from components.ingest.publish import check_replaceable, staged_output
from components.ingest.run import DATA_DIR, quiet_datasets
from components.ingest.validate import image_cell_bytes
from components.prepare.config import PrepareConfig
from components.prepare.conversations import (
    IMAGES_DIR,
    SplitFingerprint,
    conversation,
    image_name,
    write_splits,
)
from components.prepare.manifest import (
    Duplicate,
    PrepareCounts,
    PrepareManifest,
    PrepareSettings,
)
from components.prepare.prompt import PROMPT_TEMPLATE_VERSION
from components.prepare.render import (
    PNG_COMPRESS_LEVEL,
    RecordJob,
    RenderedRecord,
    RenderSettings,
    ScreenJob,
    render_all,
)
from components.prepare.splits import SPLITS, assign_splits
from components.prepare.token_count import BaseTokenizer, counted_in, html_counter

if TYPE_CHECKING:
    from datasets import Dataset

HASH_BATCH = 256


class PrepareInputError(ValueError):
    """The input folder is not a usable ingest output."""


@dataclass(frozen=True)
class Plan:
    """What prepare will write: kept record indexes per image, and each record's split."""

    rows: dict[str, list[Any]]  # metadata columns
    image_digests: list[str]
    kept: list[int]
    split_of: dict[int, str]
    duplicates: list[Duplicate]
    groups: dict[str, int]


def prepare(
    input_dir: Path,
    output: Path,
    config: PrepareConfig | None = None,
    *,
    tokenizer: BaseTokenizer | None = None,
    progress: bool = False,
    png_compress_level: int = PNG_COMPRESS_LEVEL,
) -> PrepareManifest:
    """Turn an ingest output folder into the MiniCPM-V fine-tuning format in `output`.

    `config` (default: `PrepareConfig()`) holds everything that shapes the output, plus
    the worker count, which only changes how fast it is written. `tokenizer` is the base
    model's, which the HTML budget counts in (`html_tokens: model`, the default).
    """
    config = config or PrepareConfig()
    try:
        # Loaded here once, so a missing or changed tokenizer fails before any rendering.
        html_counter(config.html_tokens, tokenizer)
    except (OSError, ValueError, PinMismatchError) as error:
        raise PrepareInputError(str(error)) from error
    used_tokenizer = counted_in(config.html_tokens, tokenizer)
    fractions = config.splits.as_tuple()
    max_image_side, html_budget = config.max_image_side, config.html_budget_tokens
    input_dir, output = Path(input_dir), Path(output)
    ingest_manifest = _read_ingest_manifest(input_dir)
    check_replaceable(output)
    with quiet_datasets():
        records = load_ingested(input_dir)
        if not len(records):
            raise PrepareInputError(f"{input_dir / DATA_DIR} holds no records to prepare")
        plan = plan_records(records, fractions, config.seed)
        with staged_output(output) as staging:
            (staging / IMAGES_DIR).mkdir()
            settings = RenderSettings(
                staging,
                max_image_side,
                html_budget,
                png_compress_level,
                html_tokens=config.html_tokens,
                tokenizer=tokenizer if used_tokenizer else None,
            )
            jobs = _screen_jobs(records, plan)
            with _progress(len(plan.kept), progress) as advance:
                rendered = render_all(jobs, settings, config.workers, on_done=advance)
            counts, fingerprint = _write_conversations(staging, plan, rendered)
            manifest = PrepareManifest(
                prompt_template_version=PROMPT_TEMPLATE_VERSION,
                fingerprint=fingerprint,
                input_fingerprint=ingest_manifest.fingerprint,
                settings=PrepareSettings(
                    max_image_side=max_image_side,
                    html_budget=html_budget,
                    html_tokens=config.html_tokens,
                    html_tokenizer=used_tokenizer,
                    split_fractions=fractions,
                    seed=config.seed,
                ),
                counts=PrepareCounts(
                    in_=len(plan.image_digests),
                    duplicates_removed=len(plan.duplicates),
                    kept=len(plan.kept),
                    **counts,
                ),
                groups=plan.groups,
                duplicates=plan.duplicates,
                ingest=ingest_manifest,
            )
            manifest.write(staging)
    return manifest


def _write_conversations(
    folder: Path, plan: Plan, rendered: dict[int, RenderedRecord]
) -> tuple[dict[str, int], str]:
    """Write the split files; returns their counts and the prepared output's fingerprint."""
    placed: dict[str, list[tuple[int, dict[str, Any]]]] = {split: [] for split in SPLITS}
    for index in plan.kept:
        item = _item(plan.rows, index, rendered[index].prompt)
        placed[plan.split_of[index]].append((index, item))
    fingerprint = SplitFingerprint()
    for split in SPLITS:
        for index, item in placed[split]:
            fingerprint.add(split, item, rendered[index].png_sha256)
    counts = write_splits(folder, {s: [item for _, item in placed[s]] for s in SPLITS})
    return counts, fingerprint.hexdigest()


def _read_ingest_manifest(input_dir: Path) -> IngestManifest:
    try:
        manifest = IngestManifest.read(input_dir)
    except FileNotFoundError as error:
        raise PrepareInputError(str(error)) from error
    if not manifest.gate.passed:
        raise PrepareInputError(
            f"{input_dir} is the output of an ingest run that failed its quarantine gate "
            f"({manifest.counts.quarantined} of {manifest.counts.in_} quarantined); "
            "it holds no data to prepare"
        )
    if not (input_dir / DATA_DIR).is_dir():
        raise PrepareInputError(f"{input_dir} has a manifest but no {DATA_DIR}/ folder")
    return manifest


def load_ingested(input_dir: Path) -> Dataset:
    from datasets import Image, load_from_disk

    records = load_from_disk(str(input_dir / DATA_DIR))
    missing = [c for c in CONTRACT_COLUMNS if c not in records.column_names]
    if missing:
        raise PrepareInputError(
            f"{input_dir / DATA_DIR} lacks column(s) {', '.join(missing)}: not an ingest output"
        )
    return records.cast_column("image", Image(decode=False))


def plan_records(records: Dataset, fractions: Sequence[float], seed: int) -> Plan:
    """Hash images, drop exact duplicates, group by screen, assign splits."""
    rows = records.select_columns(list(METADATA_COLUMNS)).to_dict()
    digests: list[str] = []
    for batch in records.select_columns(["image"]).iter(batch_size=HASH_BATCH):
        digests.extend(_sha256(image_cell_bytes(cell)) for cell in batch["image"])
    first_seen: dict[tuple[Any, ...], int] = {}
    kept: list[int] = []
    duplicates: list[Duplicate] = []
    for index, digest in enumerate(digests):
        key = (digest, tuple(rows["bbox"][index]), rows["summary"][index])
        if key in first_seen:
            original = rows["external_id"][first_seen[key]]
            duplicates.append(
                Duplicate(external_id=rows["external_id"][index], duplicate_of=original)
            )
            continue
        first_seen[key] = index
        kept.append(index)
    group_of = {index: rows["screen_id"][index] or f"image:{digests[index]}" for index in kept}
    split_of_group = assign_splits(group_of.values(), fractions, seed)
    split_of = {index: split_of_group[group] for index, group in group_of.items()}
    groups = {split: sum(1 for s in split_of_group.values() if s == split) for split in SPLITS}
    return Plan(rows, digests, kept, split_of, duplicates, groups)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _screen_jobs(records: Dataset, plan: Plan) -> Iterator[ScreenJob]:
    """One job per distinct image, in order of first appearance; bytes read lazily."""
    by_image: dict[str, list[int]] = {}
    for index in plan.kept:
        by_image.setdefault(plan.image_digests[index], []).append(index)
    images = records.select_columns(["image"])
    rows = plan.rows
    for indexes in by_image.values():
        jobs = tuple(
            RecordJob(
                index=index,
                bbox=tuple(rows["bbox"][index]),
                image_name=image_name(rows["external_id"][index]),
                action_type=rows["action_type"][index],
                element_type=rows["element_type"][index],
                text=rows["text"][index],
                html=rows["html"][index],
            )
            for index in indexes
        )
        yield ScreenJob(image_cell_bytes(images[indexes[0]]["image"]), jobs)


def _item(rows: dict[str, list[Any]], index: int, prompt: str) -> dict[str, Any]:
    record_id = rows["external_id"][index]
    return conversation(
        record_id,
        image_name(record_id),
        prompt,
        rows["summary"][index],
        external_id=record_id,
        screen_id=rows["screen_id"][index],
        element_type=rows["element_type"][index],
    )


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`: a rich progress bar over records, or a no-op when disabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("prepare", total=total)
        yield lambda n: bar.update(task, advance=n)
