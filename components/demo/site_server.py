"""The demo product on loopback: a static multi-page site that `uicap capture` is shown on.

The recorded flows in components/demo/flows/ name `http://127.0.0.1:8765`, where
`python -m components.demo.site_server` serves it; tests serve it on a free port and
rewrite the flows' origin (`uicap capture --rewrite-origin`).
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SITE_DIR = Path(__file__).resolve().parent / "site"
FLOWS_DIR = Path(__file__).resolve().parent / "flows"
RECORDED_ORIGIN = "http://127.0.0.1:8765"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class DemoSite:
    """The site served from a background thread; `origin` is where it answers."""

    def __init__(self, port: int = 0) -> None:
        handler = partial(_QuietHandler, directory=str(SITE_DIR))
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> DemoSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def demo_flows() -> list[Path]:
    """The recorded flows, in name order."""
    return sorted(FLOWS_DIR.glob("*.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the demo product on loopback.")
    parser.add_argument("--port", type=int, default=int(RECORDED_ORIGIN.rsplit(":", 1)[1]))
    port = parser.parse_args().port
    with DemoSite(port) as site:
        print(f"demo product at {site.origin}/index.html (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
