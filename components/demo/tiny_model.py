"""Tiny, randomly initialised VLMs of the production classes, built offline from configs.

Weights cannot be downloaded here, so the local profile and the tests run the exact code
path of each family on a model small enough for a 2-core CPU: same model class, the
family's real processor classes at a small resolution, a BPE tokenizer trained on the
sample data's text, and a chat template. Everything round-trips through the Auto
classes with `local_files_only=True`, as a Hub snapshot would.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FAMILIES = ("minicpmv4_6", "qwen2_vl", "idefics3", "llava")

# ChatML, as Qwen-based backbones (MiniCPM-V 4.6, Qwen2-VL) use it. `IMAGE` is replaced by
# the family's image placeholder so the processor can expand it into image tokens.
_CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}IMAGE"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant{{ '\\n' }}THINK{%- endif -%}"
)
# MiniCPM-V 4.6 (Qwen3.5) answers after an empty reasoning block when thinking is off.
_NO_THINKING = (
    "{%- if enable_thinking is defined and not enable_thinking -%}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif -%}"
)

# Idefics3 / SmolVLM turn format: "User:<image>text<end_of_utterance>\nAssistant: ...".
_IDEFICS3_TEMPLATE = (
    "<|im_start|>"
    "{%- for message in messages -%}"
    "{{ message['role'] | capitalize }}:"
    "{%- if message['content'] is string -%}{{ ' ' + message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}<image>"
    "{%- elif item['type'] == 'text' -%}{{ ' ' + item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}<end_of_utterance>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}Assistant:{%- endif -%}"
)

# LLaVA-1.5 turn format: "USER: <image>\ntext ASSISTANT: answer</s>".
_LLAVA_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}USER: {% else %}ASSISTANT: {% endif -%}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}<image>{{ '\\n' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}</s>{%- endif -%}{{ ' ' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}ASSISTANT:{%- endif -%}"
)


@dataclass(frozen=True)
class TinySize:
    """Dimensions shared by every family's tiny model (small enough to train on CPU).

    Text heads are 64 wide: vLLM's CPU attention kernels take no smaller (a 32-wide head
    fails with "Unexpected head dim size"), and `make serving-check` serves this model.
    """

    hidden_size: int = 128
    intermediate_size: int = 352
    num_layers: int = 4
    num_heads: int = 2
    num_kv_heads: int = 1
    vision_hidden_size: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    image_side: int = 224
    patch_size: int = 14
    vocab_size: int = 2048
    # Text attention head size (None: hidden_size // num_heads).
    head_dim: int | None = None
    # MiniCPM-V 4.6 (Qwen3.5): one full-attention layer per this many, the rest linear.
    full_attention_interval: int = 2
    # MiniCPM-V 4.6's image slicing: up to this many slices of `image_side` (1: off). The
    # real processor's maximum: a screenshot larger than one slice costs more image tokens,
    # as on the H100 (the local profile prepares at `image_side`, one slice per record).
    max_slices: int = 9

    @property
    def text_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads


# MiniCPM-V 4.6's shape, shrunk: its layer pattern (three gated-delta layers, then one
# full attention, as `full_attention_interval: 4` says), head sizes of 64 in both
# towers, and its processor (448 px slices, up to 9), so a 1344 px screenshot becomes
# hundreds of image tokens as on the H100.
PRODUCTION_SHAPE = TinySize(
    full_attention_interval=4,
    vision_hidden_size=128,
    vision_heads=2,
    image_side=448,
)
SHAPES = {"small": TinySize(), "production": PRODUCTION_SHAPE}


def train_tokenizer(texts: Iterable[str], special_tokens: list[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (as Qwen/Llama use) trained on the given corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def fast_tokenizer(raw: Any, **kwargs: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=raw, **kwargs)


def _build_minicpmv4_6(texts: list[str], size: TinySize) -> tuple[Any, Any]:
    from transformers import (
        MiniCPMV4_6Config,
        MiniCPMV4_6ForConditionalGeneration,
        MiniCPMV4_6ImageProcessor,
        MiniCPMV4_6Processor,
        MiniCPMV4_6VideoProcessor,
    )

    markers = {
        "image_token": "<|image_pad|>",
        "video_token": "<|video_pad|>",
        "image_start_token": "<image>",
        "image_end_token": "</image>",
        "slice_start_token": "<slice>",
        "slice_end_token": "</slice>",
        "image_id_start_token": "<image_id>",
        "image_id_end_token": "</image_id>",
    }
    specials = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<think>",
        "</think>",
        *markers.values(),
    ]
    tokenizer = fast_tokenizer(
        train_tokenizer(texts, specials, size.vocab_size),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        extra_special_tokens=markers,
        padding_side="left",
    )
    resampler = {
        "scale_resolution": size.image_side,
        "patch_size": size.patch_size,
        "max_slice_nums": size.max_slices,
        "slice_mode": size.max_slices > 1,
    }
    image_processor = MiniCPMV4_6ImageProcessor(**resampler)
    video_processor = MiniCPMV4_6VideoProcessor(**resampler)
    processor = MiniCPMV4_6Processor(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        chat_template=_CHATML_TEMPLATE.replace("IMAGE", markers["image_token"]).replace(
            "THINK", _NO_THINKING
        ),
    )
    vocab = len(tokenizer)
    head_dim = size.text_head_dim
    text_config = {
        "model_type": "qwen3_5_text",
        "vocab_size": vocab,
        "hidden_size": size.hidden_size,
        "intermediate_size": size.intermediate_size,
        "num_hidden_layers": size.num_layers,
        "num_attention_heads": size.num_heads,
        "num_key_value_heads": size.num_kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        # Qwen3.5's hybrid stack: gated-deltanet (linear) layers between full-attention ones.
        "layer_types": [
            "full_attention" if (i + 1) % size.full_attention_interval == 0 else "linear_attention"
            for i in range(size.num_layers)
        ],
        "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": head_dim,
        "linear_value_head_dim": head_dim,
        "linear_num_key_heads": size.num_kv_heads,
        "linear_num_value_heads": size.num_heads,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {
        "hidden_size": size.vision_hidden_size,
        "intermediate_size": size.vision_hidden_size * 4,
        "num_hidden_layers": size.vision_layers,
        "num_attention_heads": size.vision_heads,
        "image_size": size.image_side,
        "patch_size": size.patch_size,
        "num_channels": 3,
    }
    config = MiniCPMV4_6Config(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=tokenizer.convert_tokens_to_ids(markers["image_token"]),
        video_token_id=tokenizer.convert_tokens_to_ids(markers["video_token"]),
        image_size=size.image_side,
        insert_layer_id=0,
    )
    return MiniCPMV4_6ForConditionalGeneration(config), processor


def _build_qwen2_vl(texts: list[str], size: TinySize) -> tuple[Any, Any]:
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    markers = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *markers]
    tokenizer = fast_tokenizer(
        train_tokenizer(texts, specials, size.vocab_size),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    pixels = {"min_pixels": 56 * 56, "max_pixels": size.image_side * size.image_side}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=size.patch_size, **pixels),
        video_processor=Qwen2VLVideoProcessor(patch_size=size.patch_size, **pixels),
        tokenizer=tokenizer,
        chat_template=_CHATML_TEMPLATE.replace(
            "IMAGE", "<|vision_start|><|image_pad|><|vision_end|>"
        ).replace("THINK", ""),
    )
    head_dim = size.hidden_size // size.num_heads
    half = head_dim // 2
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": size.hidden_size,
            "intermediate_size": size.intermediate_size,
            "num_hidden_layers": size.num_layers,
            "num_attention_heads": size.num_heads,
            "num_key_value_heads": size.num_kv_heads,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10_000.0,
                "mrope_section": [half - 2 * (half // 4), half // 4, half // 4],
            },
            "tie_word_embeddings": False,
            "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "depth": size.vision_layers,
            "embed_dim": size.vision_hidden_size,
            "hidden_size": size.hidden_size,
            "num_heads": size.vision_heads,
            "mlp_ratio": 2,
            "patch_size": size.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    return Qwen2VLForConditionalGeneration(config), processor


def _build_idefics3(texts: list[str], size: TinySize) -> tuple[Any, Any]:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    grid_tags = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    specials = [
        "<|endoftext|>",
        "<|im_start|>",
        "<end_of_utterance>",
        "<fake_token_around_image>",
        "<image>",
        "<global-img>",
        *grid_tags,
    ]
    tokenizer = fast_tokenizer(
        train_tokenizer(texts, specials, size.vocab_size),
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    scale_factor = 2
    side = size.image_side
    image_seq_len = (side // size.patch_size) ** 2 // scale_factor**2
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": side},
        max_image_size={"longest_edge": side},
        do_image_splitting=False,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=_IDEFICS3_TEMPLATE,
    )
    config = Idefics3Config(
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": size.hidden_size,
            "intermediate_size": size.intermediate_size,
            "num_hidden_layers": size.num_layers,
            "num_attention_heads": size.num_heads,
            "num_key_value_heads": size.num_kv_heads,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": size.vision_hidden_size,
            "intermediate_size": size.vision_hidden_size * 4,
            "num_hidden_layers": size.vision_layers,
            "num_attention_heads": size.vision_heads,
            "image_size": side,
            "patch_size": size.patch_size,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale_factor,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return Idefics3ForConditionalGeneration(config), processor


def _build_llava(texts: list[str], size: TinySize) -> tuple[Any, Any]:
    from transformers import (
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tokenizer = fast_tokenizer(
        train_tokenizer(texts, specials, size.vocab_size),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        padding_side="left",
    )
    side = size.image_side
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=size.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_LLAVA_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": size.vision_hidden_size,
            "intermediate_size": size.vision_hidden_size * 4,
            "num_hidden_layers": size.vision_layers,
            "num_attention_heads": size.vision_heads,
            "image_size": side,
            "patch_size": size.patch_size,
            "projection_dim": size.vision_hidden_size,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": size.hidden_size,
            "intermediate_size": size.intermediate_size,
            "num_hidden_layers": size.num_layers,
            "num_attention_heads": size.num_heads,
            "num_key_value_heads": size.num_kv_heads,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    return LlavaForConditionalGeneration(config), processor


_BUILDERS: dict[str, Callable[[list[str], TinySize], tuple[Any, Any]]] = {
    "minicpmv4_6": _build_minicpmv4_6,
    "qwen2_vl": _build_qwen2_vl,
    "idefics3": _build_idefics3,
    "llava": _build_llava,
}


def build_tiny_model(
    output: Path,
    texts: Iterable[str],
    family: str = "minicpmv4_6",
    size: TinySize | None = None,
    seed: int = 0,
) -> Path:
    """Build, initialise and save a tiny VLM of `family`; returns the output folder."""
    import torch

    if family not in _BUILDERS:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    size = size or TinySize()
    corpus = [t for t in texts if t]
    if not corpus:
        raise ValueError("the tokenizer corpus is empty: pass the sample data's text")
    torch.manual_seed(seed)
    model, processor = _BUILDERS[family](corpus, size)
    generation = model.generation_config
    generation.eos_token_id = processor.tokenizer.eos_token_id
    generation.pad_token_id = processor.tokenizer.pad_token_id
    generation.bos_token_id = processor.tokenizer.bos_token_id
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    processor.save_pretrained(output)
    (output / "uicap_tiny.json").write_text(
        json.dumps({"family": family, "seed": seed, "size": size.__dict__}, indent=2) + "\n"
    )
    return output


def build_tiny_tokenizer(output: Path, texts: Iterable[str], vocab_size: int = 2048) -> Path:
    """Only a tiny model's kind of tokenizer, saved as a model folder's tokenizer files:
    what prepare reads to count the HTML budget, without building a model."""
    raw = train_tokenizer([t for t in texts if t], ["<|endoftext|>"], vocab_size)
    tokenizer = fast_tokenizer(raw, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.save_pretrained(output)
    return output


# Columns whose text the captioner reads or writes; the tokenizer is trained on them.
_TEXT_COLUMNS = ("summary", "text", "html", "element_type", "action_type", "caption")


def corpus_from_dataset(path: Path) -> list[str]:
    """All contract text of a dataset folder (Hub layout or `save_to_disk`), for the tokenizer."""
    import datasets

    if (path / "dataset_info.json").exists() or (path / "state.json").exists():
        loaded = datasets.load_from_disk(str(path))
    else:
        loaded = datasets.load_dataset(str(path))
    splits = loaded.values() if isinstance(loaded, datasets.DatasetDict) else [loaded]
    corpus: list[str] = []
    for split in splits:
        for column in _TEXT_COLUMNS:
            if column in split.column_names:
                corpus.extend(str(v) for v in split[column] if v)
    if not corpus:
        raise ValueError(f"{path}: no text in any of the columns {', '.join(_TEXT_COLUMNS)}")
    return corpus
