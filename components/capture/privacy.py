"""What was typed into a password field never leaves the browser.

The page serialiser masks password values, but a secret can still surface elsewhere: a
form submitted with GET puts it in the next page's URL, a page can echo it, a labeller
can paste it. Every text the output holds passes through `Secrets.scrub`, which replaces
each typed secret (and its URL-encoded forms) with a mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

from components.capture.describe import PASSWORD_MASK


@dataclass
class Secrets:
    """The values typed into password fields during a run."""

    values: set[str] = field(default_factory=set)

    def add(self, value: str) -> None:
        if value:
            self.values.add(value)

    def _forms(self) -> list[str]:
        forms = {f for v in self.values for f in (v, quote(v, safe=""), quote_plus(v))}
        return sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers

    def scrub(self, text: str) -> str:
        for form in self._forms():
            text = text.replace(form, PASSWORD_MASK)
        return text

    def scrub_tree(self, value: Any) -> Any:
        """Scrub every string inside nested dicts and lists (evidence, failure lines)."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self.scrub_tree(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_tree(v) for v in value]
        return value
