"""The element's surrounding HTML, cleaned and cut to a token budget around the element.

Cleaning (stdlib html.parser, lenient with broken markup):
- script and style contents, comments, doctypes and processing instructions are dropped;
- runs of whitespace become one space; whitespace-only text between tags is dropped;
- tags are rebuilt from their parsed attributes, attribute values longer than
  MAX_ATTRIBUTE_CHARS are shortened (data: URIs, inline blobs), and "<" / ">" in text
  are escaped, so every "<" in the result opens a complete tag.

Budget: tokens are counted by a TokenCounter (token_count): the model's own tokenizer
in prepare and at serving, so the budget holds for the model that reads the prompt.
Pieces are counted one by one to choose the window; the cut is then counted whole and
shrunk until it fits, since a tokenizer may count a joined string differently.

Cut: the cleaned HTML is a sequence of pieces (whole tags and text runs). The element is
the tag whose attributes or text contain the element's visible text (the first match;
for a text match, the tag enclosing it, from its start tag to its end tag). The window
starts with the element and grows one piece at a time on whichever side has fewer
tokens so far, so the element stays centred. Tags are never split; a text run at the
edge may be cut at a token boundary. Without an element text, or when it is not found,
the window is centred on the middle of the HTML (the column holds the element's
surroundings, so the element is expected near the middle).
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

from components.prepare.token_count import PATTERN, TokenCounter, count

WHITESPACE = re.compile(r"\s+")
MAX_ATTRIBUTE_CHARS = 80
PARSE_CACHE_SIZE = 8
DROPPED_CONTENT = frozenset({"script", "style"})
VOID_ELEMENTS = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)

PieceKind = Literal["start", "end", "void", "text"]


def count_tokens(text: str, counter: TokenCounter = PATTERN) -> int:
    """Budget tokens in `text`."""
    return count(counter, text)


@dataclass(frozen=True)
class Piece:
    """A whole tag or a text run of cleaned HTML."""

    kind: PieceKind
    text: str
    tag: str = ""
    search_text: str = ""  # unescaped, lower-cased, whitespace-collapsed text to match on
    attrs: tuple[tuple[str, str | None], ...] = ()


def _normalise(text: str) -> str:
    return WHITESPACE.sub(" ", html.unescape(text)).strip().lower()


def _attribute(name: str, value: str | None) -> str:
    if value is None:
        return name
    if len(value) > MAX_ATTRIBUTE_CHARS:
        value = value[:MAX_ATTRIBUTE_CHARS] + "…"
    return f'{name}="{html.escape(WHITESPACE.sub(" ", value), quote=True)}"'


class _Cleaner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.pieces: list[Piece] = []
        self._text: list[str] = []
        self._dropping: str | None = None

    def _flush_text(self) -> None:
        raw = WHITESPACE.sub(" ", "".join(self._text))
        self._text.clear()
        if raw.strip():
            escaped = raw.replace("<", "&lt;").replace(">", "&gt;")
            self.pieces.append(Piece("text", escaped, search_text=_normalise(raw)))

    def _tag(self, kind: PieceKind, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._flush_text()
        rendered = " ".join([tag, *(_attribute(name, value) for name, value in attrs)])
        closing = (
            "/>" if kind == "void" and self.get_starttag_text().rstrip().endswith("/>") else ">"
        )
        values = " ".join(value for _, value in attrs if value)
        text = f"<{rendered}{closing}"
        self.pieces.append(Piece(kind, text, tag, _normalise(values), tuple(attrs)))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._dropping:
            return
        if tag in DROPPED_CONTENT:
            self._flush_text()
            self._dropping = tag
            return
        self._tag("void" if tag in VOID_ELEMENTS else "start", tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._dropping and tag not in DROPPED_CONTENT:
            self._tag("void", tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self._dropping:
            if tag == self._dropping:
                self._dropping = None
            return
        if tag in VOID_ELEMENTS:
            return
        self._flush_text()
        self.pieces.append(Piece("end", f"</{tag}>", tag))

    def handle_data(self, data: str) -> None:
        if not self._dropping:
            self._text.append(data)

    def handle_entityref(self, name: str) -> None:
        if not self._dropping:
            self._text.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        if not self._dropping:
            self._text.append(f"&#{name};")

    def close(self) -> None:
        super().close()
        self._flush_text()


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def html_pieces(markup: str) -> tuple[Piece, ...]:
    """Cleaned `markup` as whole tags and text runs.

    Memoised: records of one page often share their HTML, and parsing is the slow part.
    """
    cleaner = _Cleaner()
    cleaner.feed(markup)
    cleaner.close()
    return tuple(cleaner.pieces)


def clean_html(markup: str) -> str:
    """`markup` without scripts, styles and comments, whitespace collapsed."""
    return "".join(piece.text for piece in html_pieces(markup)).strip()


def _matching_end(pieces: Sequence[Piece], start: int) -> int:
    """Index of the end tag closing pieces[start], or `start` when there is none."""
    depth = 0
    tag = pieces[start].tag
    for index in range(start + 1, len(pieces)):
        piece = pieces[index]
        if piece.tag != tag:
            continue
        if piece.kind == "start":
            depth += 1
        elif piece.kind == "end":
            if depth == 0:
                return index
            depth -= 1
    return start


def _enclosing_start(pieces: Sequence[Piece], inside: int) -> int | None:
    """Index of the start tag of the innermost element around pieces[inside]."""
    open_ends: dict[str, int] = {}
    for index in range(inside - 1, -1, -1):
        piece = pieces[index]
        if piece.kind == "end":
            open_ends[piece.tag] = open_ends.get(piece.tag, 0) + 1
        elif piece.kind == "start":
            if open_ends.get(piece.tag, 0):
                open_ends[piece.tag] -= 1
            else:
                return index
    return None


def find_element(
    pieces: Sequence[Piece], element_text: str, tokens: Sequence[int]
) -> tuple[int, int, int]:
    """(first, last, core) piece indexes of the element; core is the piece that matched.

    `tokens` holds each piece's token count (for the middle, when nothing matches).
    """
    needle = _normalise(element_text)
    if needle:
        for index, piece in enumerate(pieces):
            if needle not in piece.search_text:
                continue
            if piece.kind == "text":
                start = _enclosing_start(pieces, index)
                if start is None:
                    return index, index, index
                end = _matching_end(pieces, start)
                return start, max(end, index), index
            if piece.kind == "start":
                return index, _matching_end(pieces, index), index
            return index, index, index
    half, running = sum(tokens) / 2, 0
    for index, size in enumerate(tokens):
        running += size
        if running >= half:
            return index, index, index
    return 0, 0, 0


def compact_tag(
    piece: Piece, element_text: str, budget: int, counter: TokenCounter = PATTERN
) -> str:
    """A tag too long for the budget, with only the attributes holding the element's text.

    Falls back to the bare tag name, and to "" when even that does not fit: a tag is
    shortened by dropping whole attributes, never cut.
    """
    needle = _normalise(element_text)
    kept = [(n, v) for n, v in piece.attrs if needle and v and needle in _normalise(v)]
    for attrs in (kept, []):
        text = "<" + " ".join([piece.tag, *(_attribute(n, v) for n, v in attrs)]) + ">"
        if count(counter, text) <= budget:
            return text
    return ""


def cut_html(markup: str, element_text: str, budget: int, counter: TokenCounter = PATTERN) -> str:
    """Cleaned `markup` cut to at most `budget` tokens of `counter`, centred on the element."""
    pieces, tokens = html_pieces(markup), _piece_tokens(markup, counter)
    limit = budget
    while limit > 0:
        cut = _cut(pieces, tokens, element_text, limit, counter)
        excess = count(counter, cut) - budget
        if excess <= 0:
            return cut
        limit -= excess
    return ""


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def _piece_tokens(markup: str, counter: TokenCounter) -> tuple[int, ...]:
    return tuple(counter.counts([piece.text for piece in html_pieces(markup)]))


def _cut(
    pieces: Sequence[Piece],
    tokens: Sequence[int],
    element_text: str,
    budget: int,
    counter: TokenCounter,
) -> str:
    """The window of at most `budget` tokens, counting piece by piece."""
    if not pieces:
        return ""
    if sum(tokens) <= budget:
        return "".join(piece.text for piece in pieces).strip()
    first, last, core = find_element(pieces, element_text, tokens)
    if sum(tokens[first : last + 1]) > budget:
        first = last = core
        piece = pieces[core]
        if tokens[core] > budget:
            if piece.kind == "text":
                return counter.head(piece.text, budget).strip()
            compact = compact_tag(piece, element_text, budget, counter)
            if not compact:
                return ""
            pieces = [*pieces[:core], Piece(piece.kind, compact, piece.tag), *pieces[core + 1 :]]
            tokens = [*tokens[:core], count(counter, compact), *tokens[core + 1 :]]
    used = sum(tokens[first : last + 1])
    left_parts: list[str] = []
    right_parts: list[str] = []
    left_tokens = right_tokens = 0
    left, right = first - 1, last + 1
    left_open, right_open = left >= 0, right < len(pieces)
    while left_open or right_open:
        grow_left = left_open and (not right_open or left_tokens <= right_tokens)
        index = left if grow_left else right
        piece = pieces[index]
        room = budget - used
        if tokens[index] <= room:
            text, cost, exhausted = piece.text, tokens[index], False
        elif piece.kind == "text" and room > 0:
            trim = counter.tail if grow_left else counter.head
            text, cost, exhausted = trim(piece.text, room), room, True
        else:
            text, cost, exhausted = "", 0, True
        if text:
            (left_parts if grow_left else right_parts).append(text)
        used += cost
        if grow_left:
            left_tokens += cost
            left -= 1
            left_open = not exhausted and left >= 0
        else:
            right_tokens += cost
            right += 1
            right_open = not exhausted and right < len(pieces)
    middle = "".join(piece.text for piece in pieces[first : last + 1])
    return ("".join(reversed(left_parts)) + middle + "".join(right_parts)).strip()
