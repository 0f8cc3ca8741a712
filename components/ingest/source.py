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

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from components.content_hash import CONTENT_HASH_PREFIX, content_hash

if TYPE_CHECKING:
    from datasets import Dataset

SourceKind = Literal["hub", "hub-layout folder", "save_to_disk folder"]
# A full git commit id: immutable, so nothing needs to ask the Hub what it names.
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
# owner/name or name, as the Hub spells repository ids.
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")


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
    """Load one split of `dataset` (Hub id or local folder) and resolve its revision.

    For a local folder, `revision` may name the content hash it had when the run resolved
    it: a folder that changed since then is refused rather than read as something else.
    """
    if is_local(dataset):
        folder = Path(dataset).expanduser()
        if revision and not revision.startswith(CONTENT_HASH_PREFIX):
            raise SourceError(
                f"--revision {revision!r} applies to Hub datasets only; {dataset} is a local "
                "folder (its revision is the content hash of its files)"
            )
        return _load_local(folder, split, revision)
    return _load_hub(dataset, revision, split)


def _is_saved_to_disk(folder: Path) -> bool:
    """`save_to_disk` leaves state.json (a Dataset) or dataset_dict.json (a DatasetDict)."""
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def _load_local(folder: Path, split: str, pinned: str | None = None) -> Source:
    import datasets

    if not folder.is_dir():
        raise SourceError(f"{folder} is a file; a local dataset is a folder")
    revision = content_hash(folder)
    if pinned and pinned != revision:
        raise SourceError(
            f"{folder} changed after this run resolved it: its files now hash to {revision}, "
            f"the run pinned {pinned}"
        )
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


def resolve_hub_revision(
    repo_id: str, revision: str | None, repo_type: Literal["dataset", "model"] = "dataset"
) -> str:
    """The commit sha that `revision` (default: the main branch) of a Hub repo points to."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    what = f"Hub {repo_type} {repo_id}"
    token = os.environ.get("HF_TOKEN") or None
    try:
        info = HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision, token=token)
    except RevisionNotFoundError as error:
        raise SourceError(f"{what} has no revision {revision!r}") from error
    except RepositoryNotFoundError as error:
        raise SourceError(
            f"{what} was not found (private or gated repositories need HF_TOKEN)"
        ) from error
    except Exception as error:
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise SourceError(
            f"cannot reach the Hugging Face Hub to resolve {repo_id}@{revision or 'main'}"
            f"{offline}: {error}"
        ) from error
    if not info.sha:
        raise SourceError(f"the Hub returned no commit sha for {repo_id}@{revision or 'main'}")
    return info.sha


def resolve_revision(
    reference: str, revision: str | None, repo_type: Literal["dataset", "model"]
) -> str:
    """What `reference` names right now, immutably: a Hub commit sha, or a local folder's
    content hash (a revision given for a folder must be that hash)."""
    if not is_local(reference):
        return resolve_hub_revision(reference, revision, repo_type)
    folder = Path(reference).expanduser()
    if not folder.is_dir():
        raise SourceError(f"{folder} is a file; a local {repo_type} is a folder")
    current = content_hash(folder)
    if revision and revision != current:
        raise SourceError(
            f"{folder} is a local folder: its revision is the content hash of its files "
            f"({current}), not {revision!r}"
        )
    return current


def _load_hub(dataset: str, revision: str | None, split: str) -> Source:
    """Download the snapshot at the resolved sha into the Hub cache, then read it there.

    `snapshot_download` rather than `load_dataset(<hub id>)`: the files land in the Hub
    cache (HF_HOME, a shared volume on a cluster), so a retried or re-run ingest of the
    same commit downloads nothing, and the rows are read by the same loader as a local
    hub-layout folder.
    """
    import datasets
    from huggingface_hub import snapshot_download

    sha = resolve_hub_revision(dataset, revision, "dataset")
    token = os.environ.get("HF_TOKEN") or None
    try:
        snapshot = snapshot_download(dataset, repo_type="dataset", revision=sha, token=token)
        rows = datasets.load_dataset(snapshot, split=split)
    except (ValueError, FileNotFoundError, ConnectionError, OSError) as error:
        raise SourceError(f"cannot load split {split!r} of {dataset}@{sha}: {error}") from error
    return Source(dataset, "hub", revision, sha, split, rows)
