"""Do the captions depend on the input? How many distinct captions, and how far one dominates.

A captioner that says one sentence for every element can still raise CIDEr over a weak
baseline: the words of the commonest reference earn n-gram credit on many records. So
the evaluation also measures, on the test split, the share of records whose caption is
distinct and the largest share of records one caption takes, for every model and for
the references themselves. The references are the yardstick: a candidate whose captions
are far less varied than the labels it should reproduce does not read its input.

Captions are compared after folding case and whitespace and dropping trailing sentence
punctuation, so "Opens the menu." and "opens the menu" are one caption.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

_TRAILING = ".!?;:, "


class CaptionDiversity(BaseModel):
    """How varied one system's captions (or the references) are over the same records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int
    distinct: int
    # distinct / n: 1.0 when every record gets its own caption, 1/n when all get one.
    distinct_share: float
    top_caption: str
    top_count: int
    # top_count / n: the share of records that the commonest caption takes.
    top_share: float


def normalise_caption(caption: str) -> str:
    """The form captions are compared in: case-folded, single spaces, no trailing stop."""
    return " ".join(caption.split()).casefold().rstrip(_TRAILING)


def caption_diversity(captions: Sequence[str]) -> CaptionDiversity:
    """Distinct-caption share and top-caption share of `captions` (one per record)."""
    if not captions:
        raise ValueError("caption diversity needs at least one caption")
    keys = [normalise_caption(caption) for caption in captions]
    counts = Counter(keys)
    top_key, top_count = counts.most_common(1)[0]  # ties: the first caption seen wins
    n = len(keys)
    return CaptionDiversity(
        n=n,
        distinct=len(counts),
        distinct_share=len(counts) / n,
        top_caption=captions[keys.index(top_key)],
        top_count=top_count,
        top_share=top_count / n,
    )
