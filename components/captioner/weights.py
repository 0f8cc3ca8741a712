"""Weight hashing: the identity of a model's files, so a registered version can be checked
against the evaluation that scored it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def directory_sha256(folder: Path) -> str:
    """sha256 over every file's relative path and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"
