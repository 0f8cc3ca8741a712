"""The inputs the model benches share: the UI sample, ingested and prepared as the local
profile does (224 px, 128 HTML tokens), and a tiny MiniCPM-V 4.6 built from its text."""

from __future__ import annotations

from pathlib import Path


def build_inputs(root: Path, records: int) -> tuple[Path, Path]:
    from components.demo.samples import write_sample_dataset
    from components.demo.tiny_model import build_tiny_model, corpus_from_dataset
    from components.ingest import ingest
    from components.prepare import prepare
    from components.prepare.config import PrepareConfig
    from components.prepare.token_count import BaseTokenizer

    write_sample_dataset(root / "sample", kind="ui", records=records, seed=0)
    ingest(str(root / "sample"), root / "ingested")
    build_tiny_model(root / "base", corpus_from_dataset(root / "sample"))
    config = PrepareConfig(max_image_side=224, html_budget_tokens=128, workers=2)
    tokenizer = BaseTokenizer(str(root / "base"))
    prepare(root / "ingested", root / "prepared", config, tokenizer=tokenizer)
    return root / "prepared", root / "base"
