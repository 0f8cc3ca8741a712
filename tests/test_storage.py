"""components.storage against the local disk and a real GCS emulator (never a mock)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from components import storage
from tests.support.servers import GcsBucket

CHUNK = 4 * 256 * 1024  # resumable chunks must be multiples of 256 KiB


def tree_digests(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def make_tree(folder: Path) -> dict[str, bytes]:
    """Nested files of varied size, including empty, binary and non-ASCII names."""
    files = {
        "manifest.json": b'{"kept": 3}\n',
        "train/data.json": os.urandom(10_000),
        "train/images/0001.png": os.urandom(70_000),
        "test/empty.bin": b"",
        "test/r\u00e9sum\u00e9 notes.txt": "caf\u00e9 \u2192 ok\n".encode(),
        "deep/a/b/c/d.bin": bytes(range(256)) * 5,
    }
    for relative, data in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


# --- locations --------------------------------------------------------------------------------


def test_join_works_for_gs_uris_and_local_paths(tmp_path: Path) -> None:
    assert storage.join("gs://bucket", "a", "b.json") == "gs://bucket/a/b.json"
    assert storage.join("gs://bucket/root/", "/a/", "b.json") == "gs://bucket/root/a/b.json"
    assert storage.join(tmp_path, "a", "b.json") == str(tmp_path / "a" / "b.json")
    assert storage.join(tmp_path, "/a/", "b.json") == str(tmp_path / "a" / "b.json")
    assert storage.split_gcs("gs://bucket/a/b.json") == ("bucket", "a/b.json")
    with pytest.raises(ValueError, match="names no bucket"):
        storage.split_gcs("gs:///a")


# --- local ------------------------------------------------------------------------------------


def test_local_write_is_atomic_and_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "out.bin"
    storage.write_bytes(target, b"first")
    storage.write_bytes(target, b"second")
    assert storage.read_bytes(target) == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]

    class Interrupted(Exception):
        pass

    # A failure while writing keeps the old content and removes the partial file.
    with pytest.raises(Interrupted), storage._atomic_local_file(str(target)) as handle:
        handle.write(b"half")
        raise Interrupted
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_create_only_write_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "once.txt"
    storage.write_text(target, "one", overwrite=False)
    with pytest.raises(storage.ObjectExistsError, match=re.escape(str(target))):
        storage.write_text(target, "two", overwrite=False)
    assert storage.read_text(target) == "one"


def test_local_tree_copy_delete_and_missing_errors(tmp_path: Path) -> None:
    source, copied = tmp_path / "src", tmp_path / "dst"
    make_tree(source)
    written = storage.copy_tree(source, copied)
    assert len(written) == 6
    assert tree_digests(copied) == tree_digests(source)
    assert storage.list_files(copied) == sorted(written)

    missing = tmp_path / "nope.txt"
    for call in (storage.read_bytes, storage.delete):
        with pytest.raises(storage.ObjectNotFoundError, match=re.escape(str(missing))):
            call(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        storage.copy(missing, tmp_path / "x")
    with pytest.raises(storage.StorageError, match="is a folder: use copy_tree"):
        storage.copy(source, tmp_path / "x")
    assert storage.delete_tree(copied) == 6
    assert not storage.exists(copied)


# --- gs:// against the emulator ---------------------------------------------------------------


def test_object_round_trips_byte_exact(gcs_emulator: GcsBucket) -> None:
    uri = storage.join(gcs_emulator.root, "runs", "r1", "blob.bin")
    data = os.urandom(100_000) + bytes(range(256))
    storage.write_bytes(uri, data)
    assert storage.exists(uri)
    assert storage.read_bytes(uri) == data

    text_uri = storage.join(gcs_emulator.root, "note.txt")
    storage.write_text(text_uri, "caf\u00e9 \u2192 ok\n")
    assert storage.read_text(text_uri) == "caf\u00e9 \u2192 ok\n"


def test_large_file_goes_up_in_resumable_chunks(gcs_emulator: GcsBucket, tmp_path: Path) -> None:
    # google-cloud-storage sends files over 8 MiB as resumable uploads, in `chunk_size` parts.
    local = tmp_path / "big.bin"
    data = os.urandom(8 * 1024 * 1024 + 12_345)  # 9 chunks, the last one partial
    local.write_bytes(data)
    uri = storage.join(gcs_emulator.root, "big", "big.bin")
    log = gcs_emulator.emulator.server
    mark = log.log_size()

    storage.copy(local, uri, chunk_size=CHUNK)

    chunk_requests = re.findall(r"PUT \S*uploadType=resumable\S*upload_id=", log.log_text(mark))
    assert len(chunk_requests) == -(-len(data) // CHUNK), "upload was not sent in chunks"
    back = tmp_path / "back.bin"
    storage.copy(uri, back)
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()

    storage.write_bytes(uri, data[::-1], chunk_size=CHUNK)
    assert storage.read_bytes(uri) == data[::-1]


def test_tree_goes_local_to_gs_to_gs_to_local_byte_exact(
    gcs_emulator: GcsBucket, tmp_path: Path
) -> None:
    source = tmp_path / "prepared"
    files = make_tree(source)
    remote = storage.join(gcs_emulator.root, "pipeline", "prepared")
    # A sibling whose name extends the folder's must not be listed as inside it.
    storage.write_text(storage.join(gcs_emulator.root, "pipeline", "prepared-old.txt"), "x")

    uploaded = storage.copy_tree(source, remote)
    expected = sorted(storage.join(remote, name) for name in files)
    assert uploaded == expected
    assert storage.list_files(remote) == expected
    assert storage.exists(remote)
    assert not storage.exists(storage.join(gcs_emulator.root, "pipeline", "prep"))

    mirrored = storage.join(gcs_emulator.root, "mirror")
    assert len(storage.copy_tree(remote, mirrored)) == len(files)

    back = tmp_path / "back"
    storage.copy_tree(mirrored, back)
    assert tree_digests(back) == tree_digests(source)
    assert (back / "test" / "empty.bin").read_bytes() == b""

    assert storage.delete_tree(remote) == len(files)
    assert storage.list_files(remote) == []
    assert len(storage.list_files(mirrored)) == len(files)


def test_missing_object_error_names_the_uri(gcs_emulator: GcsBucket, tmp_path: Path) -> None:
    uri = storage.join(gcs_emulator.root, "no", "such", "object.json")
    assert not storage.exists(uri)
    with pytest.raises(storage.ObjectNotFoundError, match=re.escape(uri)) as raised:
        storage.read_text(uri)
    assert raised.value.uri == uri
    assert isinstance(raised.value, FileNotFoundError)
    with pytest.raises(storage.ObjectNotFoundError, match=re.escape(uri)):
        storage.copy(uri, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(storage.ObjectNotFoundError, match=re.escape(uri)):
        storage.copy(uri, storage.join(gcs_emulator.root, "copy.json"))
    with pytest.raises(storage.ObjectNotFoundError, match="gs://"):
        storage.copy_tree(storage.join(gcs_emulator.root, "no"), tmp_path / "tree")


def test_create_only_object_write_sends_the_generation_precondition(
    gcs_emulator: GcsBucket,
) -> None:
    # gcp-storage-emulator accepts but does not enforce preconditions, so this checks what
    # goes over the wire: GCS itself answers 412 to a create-only write onto a live object.
    uri = storage.join(gcs_emulator.root, "champion.json")
    server = gcs_emulator.emulator.server
    mark = server.log_size()
    storage.write_text(uri, '{"v": 1}', overwrite=False)
    storage.write_text(uri, '{"v": 2}')
    uploads = re.findall(r"POST /upload/\S+", server.log_text(mark))
    assert len(uploads) == 2
    assert "ifGenerationMatch=0" in uploads[0]
    assert "ifGenerationMatch" not in uploads[1]
    assert storage.read_text(uri) == '{"v": 2}'
