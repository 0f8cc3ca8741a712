"""CIDEr-D that can be recomputed cheaply on any bootstrap resample of the items.

CIDEr is a corpus-level metric: its idf comes from the document frequencies of n-grams in
the reference set being scored. A bootstrap resample (items drawn with replacement) is a
different reference set, so its CIDEr is not the mean of the full-set per-item scores.
Re-running pycocoevalcap's `Cider` per resample would be correct but slow. Here the
n-gram counts are cooked once, and every quantity CIDEr-D needs (clipped dot products and
squared norms of tf-idf vectors) is a sum of ``coefficient * idf(ngram)**2``. A resample
then only re-derives document frequencies from its item multiplicities and evaluates those
sums with `numpy.bincount`.

It reproduces pycocoevalcap's `Cider` (n=4, sigma=6, clipping, the Gaussian length
penalty on bigram counts, x10) up to floating-point rounding, given PTB-tokenised text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NgramCounts = Counter[tuple[str, ...]]


def ngram_counts(sentence: str, n: int = 4) -> NgramCounts:
    """Counts of the 1..n-grams of a whitespace-tokenised sentence (pycocoevalcap's precook)."""
    words = sentence.split()
    counts: NgramCounts = Counter()
    for size in range(1, n + 1):
        for start in range(len(words) - size + 1):
            counts[tuple(words[start : start + size])] += 1
    return counts


def _bigram_total(counts: NgramCounts) -> int:
    # pycocoevalcap's "length" for the length penalty sums the bigram counts.
    return sum(count for gram, count in counts.items() if len(gram) == 2)


@dataclass(frozen=True)
class CookedSystem:
    """One system's predictions, cooked against the references of a `ResampledCider`.

    Each ``*_slot`` array says which output cell a term adds ``coef * idf**2`` into.
    """

    hyp_slot: np.ndarray  # item * n + order - 1  (squared norm of the hypothesis vector)
    hyp_gram: np.ndarray
    hyp_coef: np.ndarray
    num_slot: np.ndarray  # reference * n + order - 1  (clipped dot product)
    num_gram: np.ndarray
    num_coef: np.ndarray
    penalty: np.ndarray  # per reference: Gaussian penalty on the length difference


class ResampledCider:
    """CIDEr-D of systems against fixed references, for any weighting of the items."""

    def __init__(self, references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0):
        if not references:
            raise ValueError("no references")
        self.n = n
        self.sigma = sigma
        self.items = len(references)
        self._vocabulary: dict[tuple[str, ...], int] = {}
        cooked = [[ngram_counts(ref, n) for ref in refs] for refs in references]
        for index, refs in enumerate(cooked):
            if not refs:
                raise ValueError(f"item {index} has no references")
        self._ref_counts = cooked
        self.ref_item = np.repeat(np.arange(self.items), [len(refs) for refs in cooked])
        self.refs_per_item = np.array([len(refs) for refs in cooked], dtype=np.float64)
        self._first_ref = np.concatenate(([0], np.cumsum([len(refs) for refs in cooked])[:-1]))
        self._ref_lengths = np.array(
            [_bigram_total(counts) for refs in cooked for counts in refs], dtype=np.float64
        )

        doc_item, doc_gram = [], []
        for index, refs in enumerate(cooked):
            for gram in set().union(*refs):
                doc_item.append(index)
                doc_gram.append(self._index(gram))
        self._doc_item = np.asarray(doc_item, dtype=np.int64)
        self._doc_gram = np.asarray(doc_gram, dtype=np.int64)

        ref_slot, ref_gram, ref_coef = [], [], []
        for ref_index, counts in enumerate(counts for refs in cooked for counts in refs):
            for gram, count in counts.items():
                ref_slot.append(ref_index * n + len(gram) - 1)
                ref_gram.append(self._index(gram))
                ref_coef.append(float(count) ** 2)
        self._ref_slot = np.asarray(ref_slot, dtype=np.int64)
        self._ref_gram = np.asarray(ref_gram, dtype=np.int64)
        self._ref_coef = np.asarray(ref_coef, dtype=np.float64)

    def _index(self, gram: tuple[str, ...]) -> int:
        return self._vocabulary.setdefault(gram, len(self._vocabulary))

    def cook(self, predictions: Sequence[str]) -> CookedSystem:
        """Pre-compute a system's n-gram terms once, for any number of resamples."""
        if len(predictions) != self.items:
            raise ValueError(f"{len(predictions)} predictions for {self.items} items")
        n = self.n
        hyp_slot, hyp_gram, hyp_coef = [], [], []
        num_slot, num_gram, num_coef = [], [], []
        penalty = np.empty(len(self.ref_item), dtype=np.float64)
        ref_index = 0
        for index, sentence in enumerate(predictions):
            hyp = ngram_counts(sentence, n)
            hyp_length = _bigram_total(hyp)
            for gram, count in hyp.items():
                hyp_slot.append(index * n + len(gram) - 1)
                hyp_gram.append(self._index(gram))
                hyp_coef.append(float(count) ** 2)
            for ref in self._ref_counts[index]:
                for gram, count in hyp.items():
                    ref_count = ref.get(gram, 0)
                    if ref_count:
                        num_slot.append(ref_index * n + len(gram) - 1)
                        num_gram.append(self._vocabulary[gram])
                        num_coef.append(float(min(count, ref_count) * ref_count))
                delta = float(hyp_length - self._ref_lengths[ref_index])
                penalty[ref_index] = np.e ** (-(delta**2) / (2 * self.sigma**2))
                ref_index += 1
        return CookedSystem(
            hyp_slot=np.asarray(hyp_slot, dtype=np.int64),
            hyp_gram=np.asarray(hyp_gram, dtype=np.int64),
            hyp_coef=np.asarray(hyp_coef, dtype=np.float64),
            num_slot=np.asarray(num_slot, dtype=np.int64),
            num_gram=np.asarray(num_gram, dtype=np.int64),
            num_coef=np.asarray(num_coef, dtype=np.float64),
            penalty=penalty,
        )

    def idf_squared(self, weights: np.ndarray) -> np.ndarray:
        """idf**2 per n-gram when item i appears weights[i] times in the reference set."""
        document_frequency = np.bincount(
            self._doc_gram, weights=weights[self._doc_item], minlength=len(self._vocabulary)
        )
        idf = np.log(float(weights.sum())) - np.log(np.maximum(1.0, document_frequency))
        return idf * idf

    def reference_norms(self, idf_squared: np.ndarray) -> np.ndarray:
        """Norm of each reference's tf-idf vector, per n-gram order: (references, n)."""
        squared = np.bincount(
            self._ref_slot,
            weights=self._ref_coef * idf_squared[self._ref_gram],
            minlength=len(self.ref_item) * self.n,
        )
        return np.sqrt(squared).reshape(-1, self.n)

    def item_scores(
        self, system: CookedSystem, idf_squared: np.ndarray, reference_norms: np.ndarray
    ) -> np.ndarray:
        """Per-item CIDEr-D under the given idf (pycocoevalcap's second return value)."""
        n = self.n
        hyp_norms = np.sqrt(
            np.bincount(
                system.hyp_slot,
                weights=system.hyp_coef * idf_squared[system.hyp_gram],
                minlength=self.items * n,
            )
        ).reshape(-1, n)[self.ref_item]
        # astype: numpy's bincount returns int64 zeros when no n-gram matches at all.
        dot = (
            np.bincount(
                system.num_slot,
                weights=system.num_coef * idf_squared[system.num_gram],
                minlength=len(self.ref_item) * n,
            )
            .astype(np.float64)
            .reshape(-1, n)
        )
        both = (hyp_norms != 0) & (reference_norms != 0)
        cosine = np.divide(dot, hyp_norms * reference_norms, out=dot.copy(), where=both)
        per_reference = cosine * system.penalty[:, None]
        per_item = np.add.reduceat(per_reference, self._first_ref, axis=0)
        return per_item.mean(axis=1) / self.refs_per_item * 10.0

    def corpus_score(self, system: CookedSystem, weights: np.ndarray | None = None) -> float:
        """CIDEr-D of the reference set holding item i weights[i] times (default: once)."""
        weights = np.ones(self.items) if weights is None else np.asarray(weights, np.float64)
        idf_squared = self.idf_squared(weights)
        scores = self.item_scores(system, idf_squared, self.reference_norms(idf_squared))
        return float(weights @ scores / weights.sum())

    def paired_corpus_scores(
        self, systems: Sequence[CookedSystem], weights: np.ndarray
    ) -> np.ndarray:
        """Corpus CIDEr-D of several systems for each row of `weights`: (rows, systems).

        The systems share each row's idf, as they share its references.
        """
        weights = np.asarray(weights, dtype=np.float64)
        out = np.empty((len(weights), len(systems)))
        for row, row_weights in enumerate(weights):
            idf_squared = self.idf_squared(row_weights)
            reference_norms = self.reference_norms(idf_squared)
            total = row_weights.sum()
            for column, system in enumerate(systems):
                scores = self.item_scores(system, idf_squared, reference_norms)
                out[row, column] = row_weights @ scores / total
        return out
