"""The `uicap` logger's one handler, shared by the commands that log while they work."""

from __future__ import annotations

import logging
import sys

from rich.console import Console


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure_logging() -> None:
    """Rich lines on a terminal; plain timestamped lines in pod logs and CI."""
    from rich.logging import RichHandler

    logger = logging.getLogger("uicap")
    if not logger.handlers:
        if sys.stderr.isatty():
            handler: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False)
        else:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
