"""Files on a local disk and objects under `gs://bucket/prefix`, behind one set of functions.

Every step reads and writes through here, so the same code runs on a laptop (local
folders) and on GKE (a `gs://` pipeline root). Locations are plain strings: a local path
or a `gs://` URI. Local writes go to a temporary file that is renamed into place, and GCS
object writes are atomic by nature, so a reader never sees half a file.

The GCS client comes from google-cloud-storage and is created on first use: it honours
`STORAGE_EMULATOR_HOST` (anonymous credentials against the emulator) and otherwise uses
Application Default Credentials (Workload Identity on GKE). Retries are the library's own
policies; copies and uploads of a fixed source to a fixed name are idempotent.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud.storage import Blob, Client

GCS_SCHEME = "gs://"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"

Location = str | os.PathLike[str]


class StorageError(OSError):
    """A storage operation failed; the message names the location."""


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """Nothing is stored at the location (no local file, no GCS object)."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"nothing stored at {uri}")
        self.uri = uri


class ObjectExistsError(StorageError, FileExistsError):
    """A create-only write found something already stored at the location."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"refusing to overwrite {uri}: it already exists")
        self.uri = uri


def is_gcs(location: Location) -> bool:
    return str(location).startswith(GCS_SCHEME)


def join(base: Location, *parts: str) -> str:
    """`base/part/...` for a local path or a gs:// URI (no doubled or dropped slashes)."""
    if not is_gcs(base):
        # A leading "/" in a part would restart the path at the root; treat it as relative.
        return str(Path(base, *(part.lstrip("/") for part in parts)))
    pieces = [str(base).rstrip("/")]
    pieces += [part.strip("/") for part in parts if part.strip("/")]
    return "/".join(pieces)


def split_gcs(uri: str) -> tuple[str, str]:
    """(bucket, object name) of a `gs://bucket/name` URI; the name may be empty."""
    if not is_gcs(uri):
        raise ValueError(f"{uri!r} is not a gs:// URI")
    bucket, _, name = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket (expected gs://bucket/path)")
    return bucket, name


# --- reading --------------------------------------------------------------------------------


def read_bytes(location: Location) -> bytes:
    uri = str(location)
    if not is_gcs(uri):
        try:
            return Path(uri).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(uri) from None
    from google.api_core.exceptions import NotFound

    try:
        return _blob(uri).download_as_bytes()
    except NotFound:
        raise ObjectNotFoundError(uri) from None


def read_text(location: Location, encoding: str = "utf-8") -> str:
    return read_bytes(location).decode(encoding)


def exists(location: Location) -> bool:
    """True when a file or a folder with files is stored at the location."""
    uri = str(location)
    if not is_gcs(uri):
        return Path(uri).exists()
    bucket, name = split_gcs(uri)
    if _is_file(name) and _blob(uri).exists():
        return True
    prefix = f"{name.rstrip('/')}/" if name.strip("/") else ""
    return any(True for _ in _client().list_blobs(bucket, prefix=prefix, max_results=1))


def list_files(root: Location) -> list[str]:
    """Every file under the folder `root`, recursively, as full locations, sorted.

    `root` is a folder: `gs://b/data` lists `gs://b/data/...`, never `gs://b/database`.
    A missing folder lists as empty.
    """
    uri = str(root)
    if not is_gcs(uri):
        folder = Path(uri)
        return sorted(str(path) for path in folder.rglob("*") if path.is_file())
    bucket, name = split_gcs(uri)
    prefix = f"{name.rstrip('/')}/" if name.strip("/") else ""
    blobs = _client().list_blobs(bucket, prefix=prefix)
    return sorted(f"{GCS_SCHEME}{bucket}/{blob.name}" for blob in blobs if _is_file(blob.name))


# --- writing --------------------------------------------------------------------------------


def write_bytes(
    location: Location, data: bytes, *, overwrite: bool = True, chunk_size: int | None = None
) -> None:
    """Store `data` whole at the location; with `overwrite=False` only if nothing is there.

    GCS uploads up to 8 MiB are one request; larger ones are resumable, sent in chunks of
    `chunk_size` bytes (a multiple of 256 KiB; the library's default is 100 MiB).
    """
    uri = str(location)
    if not is_gcs(uri):
        with _atomic_local_file(uri, overwrite=overwrite) as handle:
            handle.write(data)
        return
    blob = _blob(uri, chunk_size=chunk_size)
    with _gcs_create_only(uri):
        blob.upload_from_string(data, **_create_only(overwrite))


def write_text(
    location: Location, text: str, *, encoding: str = "utf-8", overwrite: bool = True
) -> None:
    write_bytes(location, text.encode(encoding), overwrite=overwrite)


def copy(src: Location, dst: Location, *, chunk_size: int | None = None) -> None:
    """Copy one file between any two of: local path, gs:// URI (overwriting `dst`)."""
    source, target = str(src), str(dst)
    _copier(source, target)(source, target, chunk_size)


def copy_tree(
    src: Location, dst: Location, *, workers: int = 8, chunk_size: int | None = None
) -> list[str]:
    """Copy every file under the folder `src` to the same relative path under `dst`.

    Returns the written locations, sorted. Files are copied concurrently (I/O bound).
    """
    source, target = str(src), str(dst)
    files = list_files(source)
    if not files and not exists(source):
        raise ObjectNotFoundError(source)
    pairs = [(path, join(target, *_relative_parts(source, path))) for path in files]
    copier = _copier(source, target)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pairs) or 1))) as pool:
        # list() waits for every copy and re-raises the first failure.
        list(pool.map(lambda pair: copier(pair[0], pair[1], chunk_size), pairs))
    return sorted(written for _, written in pairs)


def delete(location: Location, *, missing_ok: bool = False) -> None:
    """Remove one file or object."""
    uri = str(location)
    if not is_gcs(uri):
        try:
            Path(uri).unlink()
        except FileNotFoundError:
            if not missing_ok:
                raise ObjectNotFoundError(uri) from None
        return
    from google.api_core.exceptions import NotFound

    try:
        _blob(uri).delete()
    except NotFound:
        if not missing_ok:
            raise ObjectNotFoundError(uri) from None


def delete_tree(root: Location) -> int:
    """Remove every file under the folder `root`; returns how many were removed."""
    uri = str(root)
    files = list_files(uri)
    if not is_gcs(uri):
        if Path(uri).is_dir():
            shutil.rmtree(uri)
        return len(files)
    for path in files:
        delete(path, missing_ok=True)
    return len(files)


# --- internals ------------------------------------------------------------------------------


def _client() -> Client:
    """The process's client for the current endpoint (emulator or Google)."""
    return _cached_client(os.environ.get(EMULATOR_ENV), os.getpid())


@functools.cache
def _cached_client(emulator: str | None, pid: int) -> Client:
    # Keyed by endpoint and process: a test may point at a new emulator, and a forked
    # child must not share its parent's HTTP connections.
    from google.cloud import storage

    return storage.Client()


def _blob(uri: str, *, chunk_size: int | None = None) -> Blob:
    bucket, name = split_gcs(uri)
    if not _is_file(name):
        raise ValueError(f"{uri!r} names a folder, not an object")
    return _client().bucket(bucket).blob(name, chunk_size=chunk_size)


def _is_file(name: str) -> bool:
    # Folder placeholders made by the console end with "/"; they hold no data.
    return bool(name) and not name.endswith("/")


def _create_only(overwrite: bool) -> dict[str, int]:
    # Generation 0 means "only if no live object exists": a conditional, retry-safe create.
    return {} if overwrite else {"if_generation_match": 0}


@contextmanager
def _gcs_create_only(uri: str) -> Iterator[None]:
    from google.api_core.exceptions import PreconditionFailed

    try:
        yield
    except PreconditionFailed:
        raise ObjectExistsError(uri) from None


@contextmanager
def _atomic_local_file(path: str, *, overwrite: bool = True) -> Iterator[IO[bytes]]:
    """A temporary file beside `path` that takes its name only once fully written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed before the rename)
        dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
    )
    partial = Path(handle.name)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(partial, target)
        else:
            # A hard link fails when the name is taken, so create-only is race-free.
            os.link(partial, target)
    except FileExistsError:
        raise ObjectExistsError(path) from None
    finally:
        partial.unlink(missing_ok=True)


def _relative_parts(root: str, path: str) -> tuple[str, ...]:
    if is_gcs(root):
        _, root_name = split_gcs(root)
        _, name = split_gcs(path)
        return PurePosixPath(name).relative_to(root_name.strip("/") or ".").parts
    return Path(path).relative_to(root).parts


Copier = Callable[[str, str, int | None], None]


def _copier(source: str, target: str) -> Copier:
    directions: dict[tuple[bool, bool], Copier] = {
        (False, False): _local_to_local,
        (False, True): _local_to_gcs,
        (True, False): _gcs_to_local,
        (True, True): _gcs_to_gcs,
    }
    return directions[is_gcs(source), is_gcs(target)]


def _local_to_local(source: str, target: str, chunk_size: int | None) -> None:
    _require_local_file(source)
    with open(source, "rb") as reader, _atomic_local_file(target) as writer:
        shutil.copyfileobj(reader, writer)


def _local_to_gcs(source: str, target: str, chunk_size: int | None) -> None:
    _require_local_file(source)
    _blob(target, chunk_size=chunk_size).upload_from_filename(source)


def _require_local_file(path: str) -> None:
    if Path(path).is_dir():
        raise StorageError(f"{path} is a folder: use copy_tree")
    if not Path(path).is_file():
        raise ObjectNotFoundError(path)


def _gcs_to_local(source: str, target: str, chunk_size: int | None) -> None:
    from google.api_core.exceptions import NotFound

    blob = _blob(source, chunk_size=chunk_size)
    try:
        with _atomic_local_file(target) as writer:
            blob.download_to_file(writer)
    except NotFound:
        raise ObjectNotFoundError(source) from None


def _gcs_to_gcs(source: str, target: str, chunk_size: int | None) -> None:
    from google.api_core.exceptions import NotFound
    from google.cloud.storage.retry import DEFAULT_RETRY

    source_blob, target_blob = _blob(source), _blob(target)
    try:
        # Large or cross-location copies take several rewrite calls, each one continuing
        # from the token of the previous; a fixed source onto a fixed name is idempotent.
        token, _, _ = target_blob.rewrite(source_blob, retry=DEFAULT_RETRY)
        while token is not None:
            token, _, _ = target_blob.rewrite(source_blob, token=token, retry=DEFAULT_RETRY)
    except NotFound:
        raise ObjectNotFoundError(source) from None
