"""Whether a run has anything new to learn from, judged against the champion's lineage."""

from components.lineage.run import (
    LINEAGE_KEY_TAG,
    LINEAGE_TAG,
    LineageCheck,
    RunLineage,
    check_against_champion,
    run_lineage,
)

__all__ = [
    "LINEAGE_KEY_TAG",
    "LINEAGE_TAG",
    "LineageCheck",
    "RunLineage",
    "check_against_champion",
    "run_lineage",
]
