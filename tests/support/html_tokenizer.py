"""A session tokenizer for prepare's HTML budget: BPE trained on the sample data's text.

Prepare counts the budget in the base model's tokens; a tokenizer alone (no weights) is
all it reads, so the prepare tests need no tiny model.
"""

from __future__ import annotations

import pytest

from components.prepare.token_count import BaseTokenizer


@pytest.fixture(scope="session")
def html_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> BaseTokenizer:
    from components.demo.samples import sample_text_corpus
    from components.demo.tiny_model import build_tiny_tokenizer
    from components.prepare.prompt import prompt_corpus

    folder = tmp_path_factory.mktemp("html-tokenizer")
    build_tiny_tokenizer(folder, [*sample_text_corpus(), *prompt_corpus()])
    return BaseTokenizer(str(folder))
