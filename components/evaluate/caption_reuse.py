"""Captions of an unchanged model on an unchanged split, reused instead of generated again.

Generation is evaluate's GPU time, and two of its three models rarely change between
runs: the champion stays until one beats it, and the base is pinned to a revision. Greedy
captions are a function of the weights, the split's prompts and images, the decoding
settings and the code that runs them, so they are kept under
`<store>/captions/<key>.json` with all of those in the key, and scored again each run
(scoring is cheap and always current). A model whose weights cannot be named exactly (a
Hub id at a branch) is never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import storage
from components.content_hash import content_hash
from components.ingest.source import COMMIT_SHA

log = logging.getLogger("uicap.evaluate")

# Bump when caption generation changes for the same weights, data and settings.
CAPTIONS_FORMAT = 1
CAPTIONS_DIR = "captions"


@dataclass(frozen=True)
class Generation:
    """The settings that, with the weights and the data, decide greedy captions."""

    max_new_tokens: int
    batch_size: int
    device: str
    dtype: str

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        return {
            **self.__dict__,
            "format": CAPTIONS_FORMAT,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }


def weights_identity(model: Any) -> dict[str, Any] | None:
    """What names a `ResolvedModel`'s weights exactly, or None when nothing does."""
    if model.kind == "artifact":
        if not model.weights_sha256:
            return None
        return {
            "weights_sha256": model.weights_sha256,
            "family": model.family,
            "base_model": model.base_model,
            "base_revision": model.base_revision,
        }
    location = Path(model.location).expanduser()
    if location.is_dir():
        return {"family": model.family, "folder": content_hash(location)}
    if model.revision and COMMIT_SHA.fullmatch(model.revision):
        return {"family": model.family, "hub": model.location, "revision": model.revision}
    return None


def captions_key(weights: dict[str, Any], data: Any, generation: Generation) -> str:
    described = data.describe()
    decided = {
        "weights": weights,
        "data": {
            "fingerprint": described.fingerprint,
            "split": described.split,
            "split_sha256": described.split_sha256,
        },
        "generation": generation.describe(),
    }
    canonical = json.dumps(decided, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CaptionStore:
    """Captions kept by key under `<root>/captions/`; every failure only costs reuse."""

    root: str

    def _location(self, key: str) -> str:
        return storage.join(self.root, CAPTIONS_DIR, f"{key}.json")

    def get(self, key: str, ids: list[str]) -> tuple[dict[str, str], float] | None:
        """The captions and their original seconds, when every record has one."""
        try:
            stored = json.loads(storage.read_text(self._location(key)))
        except (FileNotFoundError, OSError, ValueError):
            return None
        captions = stored.get("captions") or {}
        if set(captions) != set(ids):
            return None
        return {i: str(captions[i]) for i in ids}, float(stored.get("seconds") or 0.0)

    def put(self, key: str, captions: dict[str, str], seconds: float, model: str) -> None:
        payload = {"model": model, "seconds": seconds, "captions": captions}
        try:
            storage.write_text(self._location(key), json.dumps(payload, sort_keys=True))
        except OSError as error:
            log.warning("could not keep captions for reuse under %s: %s", self.root, error)
