"""The captioning prompt, shared by training data, evaluation and serving.

It keeps the shape of the workflow this project grew from (the question after the image,
then an "Action data:" block), so models and labels from that workflow stay usable. Any
change to the wording or layout must bump PROMPT_TEMPLATE_VERSION: it travels in the
prepare manifest and from there into the model's metadata, so a model is always asked
in the template it was trained on.
"""

from __future__ import annotations

from components.prepare.html_context import cut_html
from components.prepare.token_count import PATTERN, TokenCounter

PROMPT_TEMPLATE_VERSION = "ui-caption-v1"
QUESTION = "In a short sentence, what does the action outlined with a magenta rectangle do?"
IMAGE_MARKER = "<image>"
DEFAULT_HTML_BUDGET = 256

GENERAL_PROMPT_TEMPLATE_VERSION = "general-v1"
GENERAL_PROMPT = "Describe this image in one sentence."


def _one_line(value: str) -> str:
    return " ".join(value.split())


def build_prompt(
    action_type: str,
    element_type: str,
    text: str,
    html: str,
    html_budget: int = DEFAULT_HTML_BUDGET,
    counter: TokenCounter = PATTERN,
) -> str:
    """The user text that follows the image (without the image marker).

    The HTML is cleaned and cut to `html_budget` tokens (as `counter` counts them: the
    model's tokenizer in prepare and at serving) around the element whose visible text
    is `text` (see html_context).
    """
    surrounding = cut_html(html, text, html_budget, counter)
    return (
        f"{QUESTION}\n"
        "Action data:\n"
        f"action_type: {_one_line(action_type)}\n"
        f"element_type: {_one_line(element_type)}\n"
        f"text: {_one_line(text)}\n"
        f"surrounding_html: {surrounding}"
    )


def user_turn(prompt: str) -> str:
    """The user turn of a MiniCPM-V fine-tuning record: the image marker, then the prompt."""
    return f"{IMAGE_MARKER}\n{prompt}"


def prompt_of_user_turn(content: str) -> str:
    """The prompt of a user turn that `user_turn` wrote: the text after the image marker."""
    if not content.startswith(IMAGE_MARKER):
        raise ValueError(f"user turn must start with {IMAGE_MARKER!r}: {content[:40]!r}")
    return content[len(IMAGE_MARKER) :].lstrip("\n")


def prompt_corpus() -> list[str]:
    """The fixed wording of both prompts, so a tokenizer trained for them keeps it whole."""
    example = build_prompt("click", "button", "Sign in", "<button>Sign in</button>")
    return [QUESTION, GENERAL_PROMPT, example, user_turn(example)]
