"""Answer-format compliance: is a caption the one short sentence the QA agent expects?

Fine-tuning can teach a model a wrong answer format (several sentences, the prompt echoed
back, HTML copied from the input) while n-gram metrics still go up. This check makes that
visible. A caption complies when it breaks none of these rules; each broken rule is
reported by name so a report can say what went wrong:

- ``empty``: it holds no word at all (a word is a whitespace-separated token with at
  least one letter or digit).
- ``line_break``: it spans more than one line once surrounding whitespace is stripped.
- ``multiple_sentences``: a sentence ends inside it, that is ``.``, ``!`` or ``?``
  (optionally followed by closing quotes or brackets), then whitespace, then an upper-case
  letter or a digit, optionally behind an opening quote or bracket. Abbreviations such as
  "e.g." or "Dr." do not end a sentence, and a missing final full stop is accepted.
- ``too_long``: it has more words than the limit (25 by default).
- ``prompt_echo``: it repeats the prompt ("In a short sentence", "magenta rectangle",
  "Action data:", a field name such as ``surrounding_html``) or leaks chat-template
  tokens (``<|im_end|>``, ``<think>``, ``<image>``). Matching ignores case.
- ``html``: it holds markup: a tag such as ``<div class="x">`` or ``</a>``, a tag cut
  off inside its attributes (``<a href=``), an HTML comment or doctype, or a character
  entity such as ``&amp;``. A bare ``<`` or ``>`` in prose ("a < b") is not markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MAX_WORDS = 25

FORMAT_RULES = (
    "empty",
    "line_break",
    "multiple_sentences",
    "too_long",
    "prompt_echo",
    "html",
)

# Phrases of the captioning prompt (see DESIGN.md, "Prepared data") that a model which
# echoes its input repeats; lower case, matched as substrings.
PROMPT_ECHO_PHRASES = (
    "in a short sentence",
    "what does the action",
    "outlined with a magenta",
    "magenta rectangle",
    "action data:",
    "action_type",
    "element_type",
    "surrounding_html",
)

_WORD = re.compile(r"\w")
_LINE_BREAK = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "st", "jr", "sr", "no", "inc", "ltd"}
)
# Terminal punctuation, closing quotes/brackets, whitespace, then what starts a sentence.
_SENTENCE_BOUNDARY = re.compile(r"([.!?]+)[\"'”’)\]]*\s+[\"'“‘(\[]?[A-Z0-9]")
_TEMPLATE_TOKEN = re.compile(
    r"<\|[^<>|]{1,40}\|>|</?think>|<image>|<end_of_utterance>|</?s>", re.IGNORECASE
)
_HTML = re.compile(
    r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>"  # a whole tag
    r"|<[A-Za-z][A-Za-z0-9:-]*\s+[A-Za-z_:@][\w:.@-]*\s*="  # a tag cut off in its attributes
    r"|<!--|<!doctype"  # a comment or doctype
    r"|&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});",  # a character entity
    re.IGNORECASE,
)


@dataclass(frozen=True)
class FormatCheck:
    """The outcome of the format rules for one caption."""

    words: int
    violations: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.violations


def count_words(text: str) -> int:
    """Whitespace-separated tokens holding at least one letter or digit."""
    return sum(1 for token in text.split() if _WORD.search(token))


def _ends_a_sentence_inside(text: str) -> bool:
    for boundary in _SENTENCE_BOUNDARY.finditer(text):
        before = text[: boundary.start()].split()
        word = before[-1].lstrip("\"'“‘([").lower() if before else ""
        if boundary.group(1) == "." and word in _ABBREVIATIONS:
            continue
        return True
    return False


def check_format(caption: str, max_words: int = DEFAULT_MAX_WORDS) -> FormatCheck:
    """Apply every rule of the module docstring to `caption`."""
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}")
    text = caption.strip()
    words = count_words(text)
    if words == 0:
        return FormatCheck(words=0, violations=("empty",))
    violations: list[str] = []
    if _LINE_BREAK.search(text):
        violations.append("line_break")
    if _ends_a_sentence_inside(text):
        violations.append("multiple_sentences")
    if words > max_words:
        violations.append("too_long")
    lowered = text.lower()
    if any(phrase in lowered for phrase in PROMPT_ECHO_PHRASES) or _TEMPLATE_TOKEN.search(text):
        violations.append("prompt_echo")
    if _HTML.search(text):
        violations.append("html")
    return FormatCheck(words=words, violations=tuple(violations))
