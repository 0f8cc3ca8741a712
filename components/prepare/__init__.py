"""The prepare step: validated records -> boxed images + prompts in the MiniCPM-V format.

`prepare` (UI records from ingest) and `prepare_general` (general captions) are the plain
functions the CLI and the KFP component call. `draw_target_box` and `build_prompt` are
what evaluation and serving reuse, so a model sees the same inputs everywhere.
"""

from components.prepare.boxing import DEFAULT_MAX_SIDE, MAGENTA, draw_target_box
from components.prepare.general import prepare_general
from components.prepare.html_context import clean_html, count_tokens, cut_html
from components.prepare.manifest import GeneralManifest, PrepareManifest
from components.prepare.prompt import (
    DEFAULT_HTML_BUDGET,
    GENERAL_PROMPT,
    GENERAL_PROMPT_TEMPLATE_VERSION,
    PROMPT_TEMPLATE_VERSION,
    QUESTION,
    build_prompt,
)
from components.prepare.run import PrepareInputError, prepare
from components.prepare.splits import SPLITS, assign_splits, parse_fractions

__all__ = [
    "DEFAULT_HTML_BUDGET",
    "DEFAULT_MAX_SIDE",
    "GENERAL_PROMPT",
    "GENERAL_PROMPT_TEMPLATE_VERSION",
    "MAGENTA",
    "PROMPT_TEMPLATE_VERSION",
    "QUESTION",
    "SPLITS",
    "GeneralManifest",
    "PrepareInputError",
    "PrepareManifest",
    "assign_splits",
    "build_prompt",
    "clean_html",
    "count_tokens",
    "cut_html",
    "draw_target_box",
    "parse_fractions",
    "prepare",
    "prepare_general",
]
