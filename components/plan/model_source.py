"""Where the planner gets a base model's dimensions: a config file, never its weights.

In order: the `plan.model_config_path` setting, a local base folder, the Hub at the
base's revision, and last the published snapshot shipped in `published/` (for an
air-gapped machine). The source is part of the plan's output, so a plan made from the
snapshot says so.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PUBLISHED = Path(__file__).with_name("published")
CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"


@dataclass(frozen=True)
class ModelSource:
    config: Any  # a transformers PretrainedConfig
    preprocessor: dict[str, Any]
    described: str


def load_model_source(base: str, revision: str | None, override: str | None = None) -> ModelSource:
    from transformers import AutoConfig

    if override is not None:
        folder = Path(override)
        folder = folder.parent if folder.is_file() else folder
        if not (folder / CONFIG).is_file():
            raise FileNotFoundError(f"plan.model_config_path: no {CONFIG} in {folder}")
        return ModelSource(
            AutoConfig.from_pretrained(folder), _read(folder / PREPROCESSOR), str(folder)
        )
    if Path(base).is_dir():
        return ModelSource(
            AutoConfig.from_pretrained(base, local_files_only=True),
            _read(Path(base) / PREPROCESSOR),
            f"{base} (local folder)",
        )
    snapshot = PUBLISHED / base.replace("/", "--")
    reason = _hub_unreachable()
    if reason is None:
        from huggingface_hub import hf_hub_download

        try:
            config_file = hf_hub_download(base, CONFIG, revision=revision)
            preprocessor_file = hf_hub_download(base, PREPROCESSOR, revision=revision)
        except Exception as error:  # any Hub failure falls back the same way
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
        else:
            folder = Path(config_file).parent
            return ModelSource(
                AutoConfig.from_pretrained(folder),
                _read(Path(preprocessor_file)),
                f"{base}@{revision or 'main'} (Hub)",
            )
    if not (snapshot / CONFIG).is_file():
        raise RuntimeError(
            f"cannot read {base}'s config ({reason}) and no published snapshot ships for it: "
            "set plan.model_config_path to a folder with its config.json"
        )
    return ModelSource(
        AutoConfig.from_pretrained(snapshot),
        _read(snapshot / PREPROCESSOR),
        f"{base}: published snapshot in uicap (Hub unreachable: {reason})",
    )


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _hub_unreachable() -> str | None:
    """Why the Hub cannot answer, found in seconds (its client retries for half a minute)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=3).close()
    except OSError as error:
        return f"{endpoint.hostname}: {error}"
    return None
