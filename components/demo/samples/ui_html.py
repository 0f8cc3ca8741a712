"""Small HTML builder for the `html` column: escaped, attribute order kept, one line.

The snippets imitate what a browser's outerHTML gives for an element and its parent, so the
captioner learns from markup shaped like the production data.
"""

from __future__ import annotations

import html
import re

VOID_TAGS = frozenset({"input", "img", "br", "hr", "meta", "link"})


def tag(name: str, attrs: dict[str, str | bool | None] | None = None, *children: str) -> str:
    """`<name attrs>children</name>`; True gives a bare attribute, None/False leaves it out."""
    parts = [name]
    for key, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(key)
        else:
            parts.append(f'{key}="{html.escape(value, quote=True)}"')
    opening = "<" + " ".join(parts) + ">"
    if name in VOID_TAGS:
        if children:
            raise ValueError(f"<{name}> is a void element and cannot have children")
        return opening
    return opening + "".join(children) + f"</{name}>"


def text(value: str) -> str:
    """A text node, escaped the way browsers serialise it."""
    return html.escape(value, quote=False)


def slug(value: str) -> str:
    """`Email notifications` -> `email-notifications`, for ids, names and hrefs."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def unescape(value: str) -> str:
    """Markup back to the text a user sees (to check an element's text is in its html)."""
    return html.unescape(value)
