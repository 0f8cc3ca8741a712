"""report.html: one self-contained page that shows what evaluation.json says, for people.

Everything comes from the `Evaluation` (plus the split images it points to), so a
report can be rebuilt from evaluation.json alone. Charts (matplotlib, Agg canvas) and
screenshot thumbnails are embedded as base64 PNG data URIs; the page loads nothing else.
Dataset strings (references, prompts with the page's HTML, captions, ids) are only ever
inserted through Jinja's autoescaping, and a Content-Security-Policy that allows no
script and no network is the second line of defence.
"""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from components.evaluate.result import Comparison, Evaluation, GuardResult, PredictionRow

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"
ROLE_COLOURS = {"candidate": "#2563eb", "champion": "#d97706", "base": "#9ca3af"}
TABLE_METRICS = (
    ("CIDEr", "CIDEr"),
    ("Bleu_4", "BLEU-4"),
    ("METEOR", "METEOR"),
    ("ROUGE_L", "ROUGE-L"),
    ("semantic_similarity", "Semantic similarity"),
    ("format_compliance", "Format compliance"),
    ("mean_words", "Mean words"),
)
CHART_METRICS = (
    ("CIDEr", "CIDEr"),
    ("semantic_similarity", "Semantic similarity"),
    ("format_compliance", "Format compliance"),
    ("Bleu_4", "BLEU-4"),
    ("METEOR", "METEOR"),
    ("ROUGE_L", "ROUGE-L"),
)
SAMPLE_SIZE = 8
EXTREMES = 6
GENERAL_EXAMPLES = 4
THUMBNAIL_SIDE = 360


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_uri(figure: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return png_data_uri(buffer.getvalue())


def metric_chart(label: str, values: dict[str, dict[str, float | None]]) -> str:
    """Bars of one metric: a group per split (test, general), a bar per role."""
    from matplotlib.figure import Figure

    splits = [s for s in ("test", "general") if any(v.get(s) is not None for v in values.values())]
    figure = Figure(figsize=(3.6, 2.5), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(values))
    heights_seen = [0.0]
    for offset, (role, by_split) in enumerate(values.items()):
        heights = [by_split.get(split) or 0.0 for split in splits]
        heights_seen += heights
        positions = [i + (offset - (len(values) - 1) / 2) * width for i in range(len(splits))]
        bars = axes.bar(positions, heights, width, label=role, color=ROLE_COLOURS.get(role))
        axes.bar_label(bars, fmt="{:.3f}", fontsize=7, padding=1)
    names = ["test" if split == "test" else "general holdout" for split in splits]
    axes.set_xticks(range(len(splits)), names)
    # A floor on the axis span: near-zero scores show as near-zero bars, not as a zoomed
    # axis with an offset label that makes 1e-13 look like a real difference.
    top, bottom = max(heights_seen), min(heights_seen)
    span = max(top - bottom, 0.05)
    axes.set_ylim(bottom - 0.05 * span if bottom < 0 else 0.0, top + 0.18 * span)
    axes.ticklabel_format(axis="y", style="plain", useOffset=False)
    axes.set_title(label, fontsize=10)
    axes.tick_params(labelsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    return _figure_uri(figure)


def loss_chart(curve: list[list[float | None]]) -> str:
    """The training run's validation (and mean train) loss per evaluation step."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 2.8), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    steps = [row[0] for row in curve]
    train = [(row[0], row[1]) for row in curve if row[1] is not None]
    if train:
        axes.plot(*zip(*train, strict=True), marker="o", label="train (mean since last eval)")
    axes.plot(steps, [row[2] for row in curve], marker="o", label="validation")
    axes.set_xlabel("optimizer step", fontsize=8)
    axes.set_ylabel("loss", fontsize=8)
    axes.tick_params(labelsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(fontsize=8, frameon=False)
    return _figure_uri(figure)


class Thumbnails:
    """Each screenshot as a small PNG data URI, made once however often it is shown."""

    def __init__(self, roots: dict[str, Path], side: int = THUMBNAIL_SIDE) -> None:
        self.roots = roots
        self.side = side
        self._made: dict[tuple[str, str], str | None] = {}

    def __call__(self, split: str, image: str) -> str | None:
        key = (split, image)
        if key not in self._made:
            self._made[key] = self._make(self.roots[split] / image)
        return self._made[key]

    def _make(self, path: Path) -> str | None:
        from PIL import Image

        if not path.is_file():
            return None
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        image.thumbnail((self.side, self.side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return png_data_uri(buffer.getvalue())


def _key(row: PredictionRow) -> tuple[float, float]:
    return (row.delta["CIDEr"], row.delta["semantic_similarity"])


def pick_examples(
    rows: list[PredictionRow], seed: int, sample_size: int = SAMPLE_SIZE, extremes: int = EXTREMES
) -> dict[str, list[PredictionRow]]:
    """A seeded random sample, the worst regressions and the best improvements."""
    sample = random.Random(seed).sample(rows, min(sample_size, len(rows)))
    ranked = sorted(rows, key=_key)
    worse = [row for row in ranked if _key(row) < (0.0, 0.0)][:extremes]
    better = [row for row in reversed(ranked) if _key(row) > (0.0, 0.0)][:extremes]
    return {"sample": sample, "regressions": worse, "improvements": better}


def _signed(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    rounded = round(value, digits)
    return f"{rounded if rounded != 0 else 0.0:+.{digits}f}"  # never "-0.000"


def _number(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _ci_verdict(result: Comparison | GuardResult) -> str:
    if result.ci_low > 0:
        return "above zero"
    if result.ci_high < 0:
        return "below zero"
    return "includes zero"


def _split_value(evaluation: Evaluation, role: str, split: str, metric: str) -> float | None:
    scores = getattr(evaluation.models[role], split)
    return None if scores is None else getattr(scores, metric)


def render_report(
    evaluation: Evaluation,
    seed: int = 0,
    sample_size: int = SAMPLE_SIZE,
    extremes: int = EXTREMES,
) -> str:
    """The report's HTML for an evaluation."""
    roles = evaluation.roles
    data = {"test": evaluation.data.test, "general": evaluation.data.general}
    splits = [name for name, split in data.items() if split is not None]
    charts = [
        (
            label,
            metric_chart(
                label,
                {
                    role: {split: _split_value(evaluation, role, split, metric) for split in splits}
                    for role in roles
                },
            ),
        )
        for metric, label in CHART_METRICS
    ]
    metadata = evaluation.candidate.identity.metadata
    curve = [list(row) for row in metadata.metrics.loss_curve] if metadata else []
    thumbnails = Thumbnails(
        {split: Path(found.path) for split, found in data.items() if found is not None}
    )
    examples = pick_examples(evaluation.predictions.test, seed, sample_size, extremes)
    general_rows = evaluation.predictions.general or []
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["num"] = _number
    environment.filters["signed"] = _signed
    environment.globals["ci_verdict"] = _ci_verdict
    return environment.get_template(TEMPLATE).render(
        ev=evaluation,
        roles=roles,
        baseline=evaluation.baseline_role,
        colours=ROLE_COLOURS,
        table_metrics=TABLE_METRICS,
        labels=dict(TABLE_METRICS),
        charts=charts,
        loss_curve=loss_chart(curve) if curve else None,
        examples=[
            ("A random sample", f"{len(examples['sample'])} records, seed {seed}", "sample"),
            (
                "Worst regressions",
                "largest per-record CIDEr drop (then similarity) against the baseline",
                "regressions",
            ),
            (
                "Best improvements",
                "largest per-record CIDEr gain (then similarity) over the baseline",
                "improvements",
            ),
        ],
        picked=examples,
        general_sample=random.Random(seed).sample(
            general_rows, min(GENERAL_EXAMPLES, len(general_rows))
        ),
        thumbnail=thumbnails,
    )


def write_report(evaluation: Evaluation, path: Path, seed: int = 0) -> Path:
    path = Path(path)
    path.write_text(render_report(evaluation, seed=seed), encoding="utf-8")
    return path
