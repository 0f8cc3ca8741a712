"""Families that transformers implements natively (`AutoModelForImageTextToText`).

MiniCPM-V 4.6, Qwen2-VL / Qwen2.5-VL, Idefics3 / SmolVLM and LLaVA share one code path:
the processor's chat template builds the prompt, the processor expands the image into
its tokens, and the answer is appended as token ids so that the labelled span is exactly
the answer plus the end-of-turn token. They differ only in a few constants and in how
per-image vision tensors are packed into a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.captioner.families.base import (
    IGNORE_INDEX,
    EncodedTurn,
    TooLongError,
    Turn,
    VLMFamily,
)

# Every linear projection of every text layer: a target that stops at attention leaves
# most of a hybrid model frozen (Qwen3.5, MiniCPM-V 4.6's text model, mixes tokens with
# gated-deltanet linear attention in three layers of four).
_LLAMA_LINEARS = r"self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj)"
_QWEN3_5_LINEARS = (
    r"self_attn\.(q_proj|k_proj|v_proj|o_proj)"
    r"|linear_attn\.(in_proj_qkv|in_proj_z|in_proj_a|in_proj_b|out_proj)"
    r"|mlp\.(gate_proj|up_proj|down_proj)"
)


def _text_layers(model: str, linears: str) -> str:
    return rf".*\.{model}\.layers\.\d+\.({linears})"


@dataclass(frozen=True)
class NativeSpec:
    """The constants that tell one native family from another."""

    name: str
    end_of_turn: str
    # Text between the generation prompt and the answer, per the family's chat format.
    answer_prefix: str = ""
    # Vision tensors packed along the last axis (NaViT) instead of the batch axis.
    packed_last_axis: tuple[str, ...] = ()
    # LoRA's default targets: every linear of every text layer (module-name regex).
    lora_target_regex: str = _text_layers("language_model", _LLAMA_LINEARS)
    # The vision tower and the merger (projector) that feeds its tokens to the text model:
    # the modules `tune_vision` / `tune_merger` train in full, and the regexes of their
    # linears that they adapt with LoRA. Both are frozen by default.
    vision_modules: tuple[str, ...] = ()
    vision_lora_regex: str = ""
    merger_modules: tuple[str, ...] = ()
    merger_lora_regex: str = ""


class NativeFamily(VLMFamily):
    def __init__(self, spec: NativeSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.lora_target_regex = spec.lora_target_regex
        self.vision_modules = spec.vision_modules
        self.vision_lora_regex = spec.vision_lora_regex
        self.merger_modules = spec.merger_modules
        self.merger_lora_regex = spec.merger_lora_regex

    def load(
        self,
        source: str | Path,
        revision: str | None = None,
        *,
        dtype: Any = None,
        device: str | None = None,
    ) -> tuple[Any, Any]:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        local = Path(source).is_dir()
        common = {"revision": None if local else revision, "local_files_only": local}
        processor = AutoProcessor.from_pretrained(str(source), **common)
        model = AutoModelForImageTextToText.from_pretrained(
            str(source), dtype=dtype, attn_implementation="sdpa", **common
        )
        if device:
            model.to(device)
        return model, processor

    def end_of_turn_id(self, processor: Any) -> int:
        token_id = processor.tokenizer.convert_tokens_to_ids(self.spec.end_of_turn)
        if token_id is None or token_id == processor.tokenizer.unk_token_id:
            raise ValueError(f"{self.name}: tokenizer has no {self.spec.end_of_turn!r} token")
        return int(token_id)

    def prompt_text(self, processor: Any, prompt: str) -> str:
        """The chat-templated user turn plus the assistant's generation prompt."""
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
        ]
        # Thinking models (MiniCPM-V 4.6) caption without a reasoning block.
        template_vars = {"enable_thinking": False} if self._thinks(processor) else {}
        return processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **template_vars
        )

    @staticmethod
    def _thinks(processor: Any) -> bool:
        return "enable_thinking" in (getattr(processor, "chat_template", None) or "")

    def encode(self, processor: Any, turn: Turn, max_length: int) -> EncodedTurn:
        text = self.prompt_text(processor, turn.prompt)
        inputs = processor(images=[turn.image], text=[text], return_tensors="pt")
        prompt_ids = inputs.pop("input_ids")[0].tolist()
        inputs.pop("attention_mask", None)
        inputs.pop("mm_token_type_ids", None)
        answer_ids: list[int] = []
        if turn.answer is not None:
            answer_ids = processor.tokenizer(
                self.spec.answer_prefix + turn.answer, add_special_tokens=False
            )["input_ids"]
            answer_ids = [*answer_ids, self.end_of_turn_id(processor)]
        total = len(prompt_ids) + len(answer_ids)
        if total > max_length:
            # Cutting would drop image tokens or the answer: the caller counts and skips it.
            raise TooLongError(f"{turn.id}: {total} tokens > max_length {max_length}")
        return EncodedTurn(
            id=turn.id,
            input_ids=prompt_ids + answer_ids,
            labels=[IGNORE_INDEX] * len(prompt_ids) + answer_ids,
            vision=dict(inputs),
        )

    def collate(self, processor: Any, batch: list[EncodedTurn]) -> dict[str, Any]:
        import torch

        pad_id = processor.tokenizer.pad_token_id
        width = max(len(item) for item in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, item in enumerate(batch):
            n = len(item)
            input_ids[row, :n] = torch.tensor(item.input_ids)
            labels[row, :n] = torch.tensor(item.labels)
            attention[row, :n] = 1
        collated: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
        }
        if "mm_token_type_ids" in getattr(processor, "model_input_names", []):
            image_id = getattr(processor, "image_token_id", None)
            collated["mm_token_type_ids"] = (input_ids == image_id).long()
        for key in batch[0].vision:
            axis = -1 if key in self.spec.packed_last_axis else 0
            collated[key] = torch.cat([item.vision[key] for item in batch], dim=axis)
        return collated

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return model(**batch).loss

    def generate(
        self, model: Any, processor: Any, turns: list[Turn], max_new_tokens: int
    ) -> list[str]:
        import torch

        inputs = processor(
            images=[turn.image for turn in turns],
            text=[self.prompt_text(processor, turn.prompt) for turn in turns],
            padding=True,
            padding_side="left",
            return_tensors="pt",
        ).to(model.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                use_cache=True,
                eos_token_id=self.end_of_turn_id(processor),
                pad_token_id=processor.tokenizer.pad_token_id,
            )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        texts = processor.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [text.strip() for text in texts]

    def save_processor(self, processor: Any, output: Path) -> None:
        processor.save_pretrained(output)


_QWEN2_VL_TOWER = {
    "vision_modules": ("model.visual.patch_embed", "model.visual.blocks"),
    "vision_lora_regex": r"model\.visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))",
    "merger_modules": ("model.visual.merger",),
    "merger_lora_regex": r"model\.visual\.merger\.mlp\.\d+",
}
_SIGLIP_LINEARS = r"self_attn\.(q_proj|k_proj|v_proj|out_proj)|mlp\.(fc1|fc2)"

FAMILY_SPECS: dict[str, NativeSpec] = {
    spec.name: spec
    for spec in (
        NativeSpec(
            "minicpmv4_6",
            end_of_turn="<|im_end|>",
            packed_last_axis=("pixel_values",),
            lora_target_regex=_text_layers("language_model", _QWEN3_5_LINEARS),
            # The tower includes its window-attention merger (`vit_merger`) after layer
            # `insert_layer_id`; `merger` is the downsampling MLP into the text model.
            vision_modules=("model.vision_tower",),
            vision_lora_regex=(
                rf"model\.vision_tower\.(encoder\.layers\.\d+\.({_SIGLIP_LINEARS})"
                r"|vit_merger\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|linear_1|linear_2))"
            ),
            merger_modules=("model.merger",),
            merger_lora_regex=r"model\.merger\.mlp\.\d+\.(linear_1|linear_2)",
        ),
        NativeSpec("qwen2_vl", end_of_turn="<|im_end|>", **_QWEN2_VL_TOWER),
        NativeSpec("qwen2_5_vl", end_of_turn="<|im_end|>", **_QWEN2_VL_TOWER),
        NativeSpec(
            "idefics3",
            end_of_turn="<end_of_utterance>",
            answer_prefix=" ",
            lora_target_regex=_text_layers("text_model", _LLAMA_LINEARS),
            vision_modules=("model.vision_model",),
            vision_lora_regex=rf"model\.vision_model\.encoder\.layers\.\d+\.({_SIGLIP_LINEARS})",
            merger_modules=("model.connector",),
            merger_lora_regex=r"model\.connector\.modality_projection\.proj",
        ),
        NativeSpec(
            "llava",
            end_of_turn="</s>",
            answer_prefix=" ",
            vision_modules=("model.vision_tower",),
            vision_lora_regex=rf"model\.vision_tower\.encoder\.layers\.\d+\.({_SIGLIP_LINEARS})",
            merger_modules=("model.multi_modal_projector",),
            merger_lora_regex=r"model\.multi_modal_projector\.(linear_1|linear_2)",
        ),
    )
}
