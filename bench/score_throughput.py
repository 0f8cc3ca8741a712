"""Time to score 5,000 caption pairs (COCO metrics, similarity, format) and bootstrap CIDEr.

Usage: python bench/score_throughput.py [PAIRS]. The JSON result is the last line.
"""

from __future__ import annotations

import json
import sys

from score_pairs import time_scoring


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    print(json.dumps(time_scoring(pairs)))


if __name__ == "__main__":
    main()
