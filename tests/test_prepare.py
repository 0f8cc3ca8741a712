"""The prepare step: boxes, prompts, HTML budget, splits, conversations, manifest."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pytest
from PIL import Image

from components.demo.samples import write_sample_dataset
from components.ingest import ingest
from components.ingest.manifest import IngestManifest
from components.prepare import (
    GENERAL_PROMPT,
    MAGENTA,
    PROMPT_TEMPLATE_VERSION,
    QUESTION,
    PrepareInputError,
    PrepareManifest,
    assign_splits,
    build_prompt,
    clean_html,
    count_tokens,
    cut_html,
    draw_target_box,
    parse_fractions,
    prepare,
    prepare_general,
)
from components.prepare.boxing import OUTLINE, stroke_width
from components.prepare.config import PrepareConfig, SplitFractions
from components.prepare.conversations import read_split as read_prepared
from components.prepare.manifest import GeneralManifest, read_manifest
from components.prepare.token_count import PATTERN, BaseTokenizer, count
from tests.support.data_records import png, record, save_dataset

SPLIT_NAMES = ("train", "val", "test")
MAX_SIDE = 512  # below the sample's 1024-pixel screens, so resizing is exercised


def read_split(folder: Path, split: str) -> list[dict]:
    return json.loads((folder / f"{split}.json").read_text())


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("prepare-input")
    write_sample_dataset(root / "sample", "ui", records=48, seed=3)
    ingest(str(root / "sample"), root / "ingested")
    return root / "ingested"


@pytest.fixture(scope="module")
def prepared(
    ingested: Path, tmp_path_factory: pytest.TempPathFactory, html_tokenizer: BaseTokenizer
) -> Path:
    output = tmp_path_factory.mktemp("prepared") / "out"
    config = PrepareConfig(max_image_side=MAX_SIDE, seed=1)
    prepare(ingested, output, config, tokenizer=html_tokenizer)
    return output


def test_split_files_add_up_to_the_manifest(prepared: Path, ingested: Path) -> None:
    manifest = PrepareManifest.read(prepared)
    counts = manifest.counts
    lengths = {split: len(read_split(prepared, split)) for split in SPLIT_NAMES}
    assert lengths == {"train": counts.train, "val": counts.val, "test": counts.test}
    assert sum(lengths.values()) == counts.kept == counts.in_ - counts.duplicates_removed == 48
    assert all(lengths.values())
    assert manifest.prompt_template_version == PROMPT_TEMPLATE_VERSION
    ingest_manifest = json.loads((ingested / "manifest.json").read_text())
    assert manifest.input_fingerprint == ingest_manifest["fingerprint"]
    assert (
        manifest.ingest.source.resolved_revision == ingest_manifest["source"]["resolved_revision"]
    )
    assert manifest.fingerprint.startswith("sha256:")


def test_conversations_have_the_training_shape(prepared: Path) -> None:
    ids = []
    for split in SPLIT_NAMES:
        for item in read_split(prepared, split):
            ids.append(item["id"])
            user, assistant = item["conversations"]
            assert user["role"] == "user" and assistant["role"] == "assistant"
            assert user["content"].startswith("<image>\n" + QUESTION + "\nAction data:\n")
            assert assistant["content"].strip()
            assert (prepared / item["image"]).is_file()
            assert item["external_id"] == item["id"] and item["screen_id"] and item["element_type"]
    assert len(ids) == len(set(ids))


def test_no_screen_crosses_splits(prepared: Path) -> None:
    split_of: dict[str, str] = {}
    for split in SPLIT_NAMES:
        for item in read_split(prepared, split):
            assert split_of.setdefault(item["screen_id"], split) == split


def test_boxed_images_have_magenta_along_the_box_edges(prepared: Path, ingested: Path) -> None:
    source = {row["external_id"]: row for row in datasets.load_from_disk(str(ingested / "data"))}
    items = read_split(prepared, "train")[:6]
    for item in items:
        row = source[item["id"]]
        scale = min(1.0, MAX_SIDE / max(row["image"].size))
        # the box's pixel edges: the first and last pixel rows/columns it touches
        x0, y0 = (math.floor(v * scale) for v in row["bbox"][:2])
        x1, y1 = (math.ceil(v * scale) for v in row["bbox"][2:])
        with Image.open(prepared / item["image"]) as boxed:
            assert max(boxed.size) <= MAX_SIDE
            width, height = boxed.size
            # one pixel outside each edge, at a few points along it (unless at the border)
            for t in (0.25, 0.5, 0.75):
                x = round(x0 + t * (x1 - x0))
                y = round(y0 + t * (y1 - y0))
                if y0 > 0:
                    assert boxed.getpixel((x, y0 - 1)) == MAGENTA, item["id"]
                if y1 < height:
                    assert boxed.getpixel((x, y1)) == MAGENTA, item["id"]
                if x0 > 0:
                    assert boxed.getpixel((x0 - 1, y)) == MAGENTA, item["id"]
                if x1 < width:
                    assert boxed.getpixel((x1, y)) == MAGENTA, item["id"]


def test_draw_target_box_contrasts_on_magenta_and_keeps_its_input() -> None:
    pink = Image.new("RGB", (400, 200), (250, 10, 245))
    boxed, bbox = draw_target_box(pink, [100, 50, 200, 150], max_side=None)
    assert bbox == [100.0, 50.0, 200.0, 150.0]
    assert pink.getpixel((99, 100)) == (250, 10, 245)  # input untouched
    stroke = stroke_width(*boxed.size)
    assert boxed.getpixel((99, 100)) == MAGENTA
    assert boxed.getpixel((100 - stroke - 1, 100)) == OUTLINE  # dark stroke outside
    assert boxed.getpixel((150, 100)) == (250, 10, 245)  # the element itself is not covered

    small, scaled = draw_target_box(Image.new("L", (2000, 1000), 200), [0, 0, 1000, 500], 500)
    assert small.size == (500, 250) and small.mode == "RGB"
    assert scaled == [0.0, 0.0, 250.0, 125.0]
    assert small.getpixel((0, 0)) == MAGENTA  # at the border the stroke moves inside
    assert small.getpixel((125, 125)) == MAGENTA


def test_stroke_scales_with_image_size() -> None:
    assert stroke_width(64, 64) == 2
    assert stroke_width(1024, 640) == 4
    assert stroke_width(4096, 2000) == 16


HTML = (
    "<!DOCTYPE html><html><head><style>.x { color: red }</style>"
    "<script>var s = '<p>not html</p>';</script></head><body>\n"
    "<!-- a comment -->\n<nav>   <a href='/'>Home</a>   <a href='/docs'>Docs</a></nav>"
    + "".join(
        f"<section><h2>Part {i}</h2><p>Paragraph {i} with some words.</p></section>"
        for i in range(30)
    )
    + '<form><label for="email">Email</label><input id="email" placeholder="you@example.com">'
    '<button type="submit" class="btn btn-primary">Sign in</button></form>'
    + "".join(f"<footer><p>Footer line {i}</p></footer>" for i in range(30))
    + "</body></html>"
)


def test_clean_html_strips_scripts_styles_comments_and_whitespace() -> None:
    cleaned = clean_html(HTML)
    assert "<script" not in cleaned and "not html" not in cleaned
    assert "<style" not in cleaned and "color" not in cleaned
    assert "comment" not in cleaned and "DOCTYPE" not in cleaned
    assert "  " not in cleaned and "\n" not in cleaned
    assert '<a href="/">Home</a><a href="/docs">Docs</a>' in cleaned


def _tags_complete(fragment: str) -> bool:
    """Every '<' opens a tag that closes before the next '<'; no stray '>'."""
    return "<" not in re.sub(r"<[^<>]*>", "", fragment) and ">" not in re.sub(
        r"<[^<>]*>", "", fragment
    )


@pytest.mark.parametrize("counted", ["pattern", "model"])
@pytest.mark.parametrize("budget", [0, 3, 7, 20, 64, 150, 400])
def test_cut_html_respects_the_budget_and_never_cuts_a_tag(
    budget: int, counted: str, html_tokenizer: BaseTokenizer
) -> None:
    counter = html_tokenizer.counter() if counted == "model" else PATTERN
    cut = cut_html(HTML, "Sign in", budget, counter)
    assert count(counter, cut) <= budget
    assert _tags_complete(cut)
    whole_tags = set(re.findall(r"<[^<>]*>", clean_html(HTML)))
    assert set(re.findall(r"<[^<>]*>", cut)) <= whole_tags | {"<button>"}
    if budget >= 3:
        assert "Sign in" in cut or "<button" in cut


def test_cut_html_keeps_the_element_centred() -> None:
    cut = cut_html(HTML, "Sign in", 150)
    before, _, after = cut.partition("Sign in")
    assert abs(count_tokens(before) - count_tokens(after)) <= 25
    assert "Part 29" in cut and "Footer line 0" in cut
    assert "Part 0<" not in cut
    element = '<button type="submit" class="btn btn-primary">Sign in</button>'
    assert element in cut


def test_cut_html_keeps_everything_under_budget_and_escapes_stray_brackets() -> None:
    small = "<div>  a &lt; b  and c > d </div>"
    assert cut_html(small, "", 100) == "<div> a &lt; b and c &gt; d </div>"
    # < a href = ' x ' > Go ! < / a >
    assert count_tokens("<a href='x'>Go!</a>") == 14


def test_the_budget_counts_the_model_tokens_not_the_pattern(
    html_tokenizer: BaseTokenizer,
) -> None:
    model = html_tokenizer.counter()
    cut = cut_html(HTML, "Sign in", 64, model)
    # The tiny BPE merges markup the pattern splits (`="`, `class`), so 64 of its tokens
    # hold more HTML than 64 pattern tokens, and the model's count is the one that holds.
    assert count(model, cut) <= 64 < count_tokens(cut)
    assert len(cut) > len(cut_html(HTML, "Sign in", 64))
    # A text run at the window's edge is cut at one of the tokenizer's own boundaries.
    words = "Footer line " * 40
    assert model.head(words, 5) + words[len(model.head(words, 5)) :] == words
    assert count(model, model.head(words, 5)) == 5
    assert count(model, model.tail(words, 5)) <= 5


def test_prepare_counts_the_budget_in_the_base_models_tokens(
    prepared: Path, ingested: Path, tmp_path: Path, html_tokenizer: BaseTokenizer
) -> None:
    manifest = PrepareManifest.read(prepared)
    assert manifest.settings.html_tokens == "model"
    assert manifest.settings.html_tokenizer == html_tokenizer.identity()
    model = html_tokenizer.counter()
    budget = manifest.settings.html_budget
    for item in read_split(prepared, "train"):
        surrounding = item["conversations"][0]["content"].split("surrounding_html: ", 1)[1]
        assert count(model, surrounding) <= budget, item["id"]
    # Without the base's tokenizer, the default setting is a usage error, before any work.
    with pytest.raises(PrepareInputError, match=r"html_tokens=model .* --tokenizer"):
        prepare(ingested, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # A local base whose files changed since its content hash was resolved is refused.
    pinned = BaseTokenizer(html_tokenizer.source, "sha256:" + "0" * 64)
    with pytest.raises(PrepareInputError, match="changed since it was recorded"):
        prepare(ingested, tmp_path / "out", tokenizer=pinned)
    # Where the budget cuts (the sample's HTML fits 256 tokens either way), the two
    # counts keep different HTML.
    tight = {"max_image_side": MAX_SIDE, "seed": 1, "html_budget_tokens": 24}
    by_model = prepare(
        ingested, tmp_path / "model", PrepareConfig(**tight), tokenizer=html_tokenizer
    )
    by_pattern = prepare(
        ingested, tmp_path / "pattern", PrepareConfig(**tight, html_tokens="pattern")
    )
    assert (by_pattern.settings.html_tokens, by_pattern.settings.html_tokenizer) == (
        "pattern",
        None,
    )
    assert by_pattern.fingerprint != by_model.fingerprint


def test_build_prompt_keeps_the_original_shape() -> None:
    prompt = build_prompt("click", "button", "Sign  in", "<div><button>Sign in</button></div>", 64)
    assert prompt == (
        f"{QUESTION}\nAction data:\naction_type: click\nelement_type: button\n"
        "text: Sign in\nsurrounding_html: <div><button>Sign in</button></div>"
    )
    assert build_prompt("type", "input", "", "", 64).endswith("text: \nsurrounding_html: ")


def test_splits_are_deterministic_grouped_and_stable_as_data_grows() -> None:
    keys = [f"screen-{i}" for i in range(200)]
    first = assign_splits(keys, (0.8, 0.1, 0.1), seed=7)
    assert first == assign_splits(list(reversed(keys)), (0.8, 0.1, 0.1), seed=7)
    assert first != assign_splits(keys, (0.8, 0.1, 0.1), seed=8)
    counts = {s: list(first.values()).count(s) for s in SPLIT_NAMES}
    assert 140 <= counts["train"] <= 180 and counts["val"] > 5 and counts["test"] > 5
    grown = assign_splits([*keys, *(f"new-{i}" for i in range(100))], (0.8, 0.1, 0.1), seed=7)
    assert all(grown[key] == split for key, split in first.items())


@pytest.mark.parametrize("seed", range(6))
def test_tiny_datasets_still_get_val_and_test(seed: int) -> None:
    assignment = assign_splits(["a", "b", "c"], (0.8, 0.1, 0.1), seed=seed)
    assert sorted(assignment.values()) == ["test", "train", "val"]
    assert set(assign_splits(["a", "b"], (0.8, 0.1, 0.1), seed=seed).values()) <= set(SPLIT_NAMES)


def test_split_fractions_are_checked() -> None:
    assert parse_fractions("0.7,0.2,0.1") == (0.7, 0.2, 0.1)
    for bad in ("0.8,0.1", "0.8,0.1,0.2", "a,b,c", "0,0.5,0.5", "1.2,-0.1,-0.1"):
        with pytest.raises(ValueError):
            parse_fractions(bad)


def test_exact_duplicates_are_removed_and_listed(
    tmp_path: Path, html_tokenizer: BaseTokenizer
) -> None:
    same_image = png(colour=(9, 9, 9))
    rows = [
        record(0, image=same_image),
        record(1, image=same_image, summary="Opens page number 0."),  # same box + summary
        record(2, image=same_image, summary="Something else."),
        record(3),
        record(4),
    ]
    source = save_dataset(tmp_path / "source", rows)
    ingest(str(source), tmp_path / "ingested")
    manifest = prepare(tmp_path / "ingested", tmp_path / "out", tokenizer=html_tokenizer)
    assert manifest.counts.duplicates_removed == 1
    assert [(d.external_id, d.duplicate_of) for d in manifest.duplicates] == [
        ("rec-001", "rec-000")
    ]
    assert manifest.counts.kept == 4
    written = [item["id"] for split in SPLIT_NAMES for item in read_split(tmp_path / "out", split)]
    assert sorted(written) == ["rec-000", "rec-002", "rec-003", "rec-004"]


def test_records_without_screen_id_are_grouped_by_image(
    tmp_path: Path, html_tokenizer: BaseTokenizer
) -> None:
    rows = [record(i, screen_id="", image=png(colour=(i // 3 * 40, 0, 0))) for i in range(18)]
    source = save_dataset(tmp_path / "source", rows)
    ingest(str(source), tmp_path / "ingested")
    halves = PrepareConfig(splits=SplitFractions(train=0.5, validation=0.25, test=0.25))
    manifest = prepare(tmp_path / "ingested", tmp_path / "out", halves, tokenizer=html_tokenizer)
    assert sum(manifest.groups.values()) == 6
    split_of_image: dict[int, str] = {}
    for split in SPLIT_NAMES:
        for item in read_split(tmp_path / "out", split):
            image_group = int(item["id"].split("-")[1]) // 3
            assert split_of_image.setdefault(image_group, split) == split


def test_two_workers_write_the_same_output_as_one(
    ingested: Path, tmp_path: Path, html_tokenizer: BaseTokenizer
) -> None:
    one = prepare(
        ingested,
        tmp_path / "one",
        PrepareConfig(max_image_side=256, workers=1),
        tokenizer=html_tokenizer,
    )
    two = prepare(
        ingested,
        tmp_path / "two",
        PrepareConfig(max_image_side=256, workers=2),
        tokenizer=html_tokenizer,
    )
    assert one.fingerprint == two.fingerprint
    for split in SPLIT_NAMES:
        assert read_split(tmp_path / "one", split) == read_split(tmp_path / "two", split)
    budget = PrepareConfig(max_image_side=256, html_budget_tokens=5)
    changed = prepare(ingested, tmp_path / "three", budget, tokenizer=html_tokenizer)
    assert changed.fingerprint != one.fingerprint


# Renders four records with N workers in a fresh interpreter (multiprocessing keeps its
# temp folder per process) and prints the start method and the PNG digests.
_RENDER_SCRIPT = textwrap.dedent(
    """
    import io, json, sys
    from pathlib import Path
    from PIL import Image
    from components.prepare.render import RecordJob, RenderSettings, ScreenJob
    from components.prepare.render import render_all, worker_context

    image = io.BytesIO()
    Image.new("RGB", (96, 60), "white").save(image, format="PNG")
    jobs = [
        ScreenJob(image.getvalue(), (RecordJob(i, (4, 4, 20 + i, 12), f"{i}.png", "click",
                                               "button", "OK", "<button>OK</button>"),))
        for i in range(4)
    ]
    out = Path(sys.argv[1])
    out.mkdir()
    done = render_all(jobs, RenderSettings(out, None, 64), workers=int(sys.argv[2]))
    print(worker_context().get_start_method())
    print(json.dumps([done[i].png_sha256 for i in range(4)]))
    """
)


def _render_in_a_fresh_process(temp: Path, output: Path, workers: int) -> list[str]:
    env = {**os.environ, "TMPDIR": str(temp)}
    done = subprocess.run(
        [sys.executable, "-c", _RENDER_SCRIPT, str(output), str(workers)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[1],
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")[:2]


def test_workers_render_under_a_temp_folder_too_deep_for_a_unix_socket(tmp_path: Path) -> None:
    # kfp.local and `make run` put TMPDIR in the work folder; a forkserver's socket path
    # there can pass the 107 bytes a Unix socket allows ("AF_UNIX path too long").
    deep = tmp_path / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    shallow = Path("/tmp")
    method, digests = _render_in_a_fresh_process(deep, tmp_path / "deep", workers=2)
    assert method == "spawn"
    short_method, short_digests = _render_in_a_fresh_process(shallow, tmp_path / "short", 2)
    assert short_method == "forkserver"
    _, one_worker = _render_in_a_fresh_process(shallow, tmp_path / "one", workers=1)
    assert digests == short_digests == one_worker
    assert len(set(json.loads(digests))) == 4


def test_the_same_records_and_settings_reuse_the_stored_output(
    ingested: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, html_tokenizer: BaseTokenizer
) -> None:
    from components.prepare import reuse

    store, config = str(tmp_path / "store"), PrepareConfig(max_image_side=256)
    first, kept = reuse.prepare_reusing(
        ingested, tmp_path / "first", config, store, tokenizer=html_tokenizer
    )
    assert not kept.reused
    assert (Path(kept.entry) / reuse.COMPLETE_MARKER).is_file()

    # The same records under another source name and revision (a mirror, a new commit).
    moved = tmp_path / "moved-ingest"
    shutil.copytree(ingested, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["source"].update(dataset="mirror/ui", resolved_revision="f" * 40)
    (moved / "manifest.json").write_text(json.dumps(manifest))

    def no_rendering(*args: object, **kwargs: object) -> None:
        raise AssertionError("prepare rendered again")

    monkeypatch.setattr("components.prepare.run.prepare", no_rendering)
    second, again = reuse.prepare_reusing(
        moved, tmp_path / "second", config, store, tokenizer=html_tokenizer
    )
    assert again.reused and again.key == kept.key
    assert second.fingerprint == first.fingerprint
    # The copy carries this run's lineage, not the run that rendered it.
    assert second.source.dataset == "mirror/ui" and second.source.resolved_revision == "f" * 40
    assert not (tmp_path / "second" / reuse.COMPLETE_MARKER).exists()
    for split in SPLIT_NAMES:
        assert read_split(tmp_path / "first", split) == read_split(tmp_path / "second", split)
    images = sorted(p.name for p in (tmp_path / "first" / "images").iterdir())
    assert images == sorted(p.name for p in (tmp_path / "second" / "images").iterdir())

    # Other settings, or another base's tokenizer, are another entry; an entry without
    # its marker is never read.
    records = IngestManifest.read(ingested)
    other = PrepareConfig(max_image_side=128)
    assert reuse.prepared_key(records, other, html_tokenizer) != kept.key
    moved_base = BaseTokenizer(html_tokenizer.source, "sha256:" + "0" * 64)
    assert reuse.prepared_key(records, config, moved_base) != kept.key
    (Path(kept.entry) / reuse.COMPLETE_MARKER).unlink()
    with pytest.raises(AssertionError, match="rendered again"):
        reuse.prepare_reusing(moved, tmp_path / "third", config, store, tokenizer=html_tokenizer)


def test_prepare_refuses_an_ingest_output_that_failed_its_gate(
    tmp_path: Path, html_tokenizer: BaseTokenizer
) -> None:
    source = save_dataset(tmp_path / "source", [record(0), record(1, bbox=None)])
    with pytest.raises(Exception, match="quarantined 1 of 2"):
        ingest(str(source), tmp_path / "ingested")
    with pytest.raises(PrepareInputError, match="failed its quarantine gate"):
        prepare(tmp_path / "ingested", tmp_path / "out", tokenizer=html_tokenizer)
    with pytest.raises(PrepareInputError, match=r"no manifest\.json"):
        prepare(tmp_path / "nothing", tmp_path / "out", tokenizer=html_tokenizer)
    all_bad = save_dataset(tmp_path / "all-bad", [record(0, summary=""), record(1, image=None)])
    emptied = ingest(str(all_bad), tmp_path / "emptied", max_quarantine_fraction=1.0)
    assert (emptied.counts.kept, emptied.counts.quarantined) == (0, 2)
    with pytest.raises(PrepareInputError, match="holds no records"):
        prepare(tmp_path / "emptied", tmp_path / "out", tokenizer=html_tokenizer)
    assert not (tmp_path / "out").exists()


def test_general_captions_become_conversations(tmp_path: Path) -> None:
    write_sample_dataset(tmp_path / "general", "general", records=12, seed=0)
    manifest = prepare_general(str(tmp_path / "general"), tmp_path / "out", max_image_side=160)
    assert manifest.counts.in_ == manifest.counts.kept == 12
    total = 0
    for split in SPLIT_NAMES:
        for item in read_split(tmp_path / "out", split):
            total += 1
            user, assistant = item["conversations"]
            assert user["content"] == "<image>\n" + GENERAL_PROMPT
            assert assistant["content"]
            with Image.open(tmp_path / "out" / item["image"]) as image:
                assert max(image.size) == 160
                assert MAGENTA not in {image.getpixel((x, 0)) for x in range(image.width)}
    assert total == 12
    assert min(manifest.counts.val, manifest.counts.test) >= 1


def test_both_kinds_of_prepared_folder_read_through_one_manifest_and_split_reader(
    prepared: Path, tmp_path: Path
) -> None:
    ui = read_manifest(prepared)
    assert isinstance(ui, PrepareManifest) and ui.step == "prepare"
    assert ui.source == ui.ingest.source and ui.settings.max_image_side == MAX_SIDE
    write_sample_dataset(tmp_path / "general", "general", records=12, seed=0)
    prepare_general(str(tmp_path / "general"), tmp_path / "out", max_image_side=160)
    general = read_manifest(tmp_path / "out")
    assert isinstance(general, GeneralManifest) and general.step == "prepare-general"
    assert general.source.dataset.endswith("general") and ui.source.dataset.endswith("sample")
    # The records as training, evaluation and the benches get them.
    items = read_split(prepared, "test")
    records = read_prepared(prepared, "test")
    assert [r.id for r in records] == [item["id"] for item in items]
    first, item = records[0], items[0]
    assert first.image == prepared / item["image"] and first.image_name == item["image"]
    assert "<image>\n" + first.prompt == item["conversations"][0]["content"]
    assert first.answer == item["conversations"][1]["content"]
    assert (first.external_id, first.screen_id, first.element_type) == (
        item["external_id"],
        item["screen_id"],
        item["element_type"],
    )
    assert read_prepared(tmp_path / "out", "test")[0].element_type is None
    with pytest.raises(FileNotFoundError, match=r"no manifest\.json"):
        read_manifest(tmp_path / "general")
    broken = json.loads((prepared / "manifest.json").read_text())
    del broken["fingerprint"]
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"prepare\.fingerprint: Field required"):
        read_manifest(tmp_path / "broken")


def test_general_captions_quarantine_bad_records(tmp_path: Path) -> None:
    from tests.support.data_records import save_dataset as save

    columns = {"external_id": "string", "image": "image", "caption": "string"}
    rows = [
        {"external_id": "g0", "image": png(), "caption": "A blue square."},
        {"external_id": "g1", "image": b"junk", "caption": "Broken."},
        {"external_id": "g2", "image": png(colour=(1, 2, 3)), "caption": "  "},
        {"external_id": "g0", "image": png(colour=(5, 5, 5)), "caption": "Same id."},
        {"external_id": "g4", "image": png(colour=(7, 7, 7)), "caption": "A dark square."},
    ]
    source = save(tmp_path / "general", rows, columns)
    manifest = prepare_general(str(source), tmp_path / "out")
    assert (manifest.counts.in_, manifest.counts.kept, manifest.counts.quarantined) == (5, 2, 3)
    assert [(e.external_id, e.field, e.reason) for e in manifest.quarantine] == [
        ("g1", "image", "undecodable"),
        ("g2", "caption", "missing or blank"),
        ("g0", "external_id", "duplicate"),
    ]
