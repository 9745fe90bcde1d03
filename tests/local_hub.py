"""A minimal Hugging Face hub on 127.0.0.1, so hub-id loading runs for real, offline.

It serves `/{owner}/{name}/resolve/{revision}/{file}` and datasets' `/datasets/{owner}/…`
(HEAD and GET, with the headers `huggingface_hub` reads: X-Repo-Commit, ETag,
Content-Length) from local folders, and answers as the hub does for unknown repos, missing
files and private repos without a token.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Repo:
    folder: Path
    token: str | None = None  # a private repo answers only to this bearer token
    commit: str = field(default_factory=lambda: "a" * 40)


class LocalHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, auth header)
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                hub._answer(self, send_body=False)

            def do_GET(self) -> None:
                hub._answer(self, send_body=True)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, repo_id: str, folder: Path, token: str | None = None) -> None:
        commit = hashlib.sha1(repo_id.encode()).hexdigest()
        self.repos[repo_id] = Repo(folder=folder, token=token, commit=commit)

    def __enter__(self) -> LocalHub:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, request: http.server.BaseHTTPRequestHandler, send_body: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlparse(request.path).path)
        auth = request.headers.get("Authorization")
        self.requests.append((request.command, path, auth))
        parts = path.strip("/").split("/")
        kind = ""  # a dataset's files are under /datasets/…, its id added as datasets/OWNER/NAME
        if parts[0] == "datasets":
            kind, parts = "datasets/", parts[1:]
        if len(parts) < 5 or parts[2] != "resolve":
            return _error(request, 404, "EntryNotFound", "not a file URL")
        repo_id, filename = kind + "/".join(parts[:2]), "/".join(parts[4:])
        repo = self.repos.get(repo_id)
        if repo is None or (repo.token and auth != f"Bearer {repo.token}"):
            # The hub answers 401 for both, so a private repo's existence does not leak.
            return _error(request, 401, "RepoNotFound", "Repository Not Found")
        file = repo.folder / filename
        if not file.is_file():
            return _error(request, 404, "EntryNotFound", f"{filename} not found")
        data = file.read_bytes()
        request.send_response(200)
        request.send_header("X-Repo-Commit", repo.commit)
        request.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if send_body:
            request.wfile.write(data)


def _error(request: http.server.BaseHTTPRequestHandler, code: int, kind: str, message: str) -> None:
    body = f'{{"error": "{message}"}}'.encode()
    request.send_response(code)
    request.send_header("X-Error-Code", kind)
    request.send_header("X-Error-Message", message)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(body)
