"""Checkpoint directories that are either whole or ignored: temp dir, checksums, marker, rename.

A preempted node can die in the middle of a write. Every checkpoint is written to
`<name>.tmp`, then a `COMPLETE` marker holding the size and SHA-256 of each file is
written and fsynced, and only then is the directory renamed to its final name. A
directory without a valid marker, or whose files no longer match it (a truncated
upload, a disk that filled up), is torn: it is skipped with a warning and the
previous one is used. With a `gs://` mirror, the files are uploaded first and the
marker last, so the same rule holds remotely.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("uicap.train")

MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_BEST_DIR = re.compile(r"^best-step-(\d+)$")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checksum_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file under `directory` except the marker."""
    return {
        str(path.relative_to(directory)): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MARKER
    }


def torn_reason(directory: Path, hashes: bool = True) -> str | None:
    """Why `directory` is not a whole checkpoint, or None when it is.

    `hashes=False` checks presence and sizes only: cheap enough to run on every save.
    """
    marker = directory / MARKER
    if not marker.is_file():
        return f"no {MARKER} marker"
    try:
        expected = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError) as error:
        return f"unreadable {MARKER} marker ({error})"
    for name, entry in expected.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != entry["size"]:
            return f"{name} has {path.stat().st_size} bytes, expected {entry['size']}"
        if hashes and _sha256(path) != entry["sha256"]:
            return f"{name} fails its checksum"
    return None


def seal(directory: Path, meta: dict[str, Any] | None = None) -> None:
    """Write the checksum marker (fsynced) that makes `directory` a whole checkpoint."""
    manifest = {"files": checksum_manifest(directory), **(meta or {})}
    marker = directory / MARKER
    with marker.open("w") as handle:
        json.dump(manifest, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


class CheckpointStore:
    """`step-N` training states and `best-step-N` weight snapshots under one folder.

    The store only touches the file system; in a multi-process run the caller makes one
    process call `begin`/`commit`/`prune` and puts barriers around the shared writes.
    """

    def __init__(self, root: Path, keep_last: int, mirror: str | None = None) -> None:
        if keep_last < 1:
            raise ValueError("keep_last must be at least 1")
        self.root = Path(root)
        self.keep_last = keep_last
        self.mirror = mirror.rstrip("/") if mirror else None

    @staticmethod
    def step_name(step: int) -> str:
        return f"step-{step}"

    @staticmethod
    def best_name(step: int) -> str:
        return f"best-step-{step}"

    def begin(self, name: str) -> Path:
        """A fresh, empty staging folder for `name` (a leftover from a crash is removed)."""
        staging = self.root / f"{name}.tmp"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        return staging

    def commit(self, name: str, meta: dict[str, Any] | None = None) -> Path:
        """Seal the staging folder and rename it into place; mirror it when configured."""
        staging = self.root / f"{name}.tmp"
        final = self.root / name
        seal(staging, meta)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        _fsync_dir(self.root)
        if self.mirror:
            self._upload(final)
        return final

    def _scan(self, pattern: re.Pattern[str]) -> list[Checkpoint]:
        if not self.root.is_dir():
            return []
        found = [
            Checkpoint(int(m.group(1)), path)
            for path in self.root.iterdir()
            if path.is_dir() and (m := pattern.match(path.name))
        ]
        return sorted(found, key=lambda c: c.step)

    def checkpoints(self) -> list[Checkpoint]:
        return self._scan(_STEP_DIR)

    def best_snapshots(self) -> list[Checkpoint]:
        return self._scan(_BEST_DIR)

    def latest(self) -> Checkpoint | None:
        """The newest whole checkpoint; torn ones are skipped with a warning."""
        if self.mirror:
            self._download_missing()
        for checkpoint in reversed(self.checkpoints()):
            reason = torn_reason(checkpoint.path)
            if reason is None:
                return checkpoint
            log.warning("skipping torn checkpoint %s: %s", checkpoint.path, reason)
        return None

    def ensure_local(self, step: int) -> Path:
        """The whole checkpoint of `step` on this node's disk, fetched from the mirror when
        this node lacks it (another node of a TrainJob sealed it)."""
        name = self.step_name(step)
        local = self.root / name
        if local.is_dir() and torn_reason(local) is None:
            return local
        if not self.mirror:
            raise FileNotFoundError(
                f"{local} is not on this node and there is no gs:// mirror to fetch it from: "
                "a job of several nodes needs a checkpoint_uri they all reach"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        if not self._fetch(name):
            raise FileNotFoundError(f"{self._remote(name)} is torn or missing")
        return local

    def prune(self, keep_best: int | None) -> None:
        """Keep the last `keep_last` whole checkpoints and only the best snapshot in use."""
        whole = [c for c in self.checkpoints() if torn_reason(c.path, hashes=False) is None]
        doomed = whole[: -self.keep_last]
        if whole:  # torn leftovers older than a whole checkpoint are of no use
            doomed += [c for c in self.checkpoints() if c not in whole and c.step < whole[-1].step]
        doomed += [b for b in self.best_snapshots() if b.step != keep_best]
        for checkpoint in doomed:
            shutil.rmtree(checkpoint.path, ignore_errors=True)
            if self.mirror:
                self._delete_remote(checkpoint.path.name)

    def clear(self) -> None:
        """Remove every checkpoint, here and in the mirror (a run that starts over)."""
        if self.root.exists():
            log.warning("starting over: removing the checkpoints in %s", self.root)
            shutil.rmtree(self.root)
        if self.mirror:
            from components import storage

            if storage.delete_tree(self.mirror):
                log.warning("starting over: removed the checkpoints in %s", self.mirror)

    def drop_after(self, step: int) -> None:
        """Forget snapshots newer than the state being resumed (another trajectory's)."""
        for snapshot in self.best_snapshots():
            if snapshot.step > step:
                shutil.rmtree(snapshot.path, ignore_errors=True)
                if self.mirror:
                    self._delete_remote(snapshot.path.name)

    # --- the gs:// mirror: files first, marker last, so a torn upload has no marker ---

    def _remote(self, name: str) -> str:
        from components import storage

        return storage.join(str(self.mirror), name)

    def _upload(self, local: Path) -> None:
        from components import storage

        remote = self._remote(local.name)
        storage.delete_tree(remote)  # a torn upload of the same name must not linger
        for path in sorted(local.rglob("*")):
            if path.is_file() and path.name != MARKER:
                storage.copy(path, storage.join(remote, *path.relative_to(local).parts))
        storage.copy(local / MARKER, storage.join(remote, MARKER))

    def _delete_remote(self, name: str) -> None:
        from components import storage

        storage.delete_tree(self._remote(name))

    def remote_names(self) -> list[str]:
        """Checkpoint folder names present in the mirror (whole or not)."""
        from components import storage

        prefix = str(self.mirror).rstrip("/") + "/"
        names = {path[len(prefix) :].split("/", 1)[0] for path in storage.list_files(prefix)}
        return sorted(n for n in names if _STEP_DIR.match(n) or _BEST_DIR.match(n))

    def _download_missing(self) -> None:
        """Bring what a fresh pod lacks: the newest whole remote state and the best snapshots."""
        self.root.mkdir(parents=True, exist_ok=True)
        names = self.remote_names()
        local_whole = [c.step for c in self.checkpoints() if torn_reason(c.path) is None]
        newest_local = max(local_whole, default=-1)
        steps = sorted((n for n in names if _STEP_DIR.match(n)), key=_step_of, reverse=True)
        for name in steps:
            if _step_of(name) <= newest_local or self._fetch(name):
                break
        for name in names:
            if _BEST_DIR.match(name) and not (self.root / name).exists():
                self._fetch(name)

    def _fetch(self, name: str) -> bool:
        """Download one remote checkpoint; True when it arrived whole."""
        from components import storage

        remote = self._remote(name)
        if not storage.exists(storage.join(remote, MARKER)):
            log.warning("skipping torn checkpoint %s: no %s marker", remote, MARKER)
            return False
        # The uploaded marker comes along unchanged; the files are verified against it.
        staging = self.begin(name)
        storage.copy_tree(remote, staging)
        local = self.root / name
        if local.exists():
            shutil.rmtree(local)
        staging.rename(local)
        reason = torn_reason(local)
        if reason is not None:
            log.warning("skipping torn checkpoint %s: %s", remote, reason)
        return reason is None


def _step_of(name: str) -> int:
    return int(name.rsplit("-", 1)[1])
