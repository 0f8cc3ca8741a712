"""What every VLM family must provide, so training, evaluation and serving never branch on it.

Callers only ever hold a `VLMFamily` plus the model and processor it loaded. Building
inputs from a conversation, masking labels, batching, the loss, generation and
saving are all behind it, so a family with a very different API (MiniCPM-V 2.6's
remote code with `forward(data=...)`) fits by implementing these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

IGNORE_INDEX = -100
IMAGE_MARKER = "<image>"


@dataclass(frozen=True)
class Turn:
    """One captioning exchange: a screenshot, the user's text, and the target answer."""

    id: str
    image: Image.Image
    prompt: str
    answer: str | None = None


@dataclass
class EncodedTurn:
    """A turn as token ids plus its vision tensors; labels are -100 outside the answer."""

    id: str
    input_ids: list[int]
    labels: list[int]
    vision: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)


class TooLongError(ValueError):
    """The turn cannot fit `max_length` without cutting image tokens or the answer."""


def split_image_marker(user_content: str) -> str:
    """The user text of a MiniCPM-V fine-tuning record, with its leading `<image>` removed."""
    if not user_content.startswith(IMAGE_MARKER):
        raise ValueError(f"user turn must start with {IMAGE_MARKER!r}: {user_content[:40]!r}")
    return user_content[len(IMAGE_MARKER) :].lstrip("\n")


class VLMFamily(ABC):
    """The small interface that hides what differs between VLMs."""

    name: str
    # Regex over module names: every linear projection of every text layer.
    lora_target_regex: str
    # The vision tower and the merger into the text model, frozen unless a setting tunes
    # them: module names to train in full, and regexes of their linears for LoRA.
    vision_modules: tuple[str, ...]
    vision_lora_regex: str
    merger_modules: tuple[str, ...]
    merger_lora_regex: str

    @abstractmethod
    def load(
        self,
        source: str | Path,
        revision: str | None = None,
        *,
        dtype: Any = None,
        device: str | None = None,
    ) -> tuple[Any, Any]:
        """Load (model, processor) from a Hub id at `revision` or a local folder."""

    @abstractmethod
    def encode(self, processor: Any, turn: Turn, max_length: int) -> EncodedTurn:
        """Token ids, labels (answer + end-of-turn only) and vision inputs for one turn."""

    @abstractmethod
    def collate(self, processor: Any, batch: list[EncodedTurn]) -> dict[str, Any]:
        """Pad and merge encoded turns into one model batch."""

    @abstractmethod
    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """The mean token cross-entropy of a collated batch."""

    @abstractmethod
    def generate(
        self, model: Any, processor: Any, turns: list[Turn], max_new_tokens: int
    ) -> list[str]:
        """Greedy captions for a batch of turns, stopping at the end of turn."""

    @abstractmethod
    def save_processor(self, processor: Any, output: Path) -> None:
        """Write the processor files next to an adapter or merged weights."""
