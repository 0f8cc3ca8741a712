"""The sample datasets: contract, layout, truthfulness of labels, determinism, and the CLI."""

from __future__ import annotations

import hashlib
import html
import io
import re
from collections import Counter, defaultdict
from pathlib import Path

import datasets
import pytest
from PIL import Image
from typer.testing import CliRunner

from components.demo.samples import (
    SCREEN_KINDS,
    SUMMARY_TEMPLATES,
    draw_scene,
    draw_screen,
    general_records,
    sample_text_corpus,
    ui_records,
    write_sample_dataset,
)
from components.demo.samples.general_scenes import COLOURS
from pipelines.cli import app

CONTRACT_STRINGS = (
    "external_id",
    "action_type",
    "element_type",
    "text",
    "html",
    "summary",
    "screen_id",
)


def load(folder: Path, cache: Path) -> datasets.Dataset:
    return datasets.load_dataset(str(folder), split="train", cache_dir=str(cache))


@pytest.fixture(scope="module")
def default_ui(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, datasets.Dataset, str]:
    """The default dataset, made the way a user makes it: through the CLI."""
    folder = tmp_path_factory.mktemp("ui-default")
    result = CliRunner().invoke(app, ["sample-data", "--output", str(folder)])
    assert result.exit_code == 0, result.output
    return folder, load(folder, tmp_path_factory.mktemp("hf-cache")), result.output


def template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", "(.+)", re.escape(template)) + r"\Z")


def summary_template(summary: str) -> str | None:
    """The most specific template (most literal text) that produces `summary`, if any."""
    matches = [k for k, t in SUMMARY_TEMPLATES.items() if template_regex(t).match(summary)]
    literal = {k: len(re.sub(r"\{\w+\}", "", SUMMARY_TEMPLATES[k])) for k in matches}
    return max(matches, key=literal.__getitem__) if matches else None


def decoded_screens(ds: datasets.Dataset) -> dict[str, Image.Image]:
    raw = ds.cast_column("image", datasets.Image(decode=False))
    screens: dict[str, Image.Image] = {}
    for screen_id, image in zip(raw["screen_id"], raw["image"], strict=True):
        if screen_id not in screens:
            screens[screen_id] = Image.open(io.BytesIO(image["bytes"])).convert("RGB")
    return screens


def test_cli_default_is_a_loadable_hub_dataset_in_the_contract(default_ui) -> None:
    folder, ds, output = default_ui
    assert len(ds) == 600
    assert "600" in output and str(folder) in output
    assert sorted(p.name for p in (folder / "data").iterdir()) == [
        "train-00000-of-00003.parquet",
        "train-00001-of-00003.parquet",
        "train-00002-of-00003.parquet",
    ]
    features = ds.features
    assert isinstance(features["image"], datasets.Image)
    assert features["bbox"] == datasets.List(datasets.Value("float32"), length=4)
    for column in CONTRACT_STRINGS:
        assert features[column] == datasets.Value("string"), column
    assert isinstance(ds[0]["image"], Image.Image)
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "path: data/train-*" in card and "dtype: image" in card
    for column in (*CONTRACT_STRINGS, "image", "bbox"):
        assert f"| `{column}` |" in card, column


def test_bboxes_lie_inside_their_image_and_cover_drawn_pixels(default_ui) -> None:
    _, ds, _ = default_ui
    screens = decoded_screens(ds)
    sizes = {image.size for image in screens.values()}
    assert sizes == {(1024, 640), (360, 720)}, "both desktop and mobile screens are present"
    for screen_id, bbox, record_id in zip(
        ds["screen_id"], ds["bbox"], ds["external_id"], strict=True
    ):
        image = screens[screen_id]
        x0, y0, x1, y1 = bbox
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height, record_id
        extrema = image.crop((int(x0), int(y0), int(x1), int(y1))).getextrema()
        assert any(low != high for low, high in extrema), f"{record_id}: bbox is plain background"


def test_screens_are_whole_and_hold_3_to_10_records(default_ui) -> None:
    _, ds, _ = default_ui
    raw = ds.cast_column("image", datasets.Image(decode=False))
    images_of: dict[str, set[str]] = defaultdict(set)
    screens_of: dict[str, set[str]] = defaultdict(set)
    for screen_id, image in zip(raw["screen_id"], raw["image"], strict=True):
        digest = hashlib.sha256(image["bytes"]).hexdigest()
        images_of[screen_id].add(digest)
        screens_of[digest].add(screen_id)
    assert all(len(digests) == 1 for digests in images_of.values())
    assert all(len(ids) == 1 for ids in screens_of.values())
    counts = Counter(ds["screen_id"])
    assert min(counts.values()) >= 3 and max(counts.values()) <= 10
    assert len(set(ds["external_id"])) == len(ds)
    for record_id, screen_id in zip(ds["external_id"], ds["screen_id"], strict=True):
        assert record_id.startswith(screen_id + "-e")


def test_html_matches_text_and_summaries_are_one_sentence(default_ui) -> None:
    _, ds, _ = default_ui
    for record in ds.remove_columns("image"):
        assert record["text"] in html.unescape(record["html"]), record["external_id"]
        assert record["html"].startswith("<") and record["html"].endswith(">")
        summary = record["summary"]
        assert summary[0].isupper() and summary.endswith("."), summary
        assert ". " not in summary, summary
    assert {"button", "link", "input", "checkbox", "select", "toggle", "icon"} <= set(
        ds["element_type"]
    )
    assert {"click", "type", "select", "toggle", "hover", "scroll"} <= set(ds["action_type"])
    assert "" in set(ds["text"]), "icon-only elements have no text"


def test_summaries_use_at_least_40_distinct_patterns(default_ui) -> None:
    _, ds, _ = default_ui
    templates = list(SUMMARY_TEMPLATES.values())
    assert len(set(templates)) == len(templates) >= 40
    used = Counter()
    for summary in ds["summary"]:
        key = summary_template(summary)
        assert key is not None, f"{summary!r} matches no template"
        used[key] += 1
    assert len(used) >= 40, sorted(used)
    assert len(set(ds["summary"])) >= 200, "slots vary the wording within a pattern"


def test_summaries_follow_what_the_screen_shows() -> None:
    draft = draw_screen("settings", "desktop", 11)
    toggles = [e for e in draft.elements if e.element_type == "toggle"]
    assert toggles
    for toggle in toggles:
        on = 'aria-checked="true"' in toggle.html
        assert toggle.summary.endswith(" off.") == on, toggle
    draft = draw_screen("table", "desktop", 4)
    table = next(e for e in draft.elements if e.template == "table_export").summary
    assert re.fullmatch(
        r"Downloads the (orders|invoices|users|tickets) table as a CSV file\.", table
    )


def test_generation_is_deterministic_per_seed() -> None:
    first = list(ui_records(25, seed=5))
    assert first == list(ui_records(25, seed=5))
    assert first != list(ui_records(25, seed=6))
    assert len(first) == 25
    assert list(general_records(9, seed=5)) == list(general_records(9, seed=5))
    assert list(general_records(9, seed=5)) != list(general_records(9, seed=6))


def test_same_seed_writes_identical_parquet_bytes(tmp_path: Path) -> None:
    shards = []
    for name in ("a", "b"):
        write_sample_dataset(tmp_path / name, records=40, seed=2)
        shards.append((tmp_path / name / "data" / "train-00000-of-00001.parquet").read_bytes())
    assert shards[0] == shards[1]
    assert (tmp_path / "a" / "README.md").read_text() == (tmp_path / "b" / "README.md").read_text()


def test_rewriting_a_folder_replaces_its_shards(tmp_path: Path) -> None:
    write_sample_dataset(tmp_path / "d", records=250, seed=1)
    assert len(list((tmp_path / "d" / "data").iterdir())) == 2
    write_sample_dataset(tmp_path / "d", records=30, seed=1)
    assert [p.name for p in (tmp_path / "d" / "data").iterdir()] == ["train-00000-of-00001.parquet"]
    assert len(load(tmp_path / "d", tmp_path / "cache")) == 30


def test_every_screen_kind_draws_on_every_device_it_supports() -> None:
    for kind, (_, devices) in SCREEN_KINDS.items():
        for device in devices:
            for seed in range(3):
                draft = draw_screen(kind, device, seed)
                assert len(draft.elements) >= 3, (kind, device, seed)
    with pytest.raises(ValueError, match="drawn for desktop"):
        draw_screen("table", "mobile", 0)


def test_general_kind_loads_with_one_sentence_captions(tmp_path: Path) -> None:
    write_sample_dataset(tmp_path / "g", kind="general", records=21, seed=0)
    ds = load(tmp_path / "g", tmp_path / "cache")
    assert ds.column_names == ["external_id", "image", "caption"]
    assert isinstance(ds.features["image"], datasets.Image)
    assert isinstance(ds[0]["image"], Image.Image)
    for caption in ds["caption"]:
        assert caption and caption[0].isupper() and caption.endswith(".")
        assert ". " not in caption
    assert len(set(ds["caption"])) >= 15


def _pixels_of(image: Image.Image, colour: str) -> list[tuple[int, int]]:
    rgb = Image.new("RGB", (1, 1), colour).getpixel((0, 0))
    width = image.width
    return [(i % width, i // width) for i, px in enumerate(image.getdata()) if px == rgb]


@pytest.mark.parametrize("seed", range(6))
def test_shape_captions_name_exactly_the_colours_drawn(seed: int) -> None:
    for kind in ("shapes", "shapes_above", "shapes_beside", "shape_inside"):
        image, caption = draw_scene(kind, seed)
        shapes = re.sub(r" on a [a-z ]+ background", "", caption)
        named = {c for c in COLOURS if re.search(rf"\b{c}\b", shapes)}
        drawn = {c for c, value in COLOURS.items() if _pixels_of(image, value)}
        assert named == drawn, (kind, caption)


@pytest.mark.parametrize("seed", range(6))
def test_spatial_words_match_the_layout(seed: int) -> None:
    for kind, axis, word in (("shapes_above", 1, "above"), ("shapes_beside", 0, "to the left of")):
        image, caption = draw_scene(kind, seed)
        first, second = caption[:-1].split(f" {word} ")
        colour_a = next(c for c in COLOURS if f" {c} " in f" {first.lower()} ")
        colour_b = next(c for c in COLOURS if f" {c} " in f" {second} ")
        if colour_a == colour_b:
            continue
        end_a = max(p[axis] for p in _pixels_of(image, COLOURS[colour_a]))
        start_b = min(p[axis] for p in _pixels_of(image, COLOURS[colour_b]))
        assert end_a < start_b, caption


def test_text_corpus_holds_every_text_column() -> None:
    corpus = sample_text_corpus(seed=0, ui=30, general=7)
    records = list(ui_records(30, seed=0))
    for column in ("summary", "html", "element_type", "action_type"):
        assert {r[column] for r in records} <= set(corpus)
    assert {r["caption"] for r in general_records(7, seed=0)} <= set(corpus)
    assert "" not in corpus


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["sample-data", "--output", str(tmp_path), "--kind", "video"])
    assert result.exit_code != 0 and "video" in result.output
    result = runner.invoke(app, ["sample-data", "--output", str(tmp_path), "--records", "2"])
    assert result.exit_code != 0 and "at least 3" in result.output
    assert not (tmp_path / "data").exists()
