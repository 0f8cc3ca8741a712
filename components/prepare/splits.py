"""Train/val/test assignment by group (a screen), stable as the data grows.

Each group's split follows from a hash of the seed and the group key alone: the hash,
read as a number in [0, 1), falls into one of the consecutive fraction intervals. So a
screen never crosses splits, the same seed always gives the same assignment, and when
next week's data adds screens, this week's screens stay where they were: a screen the
champion was tested on never moves into a later candidate's training split.

Tiny datasets: with at least three groups, every split with a non-zero fraction gets at
least one group; a missing split takes the group whose hash lies nearest its interval
from the split that has the most groups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
TOLERANCE = 1e-6


def parse_fractions(spec: str | Sequence[float]) -> tuple[float, float, float]:
    """`"0.8,0.1,0.1"` (or a sequence) as three non-negative fractions summing to 1."""
    if isinstance(spec, str):
        try:
            values = [float(part) for part in spec.split(",")]
        except ValueError as error:
            raise ValueError(f"split fractions {spec!r} are not numbers: {error}") from error
    else:
        values = [float(v) for v in spec]
    if len(values) != len(SPLITS):
        raise ValueError(f"expected 3 split fractions (train,val,test), got {values}")
    if any(v < 0 for v in values) or values[0] <= 0:
        raise ValueError(f"split fractions must be >= 0 with train > 0, got {values}")
    if abs(sum(values) - 1.0) > TOLERANCE:
        raise ValueError(f"split fractions must sum to 1, got {values} (sum {sum(values)})")
    return values[0], values[1], values[2]


def group_position(key: str, seed: int) -> float:
    """Where a group falls in [0, 1): a hash of the seed and the key, nothing else."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    keys: Iterable[str], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> dict[str, str]:
    """Group key -> split name."""
    bounds = _bounds(fractions)
    positions = {key: group_position(key, seed) for key in sorted(set(keys))}
    assignment = {
        key: next(name for name, (_, high) in zip(SPLITS, bounds, strict=True) if pos < high)
        for key, pos in positions.items()
    }
    if len(positions) >= len(SPLITS):
        _fill_empty_splits(assignment, positions, fractions, bounds)
    return assignment


def _bounds(fractions: Sequence[float]) -> list[tuple[float, float]]:
    edges = [0.0]
    for fraction in fractions:
        edges.append(edges[-1] + fraction)
    edges[-1] = 1.0 + TOLERANCE  # every position < 1 lands somewhere despite rounding
    return [(edges[i], edges[i + 1]) for i in range(len(SPLITS))]


def _fill_empty_splits(
    assignment: dict[str, str],
    positions: dict[str, float],
    fractions: Sequence[float],
    bounds: list[tuple[float, float]],
) -> None:
    for name, fraction, (low, high) in zip(SPLITS, fractions, bounds, strict=True):
        if fraction <= 0 or name in assignment.values():
            continue
        sizes = {s: sum(1 for v in assignment.values() if v == s) for s in SPLITS}
        donor = max(SPLITS, key=lambda s: (sizes[s], -SPLITS.index(s)))
        centre = (low + min(high, 1.0)) / 2
        candidates = [key for key, split in assignment.items() if split == donor]
        moved = min(candidates, key=lambda key: (abs(positions[key] - centre), key))
        assignment[moved] = name
