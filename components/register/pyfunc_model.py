"""The captioner as an MLflow pyfunc model: what `models:/ui-element-captioner@champion` serves.

Its MLflow artifacts are the model artifact training wrote (`uicap_model.json` plus the
adapter folder, which holds the processor files). `load_context` rebuilds the captioner
the way evaluation does (`components.captioner.artifact.load_captioner`): the base model from
its id at the pinned revision, or a local folder, or the Hugging Face cache, plus the
adapter. `predict` takes raw screenshots and outlines the element itself with the same
`draw_target_box` and asks with the same `build_prompt` as the prepare step, at the
image size and HTML budget the training data was prepared with (stored in the model
config), so serving sees exactly what training and evaluation saw.

Load-time options (`mlflow.pyfunc.load_model(uri, model_config={...})`): `base_model`
(where the base lives here, e.g. a mounted copy), `device`, `batch_size`,
`max_new_tokens`. `UICAP_BASE_MODEL` in the environment also points at the base.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from PIL import Image, UnidentifiedImageError

from components.ingest import contract

ARTIFACT_KEY = "captioner"
BASE_MODEL_ENV = "UICAP_BASE_MODEL"
# Serving takes the input contract's columns that the prompt is built from.
IMAGE_COLUMN = contract.IMAGE_COLUMN
BBOX_COLUMN = contract.BOX_COLUMN
TEXT_COLUMNS = contract.PROMPT_COLUMNS
INPUT_COLUMNS = (IMAGE_COLUMN, BBOX_COLUMN, *TEXT_COLUMNS)
OUTPUT_COLUMN = "caption"
# Set at load time only (where the base lives here, which device); stored empty.
LOAD_OPTIONS = ("base_model", "device")


class PredictInputError(ValueError):
    """A row cannot be captioned; the message names the row and the column."""


@dataclass(frozen=True)
class ServingConfig:
    """How inputs are turned into model inputs; must match how the training data was prepared."""

    max_image_side: int | None
    html_budget: int
    # What the budget counts (the prepared data's `html_tokens`): the model's tokenizer
    # tokens, or the model-free pattern of models prepared before it was counted.
    html_tokens: str = "pattern"
    batch_size: int = 8
    max_new_tokens: int | None = None  # None: the model's own generation setting

    def to_model_config(self) -> dict[str, Any]:
        """Every key a loader may override: MLflow only lets it override keys stored here."""
        return {**asdict(self), **dict.fromkeys(LOAD_OPTIONS)}

    @classmethod
    def from_model_config(cls, config: Mapping[str, Any]) -> ServingConfig:
        side = config.get("max_image_side")
        limit = config.get("max_new_tokens")
        return cls(
            max_image_side=None if side is None else int(side),
            html_budget=int(config.get("html_budget", 256)),
            html_tokens=str(config.get("html_tokens") or "pattern"),
            batch_size=int(config.get("batch_size", 8)),
            max_new_tokens=None if limit is None else int(limit),
        )


def decode_image(value: Any, row: int) -> Image.Image:
    """An RGB image from PNG/JPEG bytes, base64 (optionally a data: URL) or a file path."""
    where = f"row {row}, column {IMAGE_COLUMN!r}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _open(bytes(value), where)
    if not isinstance(value, str) or not value.strip():
        raise PredictInputError(f"{where}: expected image bytes, base64 or a path, got {value!r}")
    text = value.strip()
    if not text.startswith("data:") and _is_file(text):
        with Image.open(Path(text).expanduser()) as image:
            return image.convert("RGB")
    encoded = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PredictInputError(
            f"{where}: {text[:60]!r} is neither an existing file nor base64 image data"
        ) from None
    return _open(raw, where)


def _is_file(text: str) -> bool:
    """Whether `text` names an existing file (base64 strings are often too long to be one)."""
    if len(text) > 4096:
        return False
    try:
        return Path(text).expanduser().is_file()
    except OSError:
        return False


def _open(raw: bytes, where: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(raw)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise PredictInputError(f"{where}: not a readable image ({error})") from None


def parse_bbox(value: Any, row: int, size: tuple[int, int]) -> list[float]:
    """[x0, y0, x1, y1] in image pixels, from a sequence or "x0,y0,x1,y1"; must lie in the image."""
    where = f"row {row}, column {BBOX_COLUMN!r}"
    if isinstance(value, str):
        value = [part for part in value.replace(" ", ",").split(",") if part]
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError):
        raise PredictInputError(f"{where}: expected 4 numbers x0,y0,x1,y1, got {value!r}") from None
    if len(box) != 4:
        raise PredictInputError(f"{where}: expected 4 numbers x0,y0,x1,y1, got {len(box)}")
    x0, y0, x1, y1 = box
    width, height = size
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise PredictInputError(
            f"{where}: {box} is not a box inside the {width}x{height} image (x0 < x1, y0 < y1)"
        )
    return box


def _text(row: Mapping[str, Any], column: str, index: int) -> str:
    value = row.get(column)
    if value is None or (isinstance(value, float) and value != value):  # absent or NaN
        return ""
    if not isinstance(value, str):
        raise PredictInputError(f"row {index}, column {column!r}: expected text, got {value!r}")
    return value


def build_turns(frame: pd.DataFrame, config: ServingConfig, tokenizer: Any = None) -> list[Any]:
    """One `Turn` per row: the boxed screenshot and the training prompt for that element.

    `tokenizer` is the model's: the HTML budget counts its tokens when the training data's
    did (`html_tokens: model`).
    """
    from components.captioner.families import Turn
    from components.prepare import build_prompt, draw_target_box
    from components.prepare.token_count import PATTERN, TokenizerTokens

    if config.html_tokens == "model" and tokenizer is None:
        raise ValueError("html_tokens=model: the HTML budget needs the model's tokenizer")
    counter = TokenizerTokens(tokenizer) if config.html_tokens == "model" else PATTERN

    missing = [column for column in (IMAGE_COLUMN, BBOX_COLUMN) if column not in frame.columns]
    if missing:
        raise PredictInputError(
            f"input lacks column(s) {missing}; expected {list(INPUT_COLUMNS)} "
            f"({', '.join(TEXT_COLUMNS)} may be empty)"
        )
    turns = []
    for index, row in enumerate(frame.to_dict(orient="records")):
        image = decode_image(row[IMAGE_COLUMN], index)
        bbox = parse_bbox(row[BBOX_COLUMN], index, image.size)
        boxed, _ = draw_target_box(image, bbox, config.max_image_side)
        texts = {column: _text(row, column, index) for column in TEXT_COLUMNS}
        prompt = build_prompt(
            texts["action_type"],
            texts["element_type"],
            texts["text"],
            texts["html"],
            config.html_budget,
            counter,
        )
        turns.append(Turn(id=f"row-{index}", image=boxed, prompt=prompt))
    return turns


class CaptionerModel(mlflow.pyfunc.PythonModel):
    """MLflow's entry point: rebuild base + adapter once, then caption DataFrames of elements."""

    def load_context(self, context: Any) -> None:
        from components.captioner.artifact import load_captioner

        options = dict(context.model_config or {})
        self.config = ServingConfig.from_model_config(options)
        base = options.get("base_model") or os.environ.get(BASE_MODEL_ENV) or None
        device = options.get("device") or _default_device()
        self.captioner = load_captioner(
            Path(context.artifacts[ARTIFACT_KEY]), base_model=base, device=device
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        tokenizer = self.captioner.processor.tokenizer
        turns = build_turns(_as_frame(model_input), self.config, tokenizer)
        captions: list[str] = []
        size = max(1, self.config.batch_size)
        for start in range(0, len(turns), size):
            captions += self.captioner.caption(
                turns[start : start + size], self.config.max_new_tokens
            )
        return pd.DataFrame({OUTPUT_COLUMN: captions})


def _as_frame(model_input: Any) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, Mapping):
        return pd.DataFrame([dict(model_input)])
    if isinstance(model_input, Sequence) and not isinstance(model_input, str):
        return pd.DataFrame(list(model_input))
    raise PredictInputError(f"expected a DataFrame of elements, got {type(model_input).__name__}")


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def signature() -> Any:
    """Columns in, one caption out. `image` and `bbox` accept several encodings (see module)."""
    from mlflow.models import ModelSignature
    from mlflow.types import DataType
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = [ColSpec(AnyType(), IMAGE_COLUMN), ColSpec(AnyType(), BBOX_COLUMN)]
    inputs += [ColSpec(DataType.string, column, required=False) for column in TEXT_COLUMNS]
    return ModelSignature(
        inputs=Schema(inputs), outputs=Schema([ColSpec(DataType.string, OUTPUT_COLUMN)])
    )


def example_screenshot() -> Image.Image:
    """A small sign-in form with one button: the input example stored with every version."""
    from PIL import ImageDraw

    image = Image.new("RGB", (160, 96), (245, 246, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle((12, 12, 148, 30), outline=(150, 150, 160), fill=(255, 255, 255))
    draw.text((16, 15), "email", fill=(120, 120, 130))
    draw.rectangle((44, 52, 116, 76), fill=(40, 90, 220))
    draw.text((58, 58), "Sign in", fill=(255, 255, 255))
    return image


def input_example() -> pd.DataFrame:
    buffer = io.BytesIO()
    example_screenshot().save(buffer, format="PNG")
    return pd.DataFrame(
        {
            IMAGE_COLUMN: [base64.b64encode(buffer.getvalue()).decode("ascii")],
            BBOX_COLUMN: [[44.0, 52.0, 117.0, 77.0]],
            "element_type": ["button"],
            "text": ["Sign in"],
            "html": ['<form><input name="email"><button type="submit">Sign in</button></form>'],
            "action_type": ["click"],
        }
    )


def save_pyfunc(
    artifact: Path,
    output: Path,
    config: ServingConfig,
    pip_requirements: list[str],
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the pyfunc model folder to `output` (MLflow loads and checks the input example).

    The model carries the `components` package (`code_paths`), so `mlflow models serve`
    runs it in any environment built from its requirements, without uicap installed.
    """
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="uicap-code-") as scratch:
        code = Path(scratch) / "components"
        shutil.copytree(
            Path(__file__).resolve().parents[1],
            code,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        mlflow.pyfunc.save_model(
            path=str(output),
            python_model=CaptionerModel(),
            artifacts={ARTIFACT_KEY: str(artifact)},
            signature=signature(),
            input_example=input_example(),
            pip_requirements=pip_requirements,
            code_paths=[str(code)],
            model_config=config.to_model_config(),
            metadata=metadata,
        )
    return output
