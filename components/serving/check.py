"""The serving check: export a registered captioner, serve it with vLLM, and compare
vLLM's greedy captions with uicap's own for the records the model was evaluated on.

The client sends exactly what a platform team's client sends: the prepared prompt and
the boxed screenshot through the OpenAI chat API, with no chat-template arguments, so
the export itself must make the server caption as uicap does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.prepare.conversations import PreparedRecord, read_split
from components.serving.agreement import Agreement, compare

Progress = Callable[[str], None]
CAPTIONS_FILE = "captions.json"


class ServingCheckError(RuntimeError):
    """The check cannot run as asked; the message says what is missing."""


@dataclass(frozen=True)
class ServingCheck:
    model: str
    version: str | None
    data: Path
    export: Path
    agreement: Agreement
    server_start_s: float
    ours_s: float
    theirs_s: float

    def summary(self) -> dict[str, Any]:
        return {**self.agreement.summary(), "model": self.model, "version": self.version}


def _split_sha256(folder: Path) -> str:
    return "sha256:" + hashlib.sha256((folder / "test.json").read_bytes()).hexdigest()


def find_evaluated_split(split_sha256: str, roots: Sequence[Path]) -> Path:
    """The prepared folder whose test split is byte for byte the one the version was
    evaluated on (the registry's `uicap.eval.test_split_sha256` tag)."""
    for root in roots:
        for split in sorted(Path(root).glob("**/test.json")):
            if _split_sha256(split.parent) == split_sha256:
                return split.parent
    raise ServingCheckError(
        f"no prepared test split with {split_sha256} under {', '.join(map(str, roots))}; "
        "pass the prepared folder the model was evaluated on (--data)"
    )


def evaluated_split_of(registry_uri: str, name: str, version: str) -> str:
    from mlflow import MlflowClient

    from components.register import tags

    entry = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri).get_model_version(
        name, version
    )
    digest = entry.tags.get(tags.EVAL_TEST_SPLIT)
    if not digest:
        raise ServingCheckError(
            f"models:/{name}/{version} has no {tags.EVAL_TEST_SPLIT} tag; pass --data"
        )
    return digest


def data_uri(image: Path) -> str:
    kind = mimetypes.guess_type(image.name)[0] or "image/png"
    return f"data:{kind};base64,{base64.b64encode(image.read_bytes()).decode('ascii')}"


def chat_messages(record: PreparedRecord) -> list[dict[str, Any]]:
    """One user turn, image then prompt, as `prepare` built it for training."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_uri(record.image)}},
                {"type": "text", "text": record.prompt},
            ],
        }
    ]


def server_captions(
    base_url: str,
    served_name: str,
    records: Sequence[PreparedRecord],
    progress: Progress = lambda _: None,
) -> dict[str, str]:
    """A server's captions, one request per record, with no sampling or length arguments:
    greedy decoding and the caption's length must come from the export itself."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", timeout=300.0, max_retries=0)
    captions: dict[str, str] = {}
    for index, record in enumerate(records, start=1):
        answer = client.chat.completions.create(
            model=served_name,
            messages=chat_messages(record),  # type: ignore[arg-type]
        )
        captions[record.id] = (answer.choices[0].message.content or "").strip()
        if index % 20 == 0 or index == len(records):
            progress(f"vLLM captioned {index}/{len(records)}")
    return captions


def uicap_captions(
    artifact: Path,
    records: Sequence[PreparedRecord],
    max_new_tokens: int,
    device: str = "cpu",
    batch_size: int = 8,
) -> tuple[dict[str, str], Any]:
    """uicap's own captions, in bf16 as served, through the path evaluation uses."""
    import torch

    from components.captioner.artifact import load_captioner
    from components.evaluate.generation import Captioning, generate_captions

    captioner = load_captioner(artifact, dtype=torch.bfloat16, device=device)
    captioning = Captioning(captioner.family, captioner.model, captioner.processor)
    run = generate_captions(
        captioning, records, batch_size=batch_size, max_new_tokens=max_new_tokens
    )
    return run.captions, captioner.processor.tokenizer


def run_serving_check(
    reference: str,
    output: Path,
    *,
    vllm_python: str,
    tracking_uri: str | None,
    data: Path | None = None,
    search_roots: Sequence[Path] = (),
    max_records: int = 0,
    min_records: int = 1,
    max_model_len: int = 4096,
    cpu: bool = True,
    start_timeout_s: float = 600.0,
    progress: Progress = lambda _: None,
) -> ServingCheck:
    """Export `reference` in bf16 to `<output>/export`, serve it, and compare captions.

    Writes `<output>/captions.json` (both sides, per record) and `<output>/vllm.log`.
    """
    from components.evaluate.models import ModelReferenceError, resolve_model
    from components.register.export import export_model
    from components.serving.vllm_server import SERVED_NAME, free_port, serve_command, vllm_server

    output = Path(output)
    # A previous run's captions must not pass for this run's.
    (output / CAPTIONS_FILE).unlink(missing_ok=True)
    artifact_dir = output / "artifact"
    shutil.rmtree(artifact_dir, ignore_errors=True)
    try:
        resolved = resolve_model(reference, download_dir=artifact_dir, tracking_uri=tracking_uri)
    except ModelReferenceError as error:
        raise ServingCheckError(str(error)) from None
    if resolved.kind != "artifact" or resolved.metadata is None:
        raise ServingCheckError(f"{reference}: not a uicap model artifact or registered version")
    version = resolved.registry.version if resolved.registry else None
    if data is None:
        if resolved.registry is None or tracking_uri is None:
            raise ServingCheckError(f"{reference}: not a registered version; pass --data")
        digest = evaluated_split_of(tracking_uri, resolved.registry.name, version or "")
        data = find_evaluated_split(digest, search_roots)
    records = read_split(Path(data), "test")
    if max_records:
        records = records[:max_records]
    if len(records) < min_records:
        raise ServingCheckError(
            f"{data}: {len(records)} test records to send, fewer than the {min_records} asked for"
        )
    progress(f"{len(records)} test records from {data}")

    artifact = Path(resolved.location)
    export_dir = output / "export"
    export_model(str(artifact), export_dir, merged=True, dtype="bfloat16", overwrite=True)
    progress(f"exported {reference} (version {version}) in bf16 to {export_dir}")

    max_tokens = resolved.metadata.generation.max_new_tokens
    started = time.perf_counter()
    ours, tokenizer = uicap_captions(artifact, records, max_tokens, "cpu" if cpu else "cuda")
    ours_s = time.perf_counter() - started
    progress(f"uicap captioned {len(ours)} records in {ours_s:.1f}s")

    port = free_port()
    command = serve_command(
        vllm_python,
        export_dir,
        port,
        max_model_len=max_model_len,
        cpu=cpu,
        served_name=SERVED_NAME,
    )
    # 1 GiB of KV cache is plenty for one tiny model; a value set by the caller wins.
    env = {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")} if cpu else {}
    progress(f"starting vLLM's OpenAI server ({' '.join(command[:3])}) ...")
    with vllm_server(
        command, port, output / "vllm.log", start_timeout_s=start_timeout_s, env=env
    ) as server:
        progress(f"vLLM answered on {server.base_url} after {server.started_in:.0f}s")
        started = time.perf_counter()
        theirs = server_captions(server.base_url, server.served_name, records, progress=progress)
        theirs_s = time.perf_counter() - started

    def tokenize(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    agreement = compare(ours, theirs, tokenize)
    (output / CAPTIONS_FILE).write_text(
        json.dumps(
            [{"id": r.id, "uicap": ours[r.id], "vllm": theirs[r.id]} for r in records], indent=1
        )
        + "\n"
    )
    return ServingCheck(
        reference,
        version,
        Path(data),
        export_dir,
        agreement,
        server.started_in,
        ours_s,
        theirs_s,
    )
