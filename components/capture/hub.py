"""Push a capture to a Hub dataset repo: the commit the next scheduled run resolves.

The repo gets the Hub's own layout (parquet per split under data/, a card naming the
splits, capture.json beside them), which `uicap ingest` and `load_dataset` read at a
pinned commit. The token comes from HF_TOKEN, never from a setting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from components.capture.dataset import REPORT_NAME

CARD = """---
configs:
- config_name: default
  data_files:
{files}
---

# UI interactions captured with `uicap capture`

Records of the uicap input contract, captured by replaying recorded browser flows in
headless Chromium. `train` holds the labelled records, `unlabelled` the rest;
`capture.json` lists the counts and every step that could not be captured.
"""


class PushError(RuntimeError):
    """The Hub refused or could not be reached; the message says which repo and why."""


def push(output: Path, repo_id: str) -> str:
    """Upload a capture folder to `repo_id` (created when missing); returns the commit sha."""
    import datasets
    from huggingface_hub import HfApi

    loaded = datasets.load_from_disk(str(output))
    datasets.disable_progress_bars()
    token = os.environ.get("HF_TOKEN") or None
    staging = Path(tempfile.mkdtemp(prefix="uicap-push-"))
    try:
        (staging / "data").mkdir()
        lines = []
        for split, rows in loaded.items():
            rows.to_parquet(str(staging / "data" / f"{split}-00000-of-00001.parquet"))
            lines.append(f"  - split: {split}\n    path: data/{split}-*")
        (staging / "README.md").write_text(CARD.format(files="\n".join(lines)), encoding="utf-8")
        shutil.copy(Path(output) / REPORT_NAME, staging / REPORT_NAME)
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=True)
            info = api.upload_folder(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=str(staging),
                commit_message="uicap capture",
            )
        except Exception as error:
            raise PushError(f"cannot push to Hub dataset {repo_id}: {error}") from error
        return info.oid
    finally:
        shutil.rmtree(staging, ignore_errors=True)
