"""The COCO caption toolkit's metrics, computed exactly as `COCOEvalCap` computes them.

Published BLEU/METEOR/ROUGE-L/CIDEr numbers are comparable only when they come from the
same PTB tokenisation and the same scorers, so this module calls pycocoevalcap itself:
`PTBTokenizer` on the references and on the predictions, then `Bleu(4)`, `Meteor()`,
`Rouge()` and `Cider()` (CIDEr-D) on the tokens. SPICE is not run: it downloads Stanford
CoreNLP models at run time, which cannot happen offline, so it is reported as unavailable.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pycocoevalcap.meteor.meteor import Meteor

COCO_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
UNAVAILABLE_METRICS = {
    "SPICE": "needs Stanford CoreNLP models downloaded at run time; no network",
}

# Java's PTBTokenizer (-preserveLines) also ends a line at these characters, while
# pycocoevalcap only replaces "\n". One such character in a caption would shift every
# later caption onto the wrong image, silently. Each becomes one space; for captions
# without them the tokens are exactly COCOEvalCap's.
_JAVA_LINE_BREAKS = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


@dataclass(frozen=True)
class CocoScores:
    """Corpus scores, per-item scores and the PTB tokens they were computed from."""

    corpus: dict[str, float]
    per_item: dict[str, np.ndarray]
    tokenized_predictions: tuple[str, ...]
    tokenized_references: tuple[tuple[str, ...], ...]


def require_java() -> str:
    """The `java` executable; PTBTokenizer and METEOR run on the JVM."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError(
            "`java` is not on PATH; pycocoevalcap's PTB tokenizer and METEOR need a JRE "
            "(`make java`, or `apt-get install default-jre-headless`)"
        )
    return java


def ptb_tokenize(captions: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    """PTB-tokenise, lower-case and strip punctuation, one Java call for all captions."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    require_java()
    if not captions:
        return []
    for index, group in enumerate(captions):
        for text in group:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(f"item {index}: {text!r} is not valid text: {error}") from None
    keyed = {
        index: [{"caption": _JAVA_LINE_BREAKS.sub(" ", text)} for text in group]
        for index, group in enumerate(captions)
    }
    tokens = PTBTokenizer().tokenize(keyed)
    return [tuple(tokens.get(index, ())) for index in range(len(captions))]


@functools.cache
def _meteor() -> Meteor:
    """One METEOR JVM per process: it spends seconds loading its paraphrase table."""
    from pycocoevalcap.meteor.meteor import Meteor

    require_java()
    meteor = Meteor()
    atexit.register(_stop_meteor)
    return meteor


def _stop_meteor() -> None:
    if _meteor.cache_info().currsize == 0:
        return
    meteor = _meteor()
    _meteor.cache_clear()
    # compute_score keeps its lock when it fails, and the destructor waits on that lock.
    if meteor.lock.locked():
        meteor.lock.release()
    with meteor.lock:
        with contextlib.suppress(OSError):
            meteor.meteor_p.stdin.close()
        meteor.meteor_p.kill()
        meteor.meteor_p.wait()


def coco_scores(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> CocoScores:
    """Score aligned `predictions[i]` against `references[i]` with the COCO toolkit."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predictions but {len(references)} reference lists; "
            "they must be aligned item by item"
        )
    if not predictions:
        raise ValueError("nothing to score: no predictions")
    # Two calls, as COCOEvalCap tokenises its ground truth and its results separately.
    tokenized_references = ptb_tokenize(references)
    tokenized_predictions = [group[0] for group in ptb_tokenize([[p] for p in predictions])]
    gts = {index: list(group) for index, group in enumerate(tokenized_references)}
    res = {index: [caption] for index, caption in enumerate(tokenized_predictions)}
    for index, group in gts.items():
        if len(group) != len(references[index]) or len(res[index]) != 1:
            raise RuntimeError(f"PTB tokenisation lost captions of item {index}")

    corpus: dict[str, float] = {}
    per_item: dict[str, np.ndarray] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its statistics
        bleu, bleu_items = Bleu(4).compute_score(gts, res)
    for order in range(4):
        corpus[f"Bleu_{order + 1}"] = float(bleu[order])
        per_item[f"Bleu_{order + 1}"] = np.asarray(bleu_items[order], dtype=np.float64)
    meteor = _meteor()
    try:
        meteor_score, meteor_items = meteor.compute_score(gts, res)
    except BaseException:
        _stop_meteor()  # a failed exchange leaves the JVM's pipes out of step
        raise
    corpus["METEOR"] = float(meteor_score)
    per_item["METEOR"] = np.asarray(meteor_items, dtype=np.float64)
    rouge, rouge_items = Rouge().compute_score(gts, res)
    corpus["ROUGE_L"] = float(rouge)
    per_item["ROUGE_L"] = np.asarray(rouge_items, dtype=np.float64)
    cider, cider_items = Cider().compute_score(gts, res)
    corpus["CIDEr"] = float(cider)
    per_item["CIDEr"] = np.asarray(cider_items, dtype=np.float64)
    return CocoScores(
        corpus=corpus,
        per_item=per_item,
        tokenized_predictions=tuple(tokenized_predictions),
        tokenized_references=tuple(tokenized_references),
    )
