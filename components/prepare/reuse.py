"""Prepared data, reused by what decides it: the ingested records' content and the settings.

Rendering boxed screenshots is prepare's whole cost, and its output is a pure function of
the ingested records (their content fingerprint), the decisive prepare settings and the
prompt template. So each prepared output is also kept under `<store>/prepared/<key>`,
and a later run (a retry, a schedule that found a new commit with the same records, a
run with other training settings) copies it instead of rendering again.

An entry is complete only once its `stored.json` marker is written, after every file: a
store left half-written by a killed pod is never read, and the next run writes the entry
again. A reused output's manifest names this run's ingest, so the lineage it
carries is this run's, not the run that rendered the images.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from components import storage
from components.ingest.manifest import IngestManifest
from components.ingest.publish import staged_output
from components.prepare.config import PrepareConfig
from components.prepare.manifest import PrepareManifest
from components.prepare.prompt import PROMPT_TEMPLATE_VERSION
from components.prepare.token_count import BaseTokenizer, counted_in
from components.step_config import decisive

log = logging.getLogger(__name__)

# Bump when prepare writes something different for the same records and settings.
PREPARED_FORMAT = 1
PREPARED_DIR = "prepared"
COMPLETE_MARKER = "stored.json"


@dataclass(frozen=True)
class Reuse:
    """Whether a step's output was copied from the store, and which entry it is."""

    key: str
    entry: str
    reused: bool

    def record(self) -> dict[str, str | bool]:
        return {"key": self.key, "entry": self.entry, "reused": self.reused}


def prepared_key(
    ingest: IngestManifest, config: PrepareConfig, tokenizer: BaseTokenizer | None = None
) -> str:
    """sha256 over the ingested content, the decisive settings, the prompt template and
    the tokenizer the HTML budget counts in."""
    decided = {
        "format": PREPARED_FORMAT,
        "records": ingest.fingerprint,
        "prepare": decisive(config),
        "prompt_template_version": PROMPT_TEMPLATE_VERSION,
        "html_tokenizer": counted_in(config.html_tokens, tokenizer),
    }
    canonical = json.dumps(decided, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def prepare_reusing(
    ingested: Path,
    output: Path,
    config: PrepareConfig,
    store: str,
    *,
    tokenizer: BaseTokenizer | None = None,
    progress: bool = False,
) -> tuple[PrepareManifest, Reuse]:
    """`prepare`, or a copy of the stored output for the same records and settings."""
    from components.prepare.run import prepare

    ingest = IngestManifest.read(ingested)
    key = prepared_key(ingest, config, tokenizer)
    entry = storage.join(store, PREPARED_DIR, key)
    if storage.exists(storage.join(entry, COMPLETE_MARKER)):
        return _copy_out(entry, output, ingest), Reuse(key, entry, reused=True)
    manifest = prepare(ingested, output, config, tokenizer=tokenizer, progress=progress)
    _store(output, entry, key)
    return manifest, Reuse(key, entry, reused=False)


def _copy_out(entry: str, output: Path, ingest: IngestManifest) -> PrepareManifest:
    with staged_output(Path(output)) as staging:
        storage.copy_tree(entry, staging)
        (staging / COMPLETE_MARKER).unlink()
        manifest = PrepareManifest.read(staging).model_copy(update={"ingest": ingest})
        manifest.write(staging)
    log.info("prepared data reused from %s", entry)
    return manifest


def _store(output: Path, entry: str, key: str) -> None:
    """Copy the output into the store, then mark it complete; a failure costs reuse, not
    the run."""
    try:
        storage.copy_tree(output, entry)
        storage.write_text(storage.join(entry, COMPLETE_MARKER), json.dumps({"key": key}))
    except OSError as error:
        log.warning("could not keep the prepared data for reuse in %s: %s", entry, error)
