"""Serving: `models:/…@champion` captions raw elements exactly as evaluation captioned them.

The local profile's prepared test split was made by the real prepare step from the
ingested records. Evaluation captions those prepared (already boxed) records through
`generate_captions`; serving gets the raw screenshot, box and fields, and must draw the
same box and build the same prompt, so the captions must be identical. The adapter is a
seeded random LoRA on the warmed tiny base: what it says does not matter, only that the
two paths say the same.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from components.register.client import Registry, connect
from components.register.config import RegistryConfig
from components.register.promotion import promote_manually
from components.register.pyfunc_model import PredictInputError, ServingConfig, build_turns
from components.register.registration import register_candidate
from pipelines.cli import app
from tests.support.local_profile import LocalProfile
from tests.support.registry_support import Tracking, evaluation_for, make_artifact, weights_sha

RECORDS = 4
MAX_NEW_TOKENS = 12


@pytest.fixture(scope="module")
def served(local_profile: LocalProfile, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The artifact, a few prepared test records, their raw records, and evaluation's captions."""
    import datasets

    from components.captioner.artifact import load_captioner
    from components.evaluate.generation import Captioning, generate_captions
    from components.prepare.conversations import read_split

    manifest = json.loads((local_profile.prepared / "manifest.json").read_text())
    artifact = make_artifact(
        tmp_path_factory.mktemp("served") / "candidate",
        local_profile.assets.base_model,
        # Drawn so that its captions differ across the four records: with adapters on every
        # text linear, a larger alpha drowns the input and says one thing everywhere.
        seed=3,
        fingerprint=manifest["fingerprint"],
        alpha=20.0,
    )
    records = read_split(local_profile.prepared, "test")[:RECORDS]
    captioner = load_captioner(artifact, device="cpu")
    captioning = Captioning(captioner.family, captioner.model, captioner.processor)
    evaluated = generate_captions(captioning, records, batch_size=8, max_new_tokens=MAX_NEW_TOKENS)
    raw = datasets.load_from_disk(str(local_profile.prepared.parent / "ingested" / "data"))
    by_id = {external_id: index for index, external_id in enumerate(raw["external_id"])}
    rows = [raw[by_id[record.external_id]] for record in records]
    return {
        "artifact": artifact,
        "records": records,
        "captions": [evaluated.captions[record.id] for record in records],
        "raw": rows,
        "captioner": captioner,
    }


def png_bytes(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": [png_bytes(row["image"]) for row in rows],
            "bbox": [list(row["bbox"]) for row in rows],
            "element_type": [row["element_type"] for row in rows],
            "text": [row["text"] for row in rows],
            "html": [row["html"] for row in rows],
            "action_type": [row["action_type"] for row in rows],
        }
    )


@pytest.fixture
def champion(
    tracking: Tracking,
    registry_settings: RegistryConfig,
    served: dict[str, Any],
    local_profile: LocalProfile,
) -> Registry:
    """The artifact registered from the prepared data and made champion."""
    registry = connect(registry_settings)
    evaluation = evaluation_for(weights_sha(served["artifact"]), 0.6)
    register_candidate(
        registry, served["artifact"], evaluation, "serve-run", data_dir=local_profile.prepared
    )
    promote_manually(registry, "1", "serving test")
    return registry


def load_champion(registry: Registry, tracking: Tracking) -> Any:
    import mlflow

    mlflow.set_tracking_uri(tracking.uri)
    mlflow.set_registry_uri(tracking.uri)
    return mlflow.pyfunc.load_model(
        f"models:/{registry.model_name}@champion",
        model_config={"max_new_tokens": MAX_NEW_TOKENS},
    )


def test_predict_through_the_champion_alias_gives_the_evaluation_captions(
    champion: Registry, tracking: Tracking, served: dict[str, Any]
) -> None:
    model = load_champion(champion, tracking)
    got = model.predict(frame(served["raw"]))
    assert list(got.columns) == ["caption"]
    assert got["caption"].tolist() == served["captions"]
    assert len(set(served["captions"])) > 1, "the records should not all get one caption"


def test_predict_is_the_family_generate_on_the_training_box_and_prompt(
    served: dict[str, Any], local_profile: LocalProfile
) -> None:
    from components.captioner.families import Turn
    from components.prepare import build_prompt, draw_target_box

    settings = local_profile.settings.prepare
    captioner = served["captioner"]
    turns = []
    for index, row in enumerate(served["raw"]):
        boxed, _ = draw_target_box(row["image"], row["bbox"], settings.max_image_side)
        prompt = build_prompt(
            row["action_type"],
            row["element_type"],
            row["text"],
            row["html"],
            settings.html_budget_tokens,
        )
        assert prompt == served["records"][index].prompt  # the prepared prompt, exactly
        turns.append(Turn(f"r{index}", boxed, prompt))
    direct = captioner.family.generate(captioner.model, captioner.processor, turns, MAX_NEW_TOKENS)
    assert direct == served["captions"]


def test_image_as_bytes_base64_or_path_gives_the_same_caption(
    champion: Registry, tracking: Tracking, served: dict[str, Any], tmp_path: Path
) -> None:
    row = served["raw"][0]
    path = tmp_path / "screen.png"
    row["image"].save(path)
    encoded = base64.b64encode(path.read_bytes()).decode()
    inputs = frame([row, row, row, row])
    inputs["image"] = [path.read_bytes(), encoded, f"data:image/png;base64,{encoded}", str(path)]
    inputs["bbox"] = [
        list(row["bbox"]),
        ",".join(str(v) for v in row["bbox"]),
        row["bbox"],
        row["bbox"],
    ]
    got = load_champion(champion, tracking).predict(inputs)["caption"].tolist()
    assert got == [served["captions"][0]] * 4


def test_the_cli_prints_the_champion_caption(
    champion: Registry, tracking: Tracking, served: dict[str, Any], tmp_path: Path
) -> None:
    row = served["raw"][1]
    path = tmp_path / "screen.png"
    row["image"].save(path)
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--model",
            f"models:/{champion.model_name}@champion",
            "--image",
            str(path),
            "--bbox",
            ",".join(f"{v:g}" for v in row["bbox"]),
            "--element-type",
            row["element_type"],
            "--text",
            row["text"],
            "--html",
            row["html"],
            "--action-type",
            row["action_type"],
            "--max-new-tokens",
            str(MAX_NEW_TOKENS),
        ],
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert result.stdout.strip() == served["captions"][1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bbox": [[10, 10, 5, 20]]}, "row 0, column 'bbox'"),
        ({"bbox": [[0, 0, 99999, 10]]}, "not a box inside"),
        ({"image": ["not-a-file-or-base64!"]}, "row 0, column 'image'"),
        ({"image": [b"not a png"]}, "not a readable image"),
        ({"text": [42]}, "row 0, column 'text': expected text"),
    ],
)
def test_bad_rows_are_named_with_their_column(
    served: dict[str, Any], change: dict[str, list[Any]], message: str
) -> None:
    inputs = frame(served["raw"][:1])
    for column, values in change.items():
        inputs[column] = values
    with pytest.raises(PredictInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_turns(inputs, ServingConfig(448, 128))


def test_a_frame_without_the_required_columns_is_refused() -> None:
    with pytest.raises(PredictInputError, match=r"lacks column\(s\) \['bbox'\]"):
        build_turns(pd.DataFrame({"image": [b""]}), ServingConfig(448, 128))


def test_export_writes_merged_weights_that_caption_the_same(
    champion: Registry, tracking: Tracking, served: dict[str, Any], tmp_path: Path
) -> None:
    from components.captioner.families import get_family

    output = tmp_path / "export"
    result = CliRunner().invoke(
        app,
        ["export", "--model", f"models:/{champion.model_name}@champion", "--output", str(output)],
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    files = {path.name for path in output.iterdir()}
    assert {"config.json", "generation_config.json", "uicap_export.json"} <= files
    assert any(name.endswith(".safetensors") for name in files)
    assert {"tokenizer.json", "tokenizer_config.json"} <= files
    assert "adapter_config.json" not in files  # a plain model folder, no PEFT left
    provenance = json.loads((output / "uicap_export.json").read_text())
    assert provenance["merged"] and provenance["registry"]["version"] == "1"

    family = get_family("minicpmv4_6")
    model, processor = family.load(output)  # as an inference server would: a plain HF folder
    turns = [record.turn(with_answer=False) for record in served["records"]]
    merged = family.generate(model.eval(), processor, turns, MAX_NEW_TOKENS)
    assert merged == served["captions"]


@pytest.mark.parametrize("tracking", ["sqlite"], indirect=True)
def test_the_export_captions_with_no_arguments_as_uicap_does(
    champion: Registry, tracking: Tracking, served: dict[str, Any], tmp_path: Path
) -> None:
    """A server applies the folder's chat template with no template arguments and decodes
    with its generation config: both must say what uicap says, not think first."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from components.captioner.families import get_family

    output = tmp_path / "export"
    result = CliRunner().invoke(
        app,
        ["export", "--model", f"models:/{champion.model_name}@champion", "--output", str(output)],
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    processor = AutoProcessor.from_pretrained(output, local_files_only=True)
    family = get_family("minicpmv4_6")
    record = served["records"][0]
    message = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": record.prompt}]}
    ]
    plain = processor.apply_chat_template(message, add_generation_prompt=True, tokenize=False)
    assert plain == family.prompt_text(processor, record.prompt)
    assert plain.endswith("<think>\n\n</think>\n\n")  # an empty reasoning block: caption
    thinking = processor.apply_chat_template(
        message, add_generation_prompt=True, tokenize=False, enable_thinking=True
    )
    assert not thinking.endswith("</think>\n\n")  # a client may still ask for thinking

    config = json.loads((output / "generation_config.json").read_text())
    metadata = served["captioner"].metadata.generation
    assert config["eos_token_id"] == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config["do_sample"] is False and config["max_new_tokens"] == metadata.max_new_tokens
    assert config["temperature"] == 0.0  # vLLM reads no do_sample: greedy needs this

    # Plain transformers, no uicap code and no generation arguments: uicap's captions.
    model = AutoModelForImageTextToText.from_pretrained(output, local_files_only=True).eval()
    turns = [item.turn(with_answer=False) for item in served["records"]]
    prompts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t.prompt}]}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for t in turns
    ]
    inputs = processor(
        images=[turn.image for turn in turns],
        text=prompts,
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )
    with torch.inference_mode():
        out = model.generate(**inputs)
    texts = processor.tokenizer.batch_decode(
        out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert [text.strip() for text in texts] == served["captioner"].caption(turns)


def test_a_local_base_that_changed_since_training_is_refused(
    served: dict[str, Any], local_profile: LocalProfile, tmp_path: Path
) -> None:
    import shutil

    from components.captioner.artifact import METADATA_FILE, load_captioner
    from components.content_hash import PinMismatchError, content_hash

    base = shutil.copytree(local_profile.assets.base_model, tmp_path / "base")
    artifact = shutil.copytree(served["artifact"], tmp_path / "artifact")
    metadata = json.loads((artifact / METADATA_FILE).read_text())
    metadata.update(base_model=str(base), base_revision=content_hash(base))
    (artifact / METADATA_FILE).write_text(json.dumps(metadata))
    assert load_captioner(artifact, device="cpu").metadata.base_revision.startswith("sha256:")

    (base / "config.json").write_text((base / "config.json").read_text() + "\n")
    with pytest.raises(PinMismatchError, match=r"base model .*base changed since it was"):
        load_captioner(artifact, device="cpu")


# Run first in every Python the server starts (PYTHONPATH): drop the editable install's
# finder, so `components` can come only from the code the model carries.
HIDE_UICAP = """
import importlib.util
import sys

def editable(finder):
    return (getattr(finder, "__module__", None) or "").startswith("__editable__")


sys.meta_path[:] = [finder for finder in sys.meta_path if not editable(finder)]
if importlib.util.find_spec("components") is not None:
    raise SystemExit("uicap is still importable: the test would prove nothing")
"""


@pytest.mark.parametrize("tracking", ["server"], indirect=True)
def test_mlflow_models_serve_runs_the_champion_where_uicap_is_not_installed(
    champion: Registry, tracking: Tracking, served: dict[str, Any], tmp_path: Path
) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import mlflow
    import requests

    uri = f"models:/{champion.model_name}@champion"
    mlflow.set_tracking_uri(tracking.uri)
    mlflow.set_registry_uri(tracking.uri)
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model")))
    from importlib.metadata import version

    requirements = dict(
        line.split("==") for line in (local / "requirements.txt").read_text().split()
    )
    assert {"mlflow", "torch", "transformers", "peft", "pillow"} <= set(requirements)
    assert "uicap" not in requirements  # no index has it
    assert all(version(name) == pinned for name, pinned in requirements.items())
    assert (local / "code" / "components" / "register" / "pyfunc_model.py").is_file()
    inputs = frame(served["raw"])
    inputs["image"] = [base64.b64encode(value).decode() for value in inputs["image"]]
    expected = mlflow.pyfunc.load_model(uri).predict(inputs)["caption"].tolist()

    hider = tmp_path / "hide-uicap"
    hider.mkdir()
    (hider / "sitecustomize.py").write_text(HIDE_UICAP)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(hider),
        "MLFLOW_TRACKING_URI": tracking.uri,
    }
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_split": inputs.to_dict(orient="split")},
            timeout=300,
        )
        assert answer.ok, answer.text
        got = [row["caption"] for row in answer.json()["predictions"]]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert got == expected
