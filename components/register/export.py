"""Export a registered captioner for an inference server (`uicap export`).

vLLM and SGLang serve MiniCPM-V 4.6 (and the other native families) from a plain
Hugging Face model folder: `config.json`, `*.safetensors` weights, `generation_config.json`
and the processor / tokenizer files, loaded with `AutoModelForImageTextToText` and
`AutoProcessor`. `--merged` folds the LoRA adapter into the base weights and writes such
a folder, so the server needs no adapter support. Without `--merged` the adapter folder
is written as PEFT saved it (for a server's LoRA support) next to the base reference.

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
            captioner.model.save_pretrained(staging, safe_serialization=True)
            captioner.family.save_processor(captioner.processor, staging)
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
