"""A local server that speaks the Hugging Face Hub's HTTP API for the calls uicap makes.

The real `huggingface_hub` client (unmodified) talks to it through `HF_ENDPOINT`: repo
info at a revision (`dataset_info`, `model_info`), the recursive tree listing that
`snapshot_download` reads, and file downloads (`HEAD` then `GET` on `resolve/`). Each
repository is a list of commits of files; a branch is a name for the latest. The server
counts the bytes of every file body it serves, so a test can say "nothing was
downloaded" and mean it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    """A repository: commits (oldest first), each a mapping of path -> bytes."""

    repo_id: str
    kind: str  # "dataset" or "model"
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)

    def commit(self, files: dict[str, bytes]) -> str:
        parent = self.commits[-1][0] if self.commits else ""
        digest = hashlib.sha1(parent.encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha1(files[name]).digest())
        sha = digest.hexdigest()
        self.commits.append((sha, dict(files)))
        return sha

    def at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if revision == "main" and self.commits:
            return self.commits[-1]
        for sha, files in self.commits:
            if sha == revision:
                return sha, files
        return None


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every visible file under `folder`, by its path relative to the folder."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(folder).parts)
    }


class FakeHub:
    """Repositories plus the counters the tests read."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.data_bytes: Counter[str] = Counter()  # file bytes served, per repo id
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def repo(self, repo_id: str, kind: str) -> Repo:
        return self.repos.setdefault((kind, repo_id), Repo(repo_id, kind))

    def push(self, repo_id: str, kind: str, files: dict[str, bytes]) -> str:
        """A new commit on `main`; returns its sha."""
        return self.repo(repo_id, kind).commit(files)

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_POST(self) -> None:
        """Uploads as `HfApi.create_repo` and `upload_folder` make them: every file regular
        (inline, base64), so no LFS or Xet server is needed."""
        path = unquote(urlparse(self.path).path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.fake.lock:
            self.fake.calls.append(f"POST {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "validate-yaml"]:  # a README.md in a commit is checked
            return self._json({"errors": [], "warnings": []})
        if parts[:3] == ["api", "repos", "create"]:
            request = json.loads(body)
            kind = request.get("type", "model")
            name = request["name"]
            repo_id = f"{request['organization']}/{name}" if request.get("organization") else name
            self.fake.repo(repo_id, kind)
            return self._json({"url": f"{self.fake.endpoint}/{kind}s/{repo_id}", "name": repo_id})
        if parts[0] == "api" and len(parts) >= 6 and parts[1] in ("datasets", "models"):
            kind, repo_id, verb = parts[1][:-1], "/".join(parts[2:4]), parts[4]
            if verb == "preupload":
                files = json.loads(body)["files"]
                return self._json(
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                            for f in files
                        ]
                    }
                )
            if verb == "commit":
                repo = self.fake.repos.get((kind, repo_id))
                if repo is None:
                    return self._error(404, "Repository not found", code="RepoNotFound")
                files = dict(repo.commits[-1][1]) if repo.commits else {}
                for line in body.splitlines():
                    entry = json.loads(line)
                    if entry["key"] == "file":
                        files[entry["value"]["path"]] = base64.b64decode(entry["value"]["content"])
                    elif entry["key"] == "deletedFile":
                        files.pop(entry["value"]["path"], None)
                with self.fake.lock:
                    sha = repo.commit(files)
                return self._json(
                    {
                        "commitOid": sha,
                        "commitUrl": f"{self.fake.endpoint}/{kind}s/{repo_id}/commit/{sha}",
                    }
                )
        self._error(404, "Entry not found")

    def _route(self, head: bool) -> None:
        path = unquote(urlparse(self.path).path)
        with self.fake.lock:
            self.fake.calls.append(f"{self.command} {path}")
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 4 and parts[1] in ("datasets", "models"):
            return self._info(parts[1][:-1], "/".join(parts[2:4]), "main")
        if parts[0] == "api" and len(parts) >= 5 and parts[1] in ("datasets", "models"):
            kind, repo_id, verb = parts[1][:-1], "/".join(parts[2:4]), parts[4]
            rest = parts[5:]
            if verb == "revision" and rest:
                return self._info(kind, repo_id, "/".join(rest))
            if verb == "tree" and rest:
                return self._tree(kind, repo_id, rest[0], "/".join(rest[1:]))
        kind = "model"
        if parts[0] in ("datasets", "models"):
            kind, parts = parts[0][:-1], parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._file(kind, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), head)
        self._error(404, "Entry not found")

    def _lookup(self, kind: str, repo_id: str, revision: str) -> tuple[str, dict[str, bytes]]:
        repo = self.fake.repos.get((kind, repo_id))
        if repo is None:
            self._error(404, "Repository not found", code="RepoNotFound")
            raise _Handled
        found = repo.at(revision)
        if found is None:
            self._error(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
            raise _Handled
        return found

    def _info(self, kind: str, repo_id: str, revision: str) -> None:
        try:
            sha, files = self._lookup(kind, repo_id, revision)
        except _Handled:
            return
        self._json(
            {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "sha": sha,
                "private": False,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "lastModified": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "siblings": [{"rfilename": name} for name in sorted(files)],
            }
        )

    def _tree(self, kind: str, repo_id: str, revision: str, prefix: str) -> None:
        try:
            _, files = self._lookup(kind, repo_id, revision)
        except _Handled:
            return
        entries = [
            {"type": "file", "oid": _blob_id(content), "size": len(content), "path": name}
            for name, content in sorted(files.items())
            if not prefix or name.startswith(prefix.rstrip("/") + "/")
        ]
        self._json(entries)

    def _file(self, kind: str, repo_id: str, revision: str, name: str, head: bool) -> None:
        try:
            sha, files = self._lookup(kind, repo_id, revision)
        except _Handled:
            return
        if name not in files:
            self._error(404, "Entry not found", code="EntryNotFound")
            return
        content = files[name]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("ETag", f'"{_blob_id(content)}"')
        self.send_header("X-Repo-Commit", sha)
        self.end_headers()
        if not head:
            self.wfile.write(content)
            with self.fake.lock:
                self.fake.data_bytes[repo_id] += len(content)

    def _json(self, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Handled(Exception):
    """The response (an error) has been sent."""
