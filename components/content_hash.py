"""A local folder's revision: one sha256 over its files, the same on every machine.

A content hash rather than a git sha, because a git sha says nothing about uncommitted or
untracked changes, and the same files give the same hash in or outside a git work tree.
Hidden files and folders (`.cache`, `.git`, editor droppings) are skipped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HASH_CHUNK = 1 << 20
CONTENT_HASH_PREFIX = "sha256:"


class PinMismatchError(RuntimeError):
    """A local folder no longer holds what a recorded revision says it held."""


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
    return f"{CONTENT_HASH_PREFIX}{digest.hexdigest()}"


def check_pinned(folder: Path, revision: str | None, what: str) -> None:
    """Refuse a local folder whose content no longer matches the content hash recorded
    for it (a Hub sha or no revision is not a local pin, and passes)."""
    if not revision or not revision.startswith(CONTENT_HASH_PREFIX):
        return
    current = content_hash(folder)
    if current != revision:
        raise PinMismatchError(
            f"{what} {folder} changed since it was recorded: its files hash to {current}, "
            f"the record says {revision}"
        )
