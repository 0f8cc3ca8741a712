"""Caption diversity on hand-made caption lists: distinct share, top-caption share, folding."""

from __future__ import annotations

import pytest

from components.evaluate.diversity import caption_diversity, normalise_caption


def test_one_sentence_for_every_record_has_one_distinct_caption() -> None:
    collapsed = caption_diversity(["Opens the user type."] * 61)
    assert (collapsed.n, collapsed.distinct, collapsed.top_count) == (61, 1, 61)
    assert collapsed.distinct_share == pytest.approx(1 / 61)
    assert collapsed.top_share == 1.0
    assert collapsed.top_caption == "Opens the user type."


def test_captions_that_all_differ_have_a_distinct_share_of_one() -> None:
    varied = caption_diversity([f"Opens the {page} page." for page in ("cart", "help", "team")])
    assert varied.distinct == 3 and varied.distinct_share == 1.0
    assert varied.top_share == pytest.approx(1 / 3)
    assert varied.top_caption == "Opens the cart page."  # ties: the first seen


def test_the_commonest_caption_and_its_share() -> None:
    captions = ["Submits the form.", "Opens help.", "Submits the form.", "Opens the cart."]
    captions += ["Submits the form."]
    diversity = caption_diversity(captions)
    assert diversity.distinct == 3 and diversity.distinct_share == pytest.approx(0.6)
    assert diversity.top_caption == "Submits the form." and diversity.top_count == 3
    assert diversity.top_share == pytest.approx(0.6)


def test_case_spacing_and_trailing_punctuation_do_not_make_a_caption_distinct() -> None:
    assert normalise_caption("  Opens   the MENU. ") == "opens the menu"
    same = caption_diversity(["Opens the menu.", "opens the menu", "Opens  the menu!"])
    assert same.distinct == 1 and same.top_share == 1.0
    assert same.top_caption == "Opens the menu."  # shown as the model wrote it first
    assert caption_diversity(["Opens the menu.", "Closes the menu."]).distinct == 2


def test_empty_captions_count_as_one_caption_and_no_captions_is_an_error() -> None:
    empty = caption_diversity(["", " ", "Opens help."])
    assert empty.distinct == 2 and empty.top_caption == "" and empty.top_count == 2
    with pytest.raises(ValueError, match="at least one caption"):
        caption_diversity([])
