"""How far a server's captions agree with uicap's: identical captions, and shared prefixes.

A mismatched template or processor shows as captions that differ from the first token;
a numerical difference between engines shows, at worst, as a late divergence after a
long common prefix. So both are counted, in the model's own tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Disagreement:
    id: str
    ours: str
    theirs: str
    prefix_tokens: int


@dataclass(frozen=True)
class Agreement:
    records: int
    identical: int
    mean_prefix_tokens: float
    mean_caption_tokens: float
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        return self.identical / self.records if self.records else 0.0

    def summary(self) -> dict[str, float | int]:
        return {
            "records": self.records,
            "agreement": round(self.agreement, 4),
            "mean_prefix_tokens": round(self.mean_prefix_tokens, 2),
            "mean_caption_tokens": round(self.mean_caption_tokens, 2),
        }


def common_prefix(a: list[int], b: list[int]) -> int:
    length = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        length += 1
    return length


def compare(
    ours: Mapping[str, str], theirs: Mapping[str, str], tokenize: Callable[[str], list[int]]
) -> Agreement:
    """Agreement over the records both sides captioned; a record either side lacks is an
    error, not a silent drop."""
    missing = sorted(set(ours) ^ set(theirs))
    if missing:
        raise ValueError(f"captions missing on one side for record(s): {', '.join(missing[:10])}")
    if not ours:
        raise ValueError("no records to compare")
    identical = 0
    prefixes: list[int] = []
    lengths: list[int] = []
    disagreements: list[Disagreement] = []
    for record_id, caption in ours.items():
        other = theirs[record_id]
        tokens, other_tokens = tokenize(caption), tokenize(other)
        lengths.append(len(tokens))
        if caption == other:
            identical += 1
            prefixes.append(len(tokens))
            continue
        prefix = common_prefix(tokens, other_tokens)
        prefixes.append(prefix)
        disagreements.append(Disagreement(record_id, caption, other, prefix))
    return Agreement(
        records=len(ours),
        identical=identical,
        mean_prefix_tokens=sum(prefixes) / len(prefixes),
        mean_caption_tokens=sum(lengths) / len(lengths),
        disagreements=disagreements,
    )
