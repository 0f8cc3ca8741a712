"""Reading `uicap run`'s terminal lines back: the start and end line of each step."""

from __future__ import annotations

import re

START = re.compile(r"^\d\d:\d\d:\d\d (\S+)\s+started$")
END = re.compile(
    r"^\d\d:\d\d:\d\d (\S+)\s+(succeeded|cached|failed)\s+(\d+\.\ds|\d+m\d\ds)(?:  (.*))?$"
)


def started(text: str) -> list[str]:
    """The steps whose start line is in `text`, in order."""
    return [match.group(1) for line in text.splitlines() if (match := START.match(line))]


def ended(text: str) -> list[tuple[str, str, str]]:
    """(step, status, figure) of each end line in `text`, in order ("" without a figure)."""
    return [
        (match.group(1), match.group(2), match.group(4) or "")
        for line in text.splitlines()
        if (match := END.match(line))
    ]
