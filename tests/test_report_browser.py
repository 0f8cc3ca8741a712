"""report.html in a real headless Chromium: images render, hostile dataset strings stay text.

Chromium comes from Debian's packages and is installed by the session fixture when it is
absent. The page is driven with plain command-line flags only: `--screenshot` shows what
renders, `--dump-dom` gives the DOM after load. No script is injected to inspect the page,
since scripts are exactly what the report must never run.
"""

from __future__ import annotations

import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from PIL import Image

from components.demo.tiny_model import build_tiny_model
from components.evaluate.config import EvaluateConfig
from components.evaluate.report import ROLE_COLOURS
from components.evaluate.run import REPORT_FILE, evaluate
from tests.support.train_data import corpus, tiny_base, write_general, write_prepared
from tests.test_evaluate import (
    HOSTILE_ONERROR,
    HOSTILE_ONLOAD,
    HOSTILE_SCRIPT,
    add_hostile_records,
)

CHROMIUM = Path("/usr/bin/chromium")
TITLE = "uicap evaluation: candidate vs base"
WINDOW = (1280, 7000)
MAGENTA = (255, 0, 255)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed with apt-get when missing (refreshing the index if needed)."""
    if not CHROMIUM.exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, timeout=1200).returncode:
            subprocess.run(["apt-get", "update"], env=env, check=True, timeout=600)
            subprocess.run(install, env=env, check=True, capture_output=True, timeout=1200)
    assert CHROMIUM.exists(), "chromium is not installed and could not be"
    return CHROMIUM


def headless(chromium: Path, page: Path, profile: Path, *mode: str) -> str:
    """Run Chromium once on `page` with no network, no extensions, no sync; returns stdout."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ]
    done = subprocess.run(
        [str(chromium), *flags, *mode, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class DomAudit(HTMLParser):
    """Every element with its attributes, the document title and all text, from a DOM dump."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.title += data


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real evaluation whose test split holds script-bearing HTML, summary and type."""
    data = write_prepared(tmp_path_factory.mktemp("report-ui"), train=8, val=4, test=6)
    add_hostile_records(data)
    general = write_general(tmp_path_factory.mktemp("report-general"), train=4, val=4)
    base = tiny_base(tmp_path_factory.mktemp("report-base"), data, general)
    candidate = tmp_path_factory.mktemp("report-candidate")
    texts = corpus(data) + corpus(general)
    build_tiny_model(candidate, texts, seed=1)  # another random model: its captions differ
    output = tmp_path_factory.mktemp("report-out")
    evaluate(
        data,
        str(candidate),
        base=str(base),
        general_dir=general,
        output_dir=output,
        config=EvaluateConfig(batch_size=8, max_new_tokens=8),
    )
    return output / REPORT_FILE


def test_report_source_holds_dataset_markup_only_escaped(report: Path) -> None:
    html = report.read_text()
    for hostile in (HOSTILE_SCRIPT, HOSTILE_ONERROR, HOSTILE_ONLOAD):
        assert hostile not in html
        assert str(escape(hostile)) in html
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html


def test_report_dom_runs_nothing_and_shows_the_markup_as_text(
    chromium: Path, report: Path, tmp_path: Path
) -> None:
    dom = DomAudit()
    dom.feed(headless(chromium, report, tmp_path / "profile", "--dump-dom"))
    tags = [tag for tag, _ in dom.elements]
    assert "body" in tags and tags.count("img") > 10
    assert dom.title == TITLE  # the injected handlers would have rewritten it
    assert not {"script", "svg", "iframe", "object", "embed", "link"} & set(tags)
    handlers = [
        (tag, name) for tag, attrs in dom.elements for name in attrs if name.startswith("on")
    ]
    assert handlers == []
    text = "".join(dom.text)
    for hostile in (HOSTILE_SCRIPT, HOSTILE_ONERROR, HOSTILE_ONLOAD):
        assert hostile in text
    for tag, attrs in dom.elements:
        for name in ("src", "href"):
            value = attrs.get(name)
            assert value is None or value.startswith("data:image/png;base64,"), (tag, name)


def _pixels_near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    bands = image.split()
    masks = [
        band.point(lambda v, c=c: 255 if abs(v - c) <= tolerance else 0)
        for band, c in zip(bands, colour, strict=True)
    ]
    combined = masks[0]
    for mask in masks[1:]:
        combined = Image.composite(mask, Image.new("L", image.size, 0), combined)
    return sum(1 for value in combined.getdata() if value)


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_report_renders_charts_and_screenshots(
    chromium: Path, report: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "report.png"
    headless(chromium, report, tmp_path / "profile", f"--screenshot={shot}")
    with Image.open(shot) as opened:
        image = opened.convert("RGB")
    assert image.size == WINDOW
    colours: Any = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, tables, charts: not a blank page
    assert _pixels_near(image, MAGENTA) > 2000  # the boxed screenshots' outlines
    assert _pixels_near(image, _hex(ROLE_COLOURS["candidate"]), tolerance=4) > 2000  # bars
    assert _pixels_near(image, _hex(ROLE_COLOURS["base"]), tolerance=4) > 500
