"""`uicap capture` with real headless Chromium on the demo product served on loopback.

The demo flows are captured once per device scale factor (module fixtures); the tests
then read what was written: boxes on the elements (below the fold, in a cross-origin
iframe, in an open shadow root, in a modal), failures with reasons and counts, no typed
password anywhere, redaction, the ingest + prepare round trip, and a push to a local Hub.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from components.capture.browser import CHROMIUM
from components.capture.describe import PASSWORD_MASK, REDACTED
from components.capture.flow import FlowError, parse_flow
from components.capture.labels import LabelError, load_labels
from components.capture.replay import ReplaySettings
from components.capture.run import FailureThresholdError, capture
from components.demo.site_server import FLOWS_DIR, RECORDED_ORIGIN, DemoSite, demo_flows
from pipelines.cli import app
from tests.support.fake_hub import FakeHub

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason="no Chromium: `make install`")

REPO = Path(__file__).parents[1]
PASSWORD = "hunter2-Correct-Horse"
BLUE = (0x2B, 0x5F, 0xD9)
# Records whose element is a blue-filled button, and where it sits.
BLUE_BUTTONS = {
    "browse-notes/12": "below the fold",
    "browse-notes/7": "open shadow root",
    "browse-notes/10": "cross-origin iframe",
    "settings/11": "modal dialog",
}


@pytest.fixture(scope="module")
def site():
    with DemoSite() as served:
        yield served


def labels_with_a_leaked_password(folder: Path) -> Path:
    """The demo labels, one of which quotes the password (a labeller's slip)."""
    lines = (FLOWS_DIR / "labels.jsonl").read_text().splitlines()
    lines.append(json.dumps({"flow": "sign-in.json", "step": 5, "summary": f"Tabs on; {PASSWORD}"}))
    path = folder / "labels.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def captured(site, tmp_path_factory) -> dict[float, Path]:
    """The demo flows captured at scale 1 (through the CLI) and scale 2 (the function)."""
    folder = tmp_path_factory.mktemp("capture")
    labels = labels_with_a_leaked_password(folder)
    flows = [arg for path in demo_flows() for arg in ("--flows", str(path))]
    done = CliRunner().invoke(
        app,
        [
            "capture",
            *flows,
            "--output",
            str(folder / "x1"),
            "--labels",
            str(labels),
            "--rewrite-origin",
            f"{RECORDED_ORIGIN}={site.origin}",
        ],
    )
    assert done.exit_code == 0, done.output
    capture(
        demo_flows(),
        folder / "x2",
        labels_path=labels,
        settings=ReplaySettings(scale=2),
        rewrites={RECORDED_ORIGIN: site.origin},
    )
    return {1.0: folder / "x1", 2.0: folder / "x2"}


def rows(output: Path) -> dict[str, dict[str, Any]]:
    import datasets

    loaded = datasets.load_from_disk(str(output))
    return {
        row["external_id"].split("@")[0]: row
        for split in loaded.values()
        for row in split.cast_column("image", datasets.Image(decode=False))
    }


def blue_fraction(image: Image.Image, box: tuple[int, int, int, int]) -> float:
    pixels = list(image.crop(box).getdata())
    near = sum(1 for p in pixels if sum(abs(a - b) for a, b in zip(p[:3], BLUE, strict=True)) < 60)
    return near / max(len(pixels), 1)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_boxes_sit_on_the_elements(captured, scale: float) -> None:
    records = rows(captured[scale])
    assert len(records) == 28
    for key, where in BLUE_BUTTONS.items():
        row = records[key]
        image = Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")
        assert image.size == (1280 * scale, 720 * scale), key
        x0, y0, x1, y1 = (round(v) for v in row["bbox"])
        inset = int(3 * scale)  # rounded corners
        inside = blue_fraction(image, (x0 + inset, y0 + inset, x1 - inset, y1 - inset))
        assert inside > 0.6, f"{key} ({where}): the box at {row['bbox']} is not on the button"
        band = int(6 * scale)
        for ring in (
            (x0 - band, y0 - band, x1 + band, y0),  # above
            (x0 - band, y1, x1 + band, y1 + band),  # below
        ):
            assert blue_fraction(image, ring) < 0.3, f"{key} ({where}): box smaller than button"


def test_boxes_scale_with_the_device_scale_factor(captured) -> None:
    one, two = rows(captured[1.0]), rows(captured[2.0])
    assert one.keys() == two.keys()
    for key in one:
        for a, b in zip(one[key]["bbox"], two[key]["bbox"], strict=True):
            # Text metrics at another scale can move layout by a CSS pixel (2 here).
            assert b == pytest.approx(2 * a, abs=3.0), key


def test_records_carry_the_contract_and_what_the_action_did(captured) -> None:
    report = json.loads((captured[1.0] / "capture.json").read_text())
    counts = report["counts"]
    assert counts == {
        "element_steps": 28,
        "captured": 28,
        "labelled": 21,
        "unlabelled": 7,
        "failed": 0,
    }
    records = rows(captured[1.0])
    select = records["settings/2"]
    assert (select["action_type"], select["element_type"], select["text"]) == (
        "select",
        "select",
        "Language",
    )
    assert records["sign-in/7"]["action_type"] == "type"
    assert records["browse-notes/13"]["action_type"] == "double_click"
    assert records["sign-in/11"]["action_type"] == "hover"
    key = records["browse-notes/5"]
    assert (key["action_type"], key["text"]) == ("key", "Search notes")  # the focused input
    assert records["browse-notes/2"]["element_type"] == "tab"
    assert records["settings/3"]["element_type"] == "checkbox"
    opened = json.loads(records["settings/7"]["evidence"])
    assert opened["modal_opened"] and not opened["navigated"]
    navigated = json.loads(records["sign-in/2"]["evidence"])
    assert navigated["navigated"] and navigated["url_after"].endswith("/login.html")
    alert = json.loads(records["settings/11"]["evidence"])
    assert alert["dialogs"] == ["alert: Account scheduled for deletion."]
    # Live form state: the email typed two steps earlier is in the submit button's HTML.
    assert 'value="dana@example.com"' in records["sign-in/9"]["html"]
    assert records["settings/3"]["screen_id"] == records["settings/11"]["screen_id"]


def test_a_typed_password_appears_nowhere(captured) -> None:
    records = rows(captured[1.0])
    assert PASSWORD_MASK in records["sign-in/9"]["html"]  # the field is there, masked
    encoded = PASSWORD.replace("-", "%2D")
    for output in captured.values():
        for path in output.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert PASSWORD.encode() not in data, path
                assert encoded.encode() not in data, path
    # The next page's URL held it (a GET form): masked in page_url and evidence.
    assert PASSWORD_MASK in records["sign-in/11"]["page_url"]


def failing_flow(origin: str) -> dict[str, Any]:
    return {
        "title": "Broken",
        "steps": [
            {"type": "setViewport", "width": 800, "height": 600, "deviceScaleFactor": 1},
            {"type": "navigate", "url": f"{origin}/index.html"},
            {"type": "click", "selectors": [["#does-not-exist"], ["aria/Nothing here"]]},
            {"type": "click", "selectors": [["#ghost"]]},
            {"type": "click", "selectors": [["[role=tab]"]]},
            {"type": "click", "selectors": [["#tab-shared"]]},
            {"type": "navigate", "url": f"{origin}/settings.html"},
            {"type": "click", "selectors": [["#delete"]]},
            {"type": "click", "selectors": [["#save"]]},
            {"type": "waitForElement", "selectors": [["#never"]]},
            {"type": "click", "selectors": [["#cancel"]]},
        ],
    }


def test_failures_are_counted_with_reasons(site, tmp_path: Path) -> None:
    flow = tmp_path / "broken.json"
    flow.write_text(json.dumps(failing_flow(site.origin)))
    # Short enough that the steps meant to fail fail quickly, long enough that the steps
    # meant to succeed do so on a busy 2-core machine.
    settings = ReplaySettings(step_timeout_s=2.0)
    with pytest.raises(FailureThresholdError) as raised:
        capture([flow], tmp_path / "out", settings=settings, max_failure_fraction=0.5)
    report = json.loads((tmp_path / "out" / "capture.json").read_text())
    assert report == raised.value.result.report
    assert report["counts"] == {
        "element_steps": 7,
        "captured": 2,
        "labelled": 0,
        "unlabelled": 2,
        "failed": 5,
    }
    reasons = {f["step"]: f["reason"] for f in report["failures"]}
    assert reasons[2].startswith("no element matched any of 2 selectors")
    assert reasons[3].startswith("not visible")
    assert reasons[4].startswith("several matched: '[role=tab]' matched 2 elements")
    assert reasons[8].startswith("covered by another element: <dialog#confirm>")
    assert reasons[10].startswith("not replayed: step 9 (waitForElement) failed: timed out")
    assert report["failures"][0]["selectors"] == [["#does-not-exist"], ["aria/Nothing here"]]
    assert [s["step"] for s in report["flows_stopped"]] == [9]
    assert len(rows(tmp_path / "out")) == 2  # the records are written all the same


def test_redacted_elements_are_masked_in_screenshot_and_html(site, tmp_path: Path) -> None:
    flow = FLOWS_DIR / "settings.json"
    settings = ReplaySettings(redact=("#display-name",))
    capture([flow], tmp_path / "out", settings=settings, rewrites={RECORDED_ORIGIN: site.origin})
    row = rows(tmp_path / "out")["settings/4"]
    assert row["text"] == REDACTED
    assert "Dana" not in row["html"] and "data-redacted" in row["html"]
    image = Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")
    x0, y0, x1, y1 = (round(v) for v in row["bbox"])
    colours = set(image.crop((x0 + 2, y0 + 2, x1 - 2, y1 - 2)).getdata())
    assert colours == {(0, 0, 0)}


def test_bad_flows_and_labels_name_the_step_and_field(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match=r"f.json step 1 \(click\): field 'selectors'"):
        parse_flow({"steps": [{"type": "navigate", "url": "x"}, {"type": "click"}]}, "f.json")
    with pytest.raises(FlowError, match=r"f.json step 0: field 'type': 'drag'"):
        parse_flow({"steps": [{"type": "drag"}]}, "f.json")
    flow = parse_flow(
        {"steps": [{"type": "navigate", "url": "x"}, {"type": "click", "selectors": ["#a"]}]},
        "f.json",
    )
    labels = tmp_path / "labels.jsonl"
    for line, message in [
        ('{"flow": "g.json", "step": 1, "summary": "s"}', "field 'flow'"),
        ('{"flow": "f.json", "step": 0, "summary": "s"}', "field 'step': step 0 of f.json"),
        ('{"flow": "f.json", "step": 1}', "field 'summary'"),
    ]:
        labels.write_text(line + "\n")
        with pytest.raises(LabelError, match=f"labels.jsonl line 1: {message}"):
            load_labels(labels, [flow])


def magenta_row(image: Image.Image, y: int, x0: int, x1: int) -> float:
    """The share of magenta pixels on row y between x0 and x1."""
    edge = [image.getpixel((x, y)) for x in range(x0, x1)]
    return sum(1 for r, g, b in edge if r > 200 and g < 80 and b > 200) / len(edge)


def test_capture_then_ingest_and_prepare(captured, tmp_path: Path) -> None:
    runner = CliRunner()
    ingested, prepared = tmp_path / "ingested", tmp_path / "prepared"
    done = runner.invoke(
        app, ["ingest", "--dataset", str(captured[1.0]), "--output", str(ingested), "--no-progress"]
    )
    assert done.exit_code == 0, done.output
    manifest = json.loads((ingested / "manifest.json").read_text())
    assert manifest["counts"]["kept"] == 21 and manifest["counts"]["quarantined"] == 0
    done = runner.invoke(
        app,
        [
            "prepare",
            "--input",
            str(ingested),
            "--output",
            str(prepared),
            "--html-tokens",
            "pattern",
            "--no-progress",
        ],
    )
    assert done.exit_code == 0, done.output
    records = rows(captured[1.0])
    seen = 0
    for split in ("train", "val", "test"):
        for entry in json.loads((prepared / f"{split}.json").read_text()):
            key = entry["id"].split("@")[0]
            x0, y0, x1, y1 = (round(v) for v in records[key]["bbox"])
            image = Image.open(prepared / entry["image"]).convert("RGB")
            assert image.size == (1280, 720)

            # The magenta outline runs along the element's box, just outside it.
            above = max(magenta_row(image, y, x0, x1) for y in range(max(y0 - 10, 0), y0))
            below = max(magenta_row(image, y, x0, x1) for y in range(y1, min(y1 + 10, 720)))
            assert above > 0.9 and below > 0.9, key
            assert magenta_row(image, (y0 + y1) // 2, x0, x1) < 0.2, key  # not across it
            seen += 1
    assert seen == 21


def test_push_to_a_local_hub(site, tmp_path: Path) -> None:
    hub = FakeHub().start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
        env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf"), HF_TOKEN="hf_test")
        labels = tmp_path / "labels.jsonl"
        lines = (FLOWS_DIR / "labels.jsonl").read_text().splitlines()
        labels.write_text("\n".join(x for x in lines if '"settings.json"' in x) + "\n")
        command = [
            sys.executable,
            "-m",
            "pipelines.cli",
            "capture",
            "--flows",
            str(FLOWS_DIR / "settings.json"),
            "--labels",
            str(labels),
            "--output",
            str(tmp_path / "out"),
            "--push-to-hub",
            "acme/captured",
            "--rewrite-origin",
            f"{RECORDED_ORIGIN}={site.origin}",
        ]
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        repo = hub.repos[("dataset", "acme/captured")]
        assert len(repo.commits) == 1
        # The next run reads the new commit as a Hub dataset.
        ingest = (
            "import sys; from components.ingest import ingest; "
            "print(ingest('acme/captured', __import__('pathlib').Path(sys.argv[1]))"
            ".counts.kept)"
        )
        done = subprocess.run(
            [sys.executable, "-c", ingest, str(tmp_path / "ingested")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.strip().splitlines()[-1] == "7"  # the labelled records
    finally:
        hub.stop()
