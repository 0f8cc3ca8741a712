"""Publish a step's output folder all at once: build it beside the target, then rename.

A reader (the next step, a person, a retry) sees either the previous complete output or
the new complete output, never a half-written one. An existing target is only replaced
when it is empty or holds a step manifest, so a mistyped --output cannot wipe a folder
that is not ours.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MANIFEST_NAME = "manifest.json"


class OutputExistsError(FileExistsError):
    """The output path holds something that is not a previous step output."""


def check_replaceable(target: Path, marker: str = MANIFEST_NAME) -> None:
    """Fail before any work when `target` cannot be replaced: only an empty folder or an
    earlier output (it holds `marker`) is."""
    if not target.exists():
        return
    if not target.is_dir():
        raise OutputExistsError(f"refusing to replace {target}: it is a file, not an output folder")
    if any(target.iterdir()) and not (target / marker).is_file():
        raise OutputExistsError(
            f"refusing to replace {target}: it is not empty and holds no {marker}, "
            "so it is not an earlier output of this step"
        )


@contextmanager
def staged_output(target: Path, marker: str = MANIFEST_NAME) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds it replaces `target`."""
    target = Path(target)
    check_replaceable(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _replace(staging, target, marker)


def _replace(staging: Path, target: Path, marker: str) -> None:
    check_replaceable(target, marker)
    if not target.exists():
        staging.rename(target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    retired.rmdir()
    target.rename(retired)
    try:
        staging.rename(target)
    except BaseException:
        retired.rename(target)
        raise
    shutil.rmtree(retired, ignore_errors=True)
