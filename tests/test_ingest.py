"""The ingest step: sources, column maps, record checks, manifest, fingerprint, the gate."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from components.demo.samples import write_sample_dataset
from components.ingest import (
    CONTRACT_COLUMNS,
    ColumnMapError,
    IngestManifest,
    OutputExistsError,
    QuarantineThresholdError,
    SourceError,
    content_hash,
    ingest,
    load_source,
    parse_column_map,
)
from components.ingest.source import is_local
from pipelines.cli import app
from tests.support.data_records import CONTRACT_LOOSE, SIZE, encoded, png, record, save_dataset


def kept_rows(output: Path) -> datasets.Dataset:
    return datasets.load_from_disk(str(output / "data"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_dataset(tmp_path_factory.mktemp("sample") / "ui", "ui", records=24)


def test_sample_dataset_is_kept_whole_in_the_contract(sample: Path, tmp_path: Path) -> None:
    manifest = ingest(str(sample), tmp_path / "out")

    assert manifest.counts.in_ == manifest.counts.kept == 24
    assert manifest.quarantine == []
    assert manifest.source.kind == "hub-layout folder"
    assert manifest.source.resolved_revision == content_hash(sample)
    rows = kept_rows(tmp_path / "out")
    assert rows.column_names == list(CONTRACT_COLUMNS)
    assert isinstance(rows.features["image"], datasets.Image)
    assert rows[0]["image"].mode == "RGB"
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk["counts"] == {"in": 24, "kept": 24, "quarantined": 0}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data", "manifest.json"]


def _cmyk_jpeg() -> bytes:
    return encoded(Image.new("CMYK", SIZE, (255, 0, 0, 0)), "JPEG")


def _rgba_half_transparent() -> bytes:
    image = Image.new("RGBA", SIZE, (255, 0, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, SIZE[0] // 2, SIZE[1]))
    return encoded(image)


def _sixteen_bit() -> bytes:
    image = Image.new("I;16", SIZE, 65535)
    assert image.mode == "I;16"
    return encoded(image)


def _palette() -> bytes:
    return encoded(Image.new("RGB", SIZE, (10, 200, 30)).convert("P"))


def _truncated() -> bytes:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8))
    whole = encoded(noisy)
    return whole[: len(whole) // 2]


# external_id -> (overrides, field, reason) for each kind of bad record
BAD = {
    "no-image": ({"image": None}, "image", "missing"),
    "garbage-image": ({"image": b"not an image at all"}, "image", "undecodable"),
    "truncated-image": ({"image": _truncated()}, "image", "undecodable"),
    "no-bbox": ({"bbox": None}, "bbox", "missing"),
    "short-bbox": ({"bbox": [1.0, 2.0, 3.0]}, "bbox", "wrong length"),
    "nan-bbox": ({"bbox": [1.0, math.nan, 20.0, 20.0]}, "bbox", "non-finite"),
    "inf-bbox": ({"bbox": [1.0, 2.0, math.inf, 20.0]}, "bbox", "non-finite"),
    "inverted-bbox": ({"bbox": [50.0, 8.0, 10.0, 30.0]}, "bbox", "empty or inverted"),
    "empty-bbox": ({"bbox": [10.0, 8.0, 10.0, 30.0]}, "bbox", "empty or inverted"),
    "outside-bbox": ({"bbox": [200.0, 100.0, 300.0, 200.0]}, "bbox", "outside the image"),
    "no-summary": ({"summary": None}, "summary", "missing or blank"),
    "blank-summary": ({"summary": "   \n"}, "summary", "missing or blank"),
}
# valid but extreme: kept and normalised
EXTREME = {
    "partly-outside": {"bbox": [80.0, -5.0, 140.0, 30.0]},
    "rgba": {"image": _rgba_half_transparent()},
    "la": {"image": encoded(Image.new("LA", SIZE, (128, 255)))},
    "grey": {"image": png(mode="L", colour=77)},
    "cmyk": {"image": _cmyk_jpeg()},
    "palette": {"image": _palette()},
    "sixteen-bit": {"image": _sixteen_bit()},
    "huge-html": {"html": "<div>" + "<p>filler text</p>" * 20_000 + "</div>"},
    "empty-text-html": {"text": "", "html": ""},
    "no-optional": {"action_type": None, "element_type": None, "screen_id": None},
}


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IngestManifest]:
    rows = [record(i) for i in range(4)]
    for index, (record_id, (overrides, _, _)) in enumerate(BAD.items()):
        rows.append(record(10 + index, external_id=record_id, **overrides))
    for index, (record_id, overrides) in enumerate(EXTREME.items()):
        rows.append(record(40 + index, external_id=record_id, **overrides))
    rows.append(record(60, external_id=None))
    rows.append(record(61, external_id="  "))
    rows.append(record(62, external_id="rec-001", summary="A second record with a taken id."))
    # a duplicate id whose first holder is broken: the valid second copy keeps the id
    rows.append(record(63, external_id="shared", image=b"broken"))
    rows.append(record(64, external_id="shared"))
    root = tmp_path_factory.mktemp("messy")
    source = save_dataset(root / "source", rows)
    manifest = ingest(str(source), root / "out", max_quarantine_fraction=1.0)
    return root / "out", manifest


def test_every_bad_record_is_quarantined_with_its_field_and_reason(
    messy: tuple[Path, IngestManifest],
) -> None:
    _, manifest = messy
    by_id = {entry.external_id: entry for entry in manifest.quarantine}
    for record_id, (_, field, reason) in BAD.items():
        assert (by_id[record_id].field, by_id[record_id].reason) == (field, reason), record_id
    missing_ids = [e for e in manifest.quarantine if e.external_id is None]
    assert [(e.field, e.reason) for e in missing_ids] == [("external_id", "missing or blank")] * 2
    duplicate = next(e for e in manifest.quarantine if e.reason == "duplicate")
    assert duplicate.field == "external_id"
    assert duplicate.external_id == "rec-001"
    assert "row 1" in duplicate.detail
    assert by_id["shared"].field == "image"  # the broken first copy, not the good second one
    assert "cannot identify image file" in by_id["garbage-image"].detail
    assert " at 0x" not in by_id["garbage-image"].detail  # manifests stay reproducible


def test_counts_add_up_and_every_valid_record_is_kept(messy: tuple[Path, IngestManifest]) -> None:
    output, manifest = messy
    counts = manifest.counts
    assert counts.in_ == counts.kept + counts.quarantined
    assert counts.quarantined == len(manifest.quarantine) == len(BAD) + 4
    kept_ids = set(kept_rows(output)["external_id"])
    expected = {f"rec-{i:03d}" for i in range(4)} | set(EXTREME) | {"shared"}
    assert kept_ids == expected
    rows = sorted(e.row for e in manifest.quarantine)
    assert len(set(rows)) == len(rows)


def test_extreme_records_are_normalised(messy: tuple[Path, IngestManifest]) -> None:
    output, manifest = messy
    rows = {row["external_id"]: row for row in kept_rows(output)}
    assert rows["partly-outside"]["bbox"] == [80.0, 0.0, float(SIZE[0]), 30.0]
    assert manifest.normalised["bbox_clipped"] == 1
    for record_id in ("rgba", "la", "grey", "cmyk", "palette", "sixteen-bit"):
        assert rows[record_id]["image"].mode == "RGB", record_id
        assert rows[record_id]["image"].size == SIZE
    rgba = rows["rgba"]["image"]
    assert rgba.getpixel((0, 0)) == (255, 255, 255)  # transparent over white
    assert rgba.getpixel((SIZE[0] - 1, 0)) == (255, 0, 0)
    assert rows["sixteen-bit"]["image"].getpixel((0, 0)) == (255, 255, 255)
    assert rows["cmyk"]["image"].getpixel((5, 5))[0] < 40  # cyan: little red
    assert len(rows["huge-html"]["html"]) > 300_000
    assert (rows["empty-text-html"]["text"], rows["empty-text-html"]["html"]) == ("", "")
    assert rows["no-optional"]["screen_id"] == ""
    assert manifest.normalised["image_converted"] == 6


def test_fingerprint_is_stable_and_tracks_content(tmp_path: Path) -> None:
    rows = [record(i) for i in range(6)]
    first = save_dataset(tmp_path / "a", rows)
    moved = tmp_path / "elsewhere" / "b"
    shutil.copytree(first, moved)
    one = ingest(str(first), tmp_path / "out1")
    two = ingest(str(moved), tmp_path / "out2")
    assert one.fingerprint == two.fingerprint
    assert one.source.resolved_revision == two.source.resolved_revision

    rows[3] = record(3, summary="A different summary.")
    changed = ingest(str(save_dataset(tmp_path / "c", rows)), tmp_path / "out3")
    assert changed.fingerprint != one.fingerprint
    assert changed.source.resolved_revision != one.source.resolved_revision


def test_quarantine_gate_fails_but_writes_the_manifest(tmp_path: Path) -> None:
    rows = [record(i) for i in range(8)]
    rows += [record(8, bbox=None), record(9, image=b"junk")]
    source = save_dataset(tmp_path / "source", rows)

    with pytest.raises(QuarantineThresholdError) as raised:
        ingest(str(source), tmp_path / "out")

    message = str(raised.value)
    assert "quarantined 2 of 10 records" in message
    assert "kept 8" in message
    assert "bbox: missing (1)" in message and "image: undecodable (1)" in message
    manifest = IngestManifest.read(tmp_path / "out")
    assert not manifest.gate.passed
    assert manifest.counts.model_dump(by_alias=True) == {"in": 10, "kept": 8, "quarantined": 2}
    assert not (tmp_path / "out" / "data").exists()


def test_cli_reports_the_gate_with_a_non_zero_exit(tmp_path: Path) -> None:
    rows = [record(i) for i in range(3)] + [record(3, summary="")]
    source = save_dataset(tmp_path / "source", rows)
    result = CliRunner().invoke(
        app, ["ingest", "--dataset", str(source), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert "quarantined 1 of 4 records" in result.output
    assert "summary: missing or blank" in result.output
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_cli_reports_a_corrupt_dataset_instead_of_crashing(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    (corrupt / "data").mkdir(parents=True)
    (corrupt / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 this is not parquet")
    result = CliRunner().invoke(
        app, ["ingest", "--dataset", str(corrupt), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert "ingest failed" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out").exists()


def test_wave_ui_preset_maps_a_wave_ui_shaped_dataset(tmp_path: Path) -> None:
    columns = {
        "image": "image",
        "instruction": "string",
        "bbox": "floats",
        "resolution": "floats",
        "source": "string",
        "platform": "string",
        "name": "string",
        "description": "string",
        "type": "string",
        "OCR": "string",
        "language": "string",
        "purpose": "string",
        "expectation": "string",
    }

    def wave(index: int, ocr: str | None, name: str, element: str) -> dict:
        return {
            "image": png(colour=(index * 30, 90, 90)),
            "instruction": f"click element {index}",
            "bbox": [4.0, 4.0, 40.0, 20.0],
            "resolution": [float(SIZE[0]), float(SIZE[1])],
            "source": "web",
            "platform": "web",
            "name": name,
            "description": "A long description.",
            "type": element,
            "OCR": ocr,
            "language": "English",
            "purpose": f"Submits form {index}.",
            "expectation": "A page loads.",
        }

    rows = [
        wave(0, "Sign in", "sign in button", "button"),
        wave(1, None, "settings gear icon", "icon"),
        wave(2, "", "search field", "input"),
    ]
    source = save_dataset(tmp_path / "wave", rows, columns, layout="hub")
    manifest = ingest(str(source), tmp_path / "out", column_map="wave-ui")

    kept = kept_rows(tmp_path / "out")
    assert manifest.counts.kept == 3
    assert kept["summary"] == ["Submits form 0.", "Submits form 1.", "Submits form 2."]
    assert kept["element_type"] == ["button", "icon", "input"]
    assert kept["text"] == ["Sign in", "settings gear icon", "search field"]
    assert kept["action_type"] == ["click", "click", "type"]
    assert kept["html"] == ["", "", ""]
    assert kept["screen_id"] == ["", "", ""]
    assert kept["bbox"][0] == [4.0, 4.0, 40.0, 20.0]
    revision = manifest.source.resolved_revision.removeprefix("sha256:")[:12]
    assert kept["external_id"] == [f"train-{i}@{revision}" for i in range(3)]
    assert manifest.source.column_map["name"] == "wave-ui"
    assert manifest.source.column_map["sources"]["text"] == ["OCR", "name"]

    again = ingest(str(source), tmp_path / "again", column_map="wave-ui")
    assert kept_rows(tmp_path / "again")["external_id"] == kept["external_id"]
    assert again.fingerprint == manifest.fingerprint


def test_rico_preset_scales_relative_boxes_and_takes_the_first_caption(tmp_path: Path) -> None:
    columns = {
        "screenId": "int",
        "captions": "strings",
        "bbox": "floats",
        "image": "image",
        "view_hierarchy": "string",
    }
    rows = [
        {
            "screenId": 1234,
            "captions": ["", "go back to the previous page"],
            "bbox": [0.0, 0.5, 0.5, 1.0],
            "image": png(),
            "view_hierarchy": "{}",
        },
        {
            "screenId": 1234,
            "captions": [],
            "bbox": [0.1, 0.1, 0.2, 0.2],
            "image": png(),
            "view_hierarchy": "{}",
        },
    ]
    source = save_dataset(tmp_path / "rico", rows, columns)
    manifest = ingest(
        str(source), tmp_path / "out", column_map="rico-widget-captions", max_quarantine_fraction=1
    )
    kept = kept_rows(tmp_path / "out")
    assert kept["summary"] == ["go back to the previous page"]
    assert kept["bbox"] == [[0.0, SIZE[1] / 2, SIZE[0] / 2, float(SIZE[1])]]
    assert kept["screen_id"] == ["1234"]
    assert kept["action_type"] == ["click"]
    assert [(e.row, e.field, e.reason) for e in manifest.quarantine] == [
        (1, "summary", "missing or blank")
    ]


def test_custom_column_map_renames_and_reports_what_is_missing(tmp_path: Path) -> None:
    rows = [{**record(i), "caption": record(i)["summary"]} for i in range(3)]
    for row in rows:
        del row["summary"]
    columns = {**CONTRACT_LOOSE, "caption": "string"}
    del columns["summary"]
    source = save_dataset(tmp_path / "renamed", rows, columns)

    with pytest.raises(ColumnMapError, match=r"required field\(s\) summary.*caption"):
        ingest(str(source), tmp_path / "out")
    assert not (tmp_path / "out").exists()

    manifest = ingest(str(source), tmp_path / "out", column_map="caption=summary")
    assert manifest.counts.kept == 3
    assert kept_rows(tmp_path / "out")["summary"][0] == "Opens page number 0."

    with pytest.raises(ColumnMapError, match="no such column"):
        ingest(str(source), tmp_path / "out2", column_map="title=summary")


def test_column_map_spec_parsing() -> None:
    assert parse_column_map(None).name == "identity"
    assert parse_column_map("wave-ui").name == "wave-ui"
    combined = parse_column_map("wave-ui, instruction=summary")
    assert combined.name == "wave-ui+custom"
    assert combined.sources["summary"] == ("instruction",)
    assert combined.sources["text"] == ("OCR", "name")
    with pytest.raises(ColumnMapError, match="not a contract column"):
        parse_column_map("purpose=goal")
    with pytest.raises(ColumnMapError, match="preset"):
        parse_column_map("no-such-preset")
    with pytest.raises(ColumnMapError, match="two source columns"):
        parse_column_map("a=summary,b=summary")


def test_local_or_hub_decision(tmp_path: Path) -> None:
    assert is_local(str(tmp_path))
    assert not is_local("agentsea/wave-ui")
    assert not is_local("squad")
    with pytest.raises(SourceError, match="neither an existing local folder"):
        is_local(str(tmp_path / "missing" / "deeper"))
    with pytest.raises(SourceError, match="applies to Hub datasets only"):
        load_source(str(tmp_path), revision="main")


def test_hub_source_offline_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        SourceError, match=r"cannot reach the Hugging Face Hub.*agentsea/wave-ui@v2"
    ):
        load_source("agentsea/wave-ui", revision="v2")


def test_dataset_dict_on_disk_picks_the_split(tmp_path: Path) -> None:
    from tests.support.data_records import loose_features

    features = loose_features(CONTRACT_LOOSE)
    cells = [{**record(i), "image": {"bytes": record(i)["image"], "path": None}} for i in range(4)]
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(cells[:3], features=features),
            "validation": datasets.Dataset.from_list(cells[3:], features=features),
        }
    )
    splits.save_to_disk(str(tmp_path / "dict"))
    manifest = ingest(str(tmp_path / "dict"), tmp_path / "out", split="validation")
    assert manifest.source.kind == "save_to_disk folder"
    assert manifest.counts.kept == 1
    with pytest.raises(SourceError, match="has no split 'test'; it has train, validation"):
        ingest(str(tmp_path / "dict"), tmp_path / "out2", split="test")


def test_content_hash_ignores_hidden_files_and_sees_every_byte(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.bin").write_bytes(b"abc")
    before = content_hash(folder)
    (folder / ".cache").mkdir()
    (folder / ".cache" / "junk").write_bytes(b"x")
    assert content_hash(folder) == before
    (folder / "sub" / "a.bin").write_bytes(b"abd")
    assert content_hash(folder) != before


def test_output_that_is_not_ours_is_never_replaced(sample: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError):
        ingest(str(sample), precious)
    assert (precious / "notes.txt").read_text() == "keep me"

    ingest(str(sample), tmp_path / "out")
    first = (tmp_path / "out" / "manifest.json").read_text()
    ingest(str(sample), tmp_path / "out")  # an earlier output is replaced whole
    assert (tmp_path / "out" / "manifest.json").read_text() == first
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_stored_images_are_png_bytes(messy: tuple[Path, IngestManifest]) -> None:
    output, _ = messy
    raw = kept_rows(output).cast_column("image", datasets.Image(decode=False))
    for cell in raw["image"]:
        with Image.open(io.BytesIO(cell["bytes"])) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
