"""How the captioner generates: one setting shared by training, evaluation and serving.

It is stored with each model artifact, so every consumer generates the same way.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GenerationConfig(BaseModel):
    """Greedy by default: a caption must not change from one call to the next."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    max_new_tokens: int = Field(48, ge=1)
    num_beams: int = Field(1, ge=1)
    do_sample: bool = False
