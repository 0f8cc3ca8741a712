"""Draw, encode and write the boxed images, one screen per task, in worker processes.

Where the time goes, and what this module does about it:
- decoding: records of a screen share one image, so a task is a screen: it decodes
  (and resizes) the screenshot once and draws each record's box on a copy;
- PNG encoding dominates what is left, so images are written at compress level 1 (the
  pixels are the same at every level; files are somewhat larger);
- no Arrow round trip: workers get the encoded bytes and plain record fields, and write
  their PNGs straight into the output folder; only small results come back.
Workers come from a `forkserver` that has imported this module once: safe next to the
progress bar's thread (unlike fork), without each worker paying the imports (unlike
spawn). The forkserver listens on a Unix socket in multiprocessing's temp folder, and
such a path has at most 107 bytes: under a deeper TMPDIR (`make run` and kfp.local put
it in the work folder) workers are spawned instead. At most a few screens per worker are
in flight, so memory stays flat on large datasets.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.util
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from components.prepare.boxing import bound_image, outline_box, scale_bbox
from components.prepare.prompt import build_prompt
from components.prepare.token_count import BaseTokenizer, HtmlTokens, html_counter

PNG_COMPRESS_LEVEL = 1
TASKS_PER_WORKER = 4
# Linux's sun_path holds 108 bytes with the NUL (macOS's 104); the forkserver names its
# socket "listener-" and 8 random characters.
SOCKET_PATH_MAX = 107
LISTENER_NAME_BYTES = len("/listener-") + 8

log = logging.getLogger("uicap.prepare")


@dataclass(frozen=True)
class RecordJob:
    """One record to render: its position, box and prompt fields, and its image's name."""

    index: int
    bbox: tuple[float, float, float, float]
    image_name: str
    action_type: str
    element_type: str
    text: str
    html: str


@dataclass(frozen=True)
class ScreenJob:
    """The records that share one encoded image."""

    image_bytes: bytes
    records: tuple[RecordJob, ...]


@dataclass(frozen=True)
class RenderSettings:
    output: Path
    max_side: int | None
    html_budget: int
    compress_level: int = PNG_COMPRESS_LEVEL
    html_tokens: HtmlTokens = "pattern"
    tokenizer: BaseTokenizer | None = None  # loaded once per worker process


@dataclass(frozen=True)
class RenderedRecord:
    index: int
    prompt: str
    bbox: list[float]
    png_sha256: str  # of the file written: the fingerprint covers exactly what training reads


def render_screen(job: ScreenJob, settings: RenderSettings) -> list[RenderedRecord]:
    """Decode the screen once, then box, encode and write each of its records."""
    with Image.open(io.BytesIO(job.image_bytes)) as image:
        image.load()
        base, scale = bound_image(image, settings.max_side)
    counter = html_counter(settings.html_tokens, settings.tokenizer)
    rendered = []
    for record in job.records:
        canvas = base.copy()
        bbox = scale_bbox(record.bbox, scale)
        outline_box(canvas, bbox)
        encoded = io.BytesIO()
        canvas.save(encoded, format="PNG", compress_level=settings.compress_level)
        png = encoded.getvalue()
        (settings.output / record.image_name).write_bytes(png)
        prompt = build_prompt(
            record.action_type,
            record.element_type,
            record.text,
            record.html,
            settings.html_budget,
            counter,
        )
        digest = hashlib.sha256(png).hexdigest()
        rendered.append(RenderedRecord(record.index, prompt, bbox, digest))
    return rendered


def render_all(
    jobs: Iterable[ScreenJob],
    settings: RenderSettings,
    workers: int = 1,
    on_done: Callable[[int], None] | None = None,
) -> dict[int, RenderedRecord]:
    """Render every job; `on_done(n)` is told how many records just finished."""
    results: dict[int, RenderedRecord] = {}
    for batch in _run(jobs, settings, workers):
        for record in batch:
            results[record.index] = record
        if on_done:
            on_done(len(batch))
    return results


def worker_context() -> multiprocessing.context.BaseContext:
    """A forkserver when its socket's path fits in sun_path, else spawn."""
    folder = multiprocessing.util.get_temp_dir()
    if len(os.fsencode(folder)) + LISTENER_NAME_BYTES <= SOCKET_PATH_MAX:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    log.info(
        "prepare workers are spawned, not forked from a server: the temp folder %s is too "
        "deep for a Unix socket's %d-byte path",
        folder,
        SOCKET_PATH_MAX,
    )
    return multiprocessing.get_context("spawn")


def _run(
    jobs: Iterable[ScreenJob], settings: RenderSettings, workers: int
) -> Iterator[list[RenderedRecord]]:
    if workers <= 1:
        for job in jobs:
            yield render_screen(job, settings)
        return
    context = worker_context()
    window = workers * TASKS_PER_WORKER
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: set[Future[list[RenderedRecord]]] = set()
        for job in jobs:
            pending.add(pool.submit(render_screen, job, settings))
            if len(pending) >= window:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        for future in pending:
            yield future.result()
