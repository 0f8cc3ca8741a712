"""How the prompt's HTML budget counts tokens: with the model's own tokenizer.

A budget is only worth having if it holds for the model that reads the prompt: a
record's length against `train.batch.max_length` is counted in the model's tokens, so
the HTML budget is too. `PatternTokens` (runs of word characters, every other non-space
character alone) needs no model; it is kept for prepared data and registered models
from before the budget counted model tokens (`html_tokens: pattern`), so they are
still asked in the prompt they were trained on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

HtmlTokens = Literal["model", "pattern"]
TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


class TokenCounter(Protocol):
    """Counts tokens and cuts text between them."""

    def counts(self, texts: Sequence[str]) -> list[int]: ...

    def head(self, text: str, keep: int) -> str:
        """The first `keep` tokens of `text`."""
        ...

    def tail(self, text: str, keep: int) -> str:
        """The last `keep` tokens of `text`."""
        ...


def count(counter: TokenCounter, text: str) -> int:
    return counter.counts([text])[0]


def _cut_at(text: str, spans: Sequence[tuple[int, int]], keep: int, from_end: bool) -> str:
    if keep <= 0 or not spans:
        return ""
    if keep >= len(spans):
        return text
    return text[spans[-keep][0] :] if from_end else text[: spans[keep - 1][1]]


class PatternTokens:
    """The model-free count (see TOKEN_PATTERN)."""

    def counts(self, texts: Sequence[str]) -> list[int]:
        return [len(TOKEN_PATTERN.findall(text)) for text in texts]

    def head(self, text: str, keep: int) -> str:
        return _cut_at(text, [m.span() for m in TOKEN_PATTERN.finditer(text)], keep, False)

    def tail(self, text: str, keep: int) -> str:
        return _cut_at(text, [m.span() for m in TOKEN_PATTERN.finditer(text)], keep, True)


PATTERN = PatternTokens()


class TokenizerTokens:
    """A Hugging Face fast tokenizer's count, without special tokens; cuts at its offsets."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                f"{type(tokenizer).__name__} is not a fast tokenizer: the HTML budget cuts at "
                "token offsets, which only fast tokenizers give"
            )
        self.tokenizer = tokenizer

    def counts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def _spans(self, text: str) -> list[tuple[int, int]]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(span) for span in encoded["offset_mapping"]]

    def head(self, text: str, keep: int) -> str:
        return _cut_at(text, self._spans(text), keep, False)

    def tail(self, text: str, keep: int) -> str:
        return _cut_at(text, self._spans(text), keep, True)


@dataclass(frozen=True)
class BaseTokenizer:
    """Where the budget's tokenizer comes from: the base model, at its resolved revision.

    Only the source and revision travel (to prepare's worker processes, say); each
    process loads the tokenizer once.
    """

    source: str
    revision: str | None = None

    def identity(self) -> str:
        """What the prepared data depends on: a content hash alone names a local folder."""
        if self.revision and self.revision.startswith("sha256:"):
            return self.revision
        return f"{self.source}@{self.revision or 'main'}"

    def counter(self) -> TokenizerTokens:
        return _load(self.source, self.revision)


@functools.lru_cache(maxsize=4)
def _load(source: str, revision: str | None) -> TokenizerTokens:
    from transformers import AutoTokenizer

    from components.content_hash import check_pinned

    local = Path(source).is_dir()
    if local:
        check_pinned(Path(source), revision, "the base model (the HTML budget's tokenizer)")
    tokenizer = AutoTokenizer.from_pretrained(
        source, revision=None if local else revision, local_files_only=local
    )
    return TokenizerTokens(tokenizer)


def counted_in(html_tokens: HtmlTokens, tokenizer: BaseTokenizer | None) -> str | None:
    """The identity of the tokenizer the budget counts in (None: the pattern)."""
    return tokenizer.identity() if html_tokens == "model" and tokenizer else None


def html_counter(html_tokens: HtmlTokens, tokenizer: BaseTokenizer | None) -> TokenCounter:
    """The counter `html_tokens` asks for; "model" without a tokenizer is a usage error."""
    if html_tokens == "pattern":
        return PATTERN
    if tokenizer is None:
        raise ValueError(
            "html_tokens=model counts the HTML budget in the base model's tokens: give the "
            "base model's tokenizer (uicap prepare --tokenizer), or set html_tokens=pattern"
        )
    return tokenizer.counter()
