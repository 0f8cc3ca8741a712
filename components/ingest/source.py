"""Where records come from: a Hub dataset at a pinned revision, or a local dataset folder.

Lineage needs to know exactly which data a model saw, so every source is reduced to one
immutable revision:
- Hub: the commit sha the requested revision (branch, tag or sha) resolves to right now;
  the data is then loaded at that sha, so what is recorded is what was read.
- Local folder: `sha256:<hex>` over the folder's files (relative path + bytes, sorted by
  path, hidden files and folders skipped). A content hash is used rather than a git sha
  because a git sha says nothing about uncommitted or untracked changes, and the same
  files give the same hash on every machine, in or outside a git work tree.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from datasets import Dataset

SourceKind = Literal["hub", "hub-layout folder", "save_to_disk folder"]
# owner/name or name, as the Hub spells repository ids.
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")
HASH_CHUNK = 1 << 20


class SourceError(RuntimeError):
    """The dataset could not be found or loaded; the message says which and why."""


@dataclass(frozen=True)
class Source:
    """A loaded split and the facts lineage needs about it."""

    dataset: str
    kind: SourceKind
    requested_revision: str | None
    resolved_revision: str
    split: str
    rows: Dataset


def is_local(dataset: str) -> bool:
    """A path that exists is local; anything else must look like a Hub id."""
    if Path(dataset).expanduser().exists():
        return True
    if HUB_ID.match(dataset) and not dataset.startswith("."):
        return False
    raise SourceError(
        f"{dataset!r} is neither an existing local folder nor a Hugging Face Hub dataset id "
        "(owner/name)"
    )


def load_source(dataset: str, revision: str | None = None, split: str = "train") -> Source:
    """Load one split of `dataset` (Hub id or local folder) and resolve its revision."""
    if is_local(dataset):
        if revision:
            raise SourceError(
                f"--revision {revision!r} applies to Hub datasets only; {dataset} is a local "
                "folder (its revision is the content hash of its files)"
            )
        return _load_local(Path(dataset).expanduser(), split)
    return _load_hub(dataset, revision, split)


def _is_saved_to_disk(folder: Path) -> bool:
    """`save_to_disk` leaves state.json (a Dataset) or dataset_dict.json (a DatasetDict)."""
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _load_local(folder: Path, split: str) -> Source:
    import datasets

    if not folder.is_dir():
        raise SourceError(f"{folder} is a file; a local dataset is a folder")
    revision = content_hash(folder)
    try:
        if _is_saved_to_disk(folder):
            loaded = datasets.load_from_disk(str(folder))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise SourceError(
                        f"{folder} has no split {split!r}; it has {', '.join(loaded)}"
                    )
                loaded = loaded[split]
            return Source(str(folder), "save_to_disk folder", None, revision, split, loaded)
        rows = datasets.load_dataset(str(folder), split=split)
    except SourceError:
        raise
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetGenerationError) as error:
        raise SourceError(f"cannot load split {split!r} from {folder}: {error}") from error
    return Source(str(folder), "hub-layout folder", None, revision, split, rows)


def content_hash(folder: Path) -> str:
    """sha256 over every visible file's relative path and bytes, in sorted path order."""
    digest = hashlib.sha256()
    relative = {
        path.relative_to(folder).as_posix(): path
        for path in folder.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }
    for name in sorted(relative):
        digest.update(name.encode() + b"\0")
        with relative[name].open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"


def resolve_hub_revision(dataset: str, revision: str | None) -> str:
    """The commit sha that `revision` (default: the main branch) of `dataset` points to."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    token = os.environ.get("HF_TOKEN") or None
    try:
        info = HfApi().dataset_info(dataset, revision=revision, token=token)
    except RevisionNotFoundError as error:
        raise SourceError(f"Hub dataset {dataset} has no revision {revision!r}") from error
    except RepositoryNotFoundError as error:
        raise SourceError(
            f"Hub dataset {dataset} was not found (private or gated datasets need HF_TOKEN)"
        ) from error
    except Exception as error:
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise SourceError(
            f"cannot reach the Hugging Face Hub to resolve {dataset}@{revision or 'main'}"
            f"{offline}: {error}"
        ) from error
    if not info.sha:
        raise SourceError(f"the Hub returned no commit sha for {dataset}@{revision or 'main'}")
    return info.sha


def _load_hub(dataset: str, revision: str | None, split: str) -> Source:
    import datasets

    sha = resolve_hub_revision(dataset, revision)
    token = os.environ.get("HF_TOKEN") or None
    try:
        rows = datasets.load_dataset(dataset, revision=sha, split=split, token=token)
    except (ValueError, FileNotFoundError, ConnectionError) as error:
        raise SourceError(f"cannot load split {split!r} of {dataset}@{sha}: {error}") from error
    return Source(dataset, "hub", revision, sha, split, rows)
