"""Export a registered captioner for an inference server (`uicap export`).

vLLM and SGLang serve MiniCPM-V 4.6 (and the other native families) from a plain
Hugging Face model folder: `config.json`, `*.safetensors` weights, `generation_config.json`
and the processor / tokenizer files, loaded with `AutoModelForImageTextToText` and
`AutoProcessor`. `--merged` folds the LoRA adapter into the base weights and writes such
a folder, so the server needs no adapter support. Without `--merged` the adapter folder
is written as PEFT saved it (for a server's LoRA support) next to the base reference.

A merged export is what a server needs to caption as uicap does, with no flags: the
processor files, a chat template whose default is a caption, not a reasoning block
(MiniCPM-V 4.6 thinks unless told otherwise), and a generation config that decodes
greedily, stops at the end of turn and bounds the caption's length as evaluation did.

`uicap_export.json` in the output says where the weights came from: the registry version
or artifact, the base id and revision, the family and the prompt template version, since
clients must ask in that template.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPORT_FILE = "uicap_export.json"
# Prepended to a chat template that reads `enable_thinking`: unset means "caption".
# Jinja's `if` opens no scope, so the `set` holds for the rest of the template.
_CAPTION_BY_DEFAULT = (
    "{%- if enable_thinking is not defined -%}{%- set enable_thinking = false -%}{%- endif -%}"
)


class ExportError(ValueError):
    """The model cannot be exported as asked; the message says why."""


@dataclass(frozen=True)
class Exported:
    output: Path
    merged: bool
    files: list[str]


def _locate_artifact(reference: str, scratch: Path, tracking_uri: str | None) -> tuple[Path, Any]:
    """The model artifact folder (uicap_model.json + weights) behind `reference`."""
    from components.evaluate.models import ModelReferenceError, resolve_model

    try:
        resolved = resolve_model(reference, download_dir=scratch, tracking_uri=tracking_uri)
    except ModelReferenceError as error:
        raise ExportError(str(error)) from None
    if resolved.kind != "artifact":
        raise ExportError(
            f"{reference}: not a uicap model artifact or registered version (nothing to merge)"
        )
    return Path(resolved.location), resolved


def export_model(
    reference: str,
    output: Path,
    *,
    merged: bool = True,
    base_model: str | None = None,
    dtype: str = "auto",
    tracking_uri: str | None = None,
    overwrite: bool = False,
) -> Exported:
    """Write `reference` (models:/ URI or artifact folder) to `output` as a servable folder."""
    import torch

    from components.captioner.artifact import load_captioner, read_metadata

    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise ExportError(f"{output} is not empty; pass overwrite to replace its contents")
    with tempfile.TemporaryDirectory(prefix="uicap-export-") as scratch:
        artifact, resolved = _locate_artifact(reference, Path(scratch), tracking_uri)
        metadata = read_metadata(artifact)
        staging = output.with_name(f".{output.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        if merged or metadata.kind == "full":
            torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
            captioner = load_captioner(
                artifact, base_model=base_model, merge=True, dtype=torch_dtype, device="cpu"
            )
            _serving_generation(captioner)
            captioner.model.save_pretrained(staging, safe_serialization=True)
            captioner.family.save_processor(captioner.processor, staging)
            greedy_for_servers(staging)
            caption_by_default(staging)
        else:
            shutil.copytree(artifact / metadata.weights, staging, dirs_exist_ok=True)
        provenance = {
            "source": reference,
            "registry": None if resolved.registry is None else resolved.registry.__dict__,
            "weights_sha256": resolved.weights_sha256,
            "merged": merged or metadata.kind == "full",
            "base_model": metadata.base_model,
            "base_revision": metadata.base_revision,
            "family": metadata.family,
            "prompt_template_version": metadata.prompt_template_version,
            "generation": metadata.generation.model_dump(),
            "data_fingerprint": metadata.data_fingerprint,
        }
        (staging / EXPORT_FILE).write_text(json.dumps(provenance, indent=1) + "\n")
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    files = sorted(
        path.relative_to(output).as_posix() for path in output.rglob("*") if path.is_file()
    )
    return Exported(output, provenance["merged"], files)


def _serving_generation(captioner: Any) -> None:
    """Greedy, stop at the end of turn, at most the caption length evaluation used."""
    generation = captioner.model.generation_config
    settings = captioner.metadata.generation
    generation.do_sample = False
    generation.num_beams = settings.num_beams
    generation.max_new_tokens = settings.max_new_tokens
    generation.eos_token_id = captioner.family.end_of_turn_id(captioner.processor)
    generation.pad_token_id = captioner.processor.tokenizer.pad_token_id
    for sampling_only in ("temperature", "top_p", "top_k"):
        setattr(generation, sampling_only, None)


def greedy_for_servers(folder: Path) -> None:
    """vLLM reads no `do_sample`: its default temperature (1.0) samples unless the
    generation config says 0. transformers only notes the flag as unused in greedy mode."""
    path = folder / "generation_config.json"
    config = json.loads(path.read_text())
    config["temperature"] = 0.0
    path.write_text(json.dumps(config, indent=2) + "\n")


def caption_by_default(folder: Path) -> list[str]:
    """Make every chat template in `folder` caption unless a client asks for thinking.

    Returns the files changed. A template that never reads `enable_thinking` is left as is.
    """
    changed: list[str] = []

    def patched(template: str) -> str | None:
        if "enable_thinking" not in template or template.startswith(_CAPTION_BY_DEFAULT):
            return None
        return _CAPTION_BY_DEFAULT + template

    jinja = folder / "chat_template.jinja"
    if jinja.is_file() and (new := patched(jinja.read_text())) is not None:
        jinja.write_text(new)
        changed.append(jinja.name)
    for name in ("chat_template.json", "tokenizer_config.json", "processor_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        template = data.get("chat_template")
        if isinstance(template, str) and (new := patched(template)) is not None:
            data["chat_template"] = new
            path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            changed.append(name)
    return changed
