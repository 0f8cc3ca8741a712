"""Headless Chromium set up to render the same page the same way every time.

Playwright drives Debian's `chromium` (`make install` installs it with the pinned fonts);
its own browser download is never used. The binary itself, not the /usr/bin/chromium
wrapper script, which misbehaves under Playwright.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright

CHROMIUM = Path(os.environ.get("UICAP_CHROMIUM", "/usr/lib/chromium/chromium"))
CHROMIUM_ARGS = ["--font-render-hinting=none", "--hide-scrollbars", "--force-color-profile=srgb"]
DEFAULT_VIEWPORT = (1280, 720)

# Counts DOM mutations per frame, shadow roots included: the "DOM changed" evidence.
MUTATION_COUNTER_JS = r"""
(() => {
  if (window.__uicapMutations !== undefined) return;
  window.__uicapMutations = 0;
  const observe = (node) => new MutationObserver((records) => {
    window.__uicapMutations += records.length;
  }).observe(node, {subtree: true, childList: true, attributes: true, characterData: true});
  observe(document);
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attach.call(this, init);
    observe(root);
    return root;
  };
})();
"""


class BrowserMissingError(RuntimeError):
    """No Chromium where capture looks for it."""


@dataclass(frozen=True)
class Rendering:
    """Viewport (CSS pixels) and device scale factor a flow is replayed at."""

    width: int
    height: int
    scale: float
    is_mobile: bool = False
    has_touch: bool = False


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium from the system package, or a clear error saying how to get it."""
    if not CHROMIUM.is_file():
        raise BrowserMissingError(
            f"no Chromium at {CHROMIUM}: `make install` (apt-get install chromium "
            "fonts-liberation fonts-noto-cjk), or set UICAP_CHROMIUM to a Chromium binary"
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def new_context(browser: Browser, rendering: Rendering) -> BrowserContext:
    """A fresh context (no cookies or storage from another flow) that renders reproducibly."""
    options: dict[str, Any] = {
        "viewport": {"width": rendering.width, "height": rendering.height},
        "device_scale_factor": rendering.scale,
        "is_mobile": rendering.is_mobile,
        "has_touch": rendering.has_touch,
        "locale": "en-US",
        "timezone_id": "UTC",
        "reduced_motion": "reduce",
        "color_scheme": "light",
    }
    context = browser.new_context(**options)
    context.add_init_script(MUTATION_COUNTER_JS)
    return context
