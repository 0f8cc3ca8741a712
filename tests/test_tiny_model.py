"""The tiny VLMs load offline through the Auto classes and train/generate on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
from typer.testing import CliRunner

from components.captioner.families import IGNORE_INDEX, Turn, get_family
from components.demo.tiny_model import FAMILIES, build_tiny_model, corpus_from_dataset
from pipelines.cli import app


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    from components.demo.samples import write_sample_dataset

    data = write_sample_dataset(tmp_path_factory.mktemp("ui"), kind="ui", records=60, seed=3)
    return corpus_from_dataset(data)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, corpus: list[str]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {family: build_tiny_model(root / family, corpus, family=family) for family in FAMILIES}


def _turns() -> list[Turn]:
    return [
        Turn(
            "a",
            Image.new("RGB", (320, 200), (200, 220, 240)),
            "What does it do?",
            "Opens the cart.",
        ),
        Turn("b", Image.new("RGB", (180, 360), (20, 120, 40)), "And this one?", "Signs you out."),
    ]


def test_minicpmv4_6_is_the_production_class(tiny_models: dict[str, Path]) -> None:
    model = AutoModelForImageTextToText.from_pretrained(
        tiny_models["minicpmv4_6"], local_files_only=True
    )
    processor = AutoProcessor.from_pretrained(tiny_models["minicpmv4_6"], local_files_only=True)
    assert type(model).__name__ == "MiniCPMV4_6ForConditionalGeneration"
    assert type(processor).__name__ == "MiniCPMV4_6Processor"
    assert type(processor.image_processor).__name__.startswith("MiniCPMV4_6ImageProcessor")
    # The tokenizer was trained on the sample text: its words are whole tokens, not bytes.
    assert len(processor.tokenizer.tokenize(" notifications")) <= 2


def test_the_local_base_slices_large_screenshots_as_minicpm_v_does(
    tiny_models: dict[str, Path],
) -> None:
    """The local profile's screenshots (224 px: the base's slice side) are one slice; a
    larger one is sliced, up to 9, so `prepare.max_image_side=1344` costs what it should."""
    from pipelines.settings import load_settings

    family = get_family("minicpmv4_6")
    processor = AutoProcessor.from_pretrained(tiny_models["minicpmv4_6"], local_files_only=True)

    def image_tokens(size: tuple[int, int]) -> int:
        turn = Turn("t", Image.new("RGB", size, (30, 120, 200)), "What does it do?")
        ids = family.encode(processor, turn, 4096).input_ids
        return sum(token == processor.image_token_id for token in ids)

    side = load_settings("local").prepare.max_image_side
    local = image_tokens((side, side * 5 // 8))
    medium, large = image_tokens((448, 280)), image_tokens((1344, 840))
    assert (local, medium, large) == (15, 47, 143)
    assert large >= 2 * medium


@pytest.mark.parametrize("family", FAMILIES)
def test_default_lora_targets_are_every_text_linear_and_nothing_else(
    tiny_models: dict[str, Path], family: str
) -> None:
    import re

    vlm = get_family(family)
    model = AutoModelForImageTextToText.from_pretrained(tiny_models[family], local_files_only=True)
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    targeted = {n for n in linears if re.fullmatch(vlm.lora_target_regex, n)}
    text_layer = re.compile(r"\.(language_model|text_model)\.layers\.")
    in_text_layers = {n for n in linears if text_layer.search(n)}
    assert targeted == in_text_layers and targeted
    towers = (*vlm.vision_modules, *vlm.merger_modules)
    tower_linears = [n for n in linears if n.startswith(towers)]
    assert tower_linears and not targeted & set(tower_linears)
    # With tune_vision/tune_merger=lora every tower linear gets an adapter.
    tuned = [
        n
        for n in tower_linears
        if re.fullmatch(vlm.vision_lora_regex, n) or re.fullmatch(vlm.merger_lora_regex, n)
    ]
    assert tuned == tower_linears


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_backward_generate(tiny_models: dict[str, Path], family: str) -> None:
    vlm = get_family(family)
    model, processor = vlm.load(tiny_models[family])
    encoded = [vlm.encode(processor, turn, max_length=4096) for turn in _turns()]
    batch = vlm.collate(processor, encoded)
    loss = vlm.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    captions = vlm.generate(model.eval(), processor, _turns(), max_new_tokens=4)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_cover_exactly_the_answer_and_end_of_turn(
    tiny_models: dict[str, Path], family: str
) -> None:
    vlm = get_family(family)
    _, processor = vlm.load(tiny_models[family])
    for turn in _turns():
        item = vlm.encode(processor, turn, max_length=4096)
        labelled = [
            tok for tok, lab in zip(item.input_ids, item.labels, strict=True) if lab != IGNORE_INDEX
        ]
        first = next(i for i, lab in enumerate(item.labels) if lab != IGNORE_INDEX)
        # One contiguous labelled span at the very end: the answer, then the end of turn.
        assert all(lab != IGNORE_INDEX for lab in item.labels[first:])
        text = processor.tokenizer.decode(labelled)
        assert text.strip() == f"{turn.answer}{vlm.spec.end_of_turn}"
        image_id = processor.tokenizer.convert_tokens_to_ids(
            getattr(processor, "image_token", "<image>")
        )
        assert image_id in item.input_ids[:first]


def test_too_long_turn_is_refused_not_truncated(tiny_models: dict[str, Path]) -> None:
    from components.captioner.families import TooLongError

    vlm = get_family("minicpmv4_6")
    _, processor = vlm.load(tiny_models["minicpmv4_6"])
    with pytest.raises(TooLongError, match=r"a: \d+ tokens > max_length 16"):
        vlm.encode(processor, _turns()[0], max_length=16)


def test_cli_builds_from_a_dataset_folder(tmp_path: Path, corpus: list[str]) -> None:
    from components.demo.samples import write_sample_dataset

    data = write_sample_dataset(tmp_path / "ui", kind="ui", records=30, seed=1)
    result = CliRunner().invoke(
        app,
        [
            "tiny-model",
            "--output",
            str(tmp_path / "m"),
            "--family",
            "qwen2_vl",
            "--data",
            str(data),
        ],
    )
    assert result.exit_code == 0, result.output
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "m", local_files_only=True)
    assert type(model).__name__ == "Qwen2VLForConditionalGeneration"


def test_cli_rejects_unknown_family(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tiny-model", "--output", str(tmp_path), "--family", "gpt2"])
    assert result.exit_code != 0
    assert "gpt2" in result.output
