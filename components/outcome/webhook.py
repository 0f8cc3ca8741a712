"""Posting a run's outcome to a chat or incident webhook (Slack-compatible JSON)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from components.outcome.records import Outcome

_ATTEMPTS = 3


class WebhookError(RuntimeError):
    """The webhook did not accept the outcome; the message never contains the URL."""


def _message(outcome: Outcome) -> str:
    lines = [f"uicap run {outcome.run_id}: {outcome.status} — {outcome.decision}"]
    lines += [f"• {reason}" for reason in outcome.reasons[:8]]
    if outcome.metrics:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(outcome.metrics.items())[:8])
        lines.append(f"metrics: {shown}")
    if outcome.report:
        lines.append(f"report: {outcome.report}")
    return "\n".join(lines)


def post_outcome(url: str, outcome: Outcome, timeout_s: float = 10.0) -> int:
    """POST the outcome; bounded retries on network errors and 5xx. Returns the HTTP status."""
    host = urlsplit(url).hostname or "?"
    body = json.dumps({"text": _message(outcome), "outcome": outcome.model_dump()}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    last = ""
    for attempt in range(_ATTEMPTS):
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
            if error.code < 500:
                break
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            last = type(error).__name__
        time.sleep(0.5 * 2**attempt)
    # The URL itself is a credential for most webhooks: name only its host.
    raise WebhookError(f"webhook at host {host} did not accept the outcome ({last})")
