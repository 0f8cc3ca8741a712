"""What a record says about its element, read in the page: type, text and surrounding HTML.

`outerHTML` shows the page's initial form state, not what was typed, so the serialiser
copies the live state (values, checked boxes, selected options) into a clone. A password
field's value is always masked, elements under `--redact` selectors become
`[redacted]`, and scripts, styles and comments are dropped: the HTML is prompt context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import ElementHandle

PASSWORD_MASK = "••••••"
REDACTED = "[redacted]"
MAX_TEXT_CHARS = 200
# Ancestors are added while the HTML stays under this many characters (at most 3 levels).
HTML_CHARS = 2000
HTML_LEVELS = 3

_DESCRIBE_JS = r"""
(el, opts) => {
  const clean = (s) => (s || "").replace(/\s+/g, " ").trim();
  const tag = el.tagName.toLowerCase();
  const type = (el.getAttribute("type") || "").toLowerCase();
  const role = (el.getAttribute("role") || "").toLowerCase();
  const roles = {tab: "tab", checkbox: "checkbox", radio: "radio", switch: "switch",
    link: "link", button: "button", menuitem: "menuitem", option: "option",
    combobox: "select", listbox: "select", textbox: "input", searchbox: "input",
    slider: "slider"};
  let elementType;
  if (roles[role]) elementType = roles[role];
  else if (tag === "a" && el.hasAttribute("href")) elementType = "link";
  else if (tag === "button") elementType = "button";
  else if (tag === "select") elementType = "select";
  else if (tag === "textarea") elementType = "textarea";
  else if (tag === "input") {
    if (["submit", "button", "reset", "image"].includes(type)) elementType = "button";
    else if (type === "checkbox" || type === "radio") elementType = type;
    else if (type === "range") elementType = "slider";
    else elementType = "input";
  } else if (tag === "img" || tag === "svg") elementType = "image";
  else if (el.isContentEditable) elementType = "input";
  else if (/^h[1-6]$/.test(tag)) elementType = "heading";
  else if (tag === "li") elementType = "list_item";
  else elementType = clean(el.innerText) ? "text" : tag;

  const root = el.getRootNode();
  const redacted = new Set();
  for (const sel of opts.redact) {
    for (const scope of new Set([document, root])) {
      for (const hit of scope.querySelectorAll(sel)) redacted.add(hit);
    }
  }
  const insideRedacted = (node) => {
    for (let n = node; n; n = n.parentElement) if (redacted.has(n)) return true;
    return false;
  };

  let top = el;
  for (let level = 0; level < opts.levels; level++) {
    const parent = top.parentElement;
    if (!parent || parent === document.body || parent === document.documentElement) break;
    if (parent.outerHTML.length > opts.maxChars) break;
    top = parent;
  }
  const clone = top.cloneNode(true);
  const originals = [top, ...top.querySelectorAll("*")];
  const copies = [clone, ...clone.querySelectorAll("*")];
  let elCopy = clone;
  originals.forEach((orig, i) => {
    const copy = copies[i];
    if (orig === el) elCopy = copy;
    if (redacted.has(orig)) {
      for (const attr of [...copy.attributes]) copy.removeAttribute(attr.name);
      copy.setAttribute("data-redacted", "");
      copy.replaceChildren(opts.redactedText);
      return;
    }
    const otag = orig.tagName.toLowerCase();
    if (otag === "input") {
      const itype = (orig.type || "").toLowerCase();
      if (itype === "password") {
        if (orig.value || copy.hasAttribute("value")) copy.setAttribute("value", opts.mask);
      } else if (itype === "checkbox" || itype === "radio") {
        if (orig.checked) copy.setAttribute("checked", ""); else copy.removeAttribute("checked");
      } else if (itype !== "file") {
        copy.setAttribute("value", orig.value);
      }
    } else if (otag === "textarea") {
      copy.textContent = orig.value;
    } else if (otag === "select") {
      [...orig.options].forEach((option, j) => {
        if (option.selected) copy.options[j].setAttribute("selected", "");
        else copy.options[j].removeAttribute("selected");
      });
    }
  });
  for (const junk of clone.querySelectorAll("script, style, noscript, template")) junk.remove();
  for (const svg of clone.querySelectorAll("svg")) svg.replaceChildren();
  const walker = document.createTreeWalker(clone, NodeFilter.SHOW_COMMENT);
  const comments = [];
  while (walker.nextNode()) comments.push(walker.currentNode);
  comments.forEach((c) => c.remove());
  let html = clone.outerHTML.replace(/>\s+</g, "><").replace(/\s+/g, " ").trim();
  if (root instanceof ShadowRoot) {
    const host = root.host.tagName.toLowerCase();
    html = `<${host}><!--shadow-root-->${html}</${host}>`;
  }

  let text = "";
  const isPassword = tag === "input" && type === "password";
  if (insideRedacted(el)) text = opts.redactedText;
  else {
    const labelled = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean)
      .map((id) => root.getElementById ? root.getElementById(id) : document.getElementById(id))
      .filter(Boolean).map((n) => n.textContent).join(" ");
    const labels = el.labels ? [...el.labels].map((l) => l.innerText).join(" ") : "";
    const own = ["input", "select", "textarea"].includes(tag) ? "" : (
      elCopy.querySelector("[data-redacted]") ? elCopy.textContent : el.innerText);
    const isButtonInput = tag === "input" && ["submit", "button", "reset"].includes(type);
    const buttonValue = isButtonInput ? el.value : "";
    text = clean(el.getAttribute("aria-label")) || clean(labelled) || clean(own) ||
      clean(labels) || clean(buttonValue) || clean(el.getAttribute("placeholder")) ||
      clean(el.getAttribute("title")) || clean(el.getAttribute("alt"));
  }
  return {tag, elementType, text: text.slice(0, opts.maxText), html, isPassword,
          isSelect: tag === "select", isTextEntry: ["input", "textarea"].includes(elementType)};
}
"""

_COVERED_JS = r"""
(el) => {
  const r = el.getBoundingClientRect();
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) return null;
  const hit = el.getRootNode().elementFromPoint(x, y);
  if (!hit || hit === el || el.contains(hit)) return null;
  if (hit.tagName === "LABEL" && el.labels && [...el.labels].includes(hit)) return null;
  const id = hit.id ? `#${hit.id}` : "";
  const cls = typeof hit.className === "string" && hit.className.trim()
    ? "." + hit.className.trim().split(/\s+/).join(".") : "";
  return `<${hit.tagName.toLowerCase()}${id}${cls}>`;
}
"""

# The focused element (through open shadow roots) a key step acts on; null on <body>.
FOCUSED_JS = r"""
() => {
  let el = document.activeElement;
  while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
  if (!el || el === document.body || el === document.documentElement) return null;
  return el;
}
"""


@dataclass(frozen=True)
class ElementFacts:
    """The element as the record shows it."""

    tag: str
    element_type: str
    text: str
    html: str
    is_password: bool
    is_select: bool
    is_text_entry: bool


def describe(element: ElementHandle, redact: list[str]) -> ElementFacts:
    """Type, visible text or accessible name, and the trimmed HTML with live form state."""
    facts = element.evaluate(
        _DESCRIBE_JS,
        {
            "redact": redact,
            "levels": HTML_LEVELS,
            "maxChars": HTML_CHARS,
            "mask": PASSWORD_MASK,
            "redactedText": REDACTED,
            "maxText": MAX_TEXT_CHARS,
        },
    )
    return ElementFacts(
        tag=facts["tag"],
        element_type=facts["elementType"],
        text=facts["text"],
        html=facts["html"],
        is_password=facts["isPassword"],
        is_select=facts["isSelect"],
        is_text_entry=facts["isTextEntry"],
    )


def covering_element(element: ElementHandle) -> str | None:
    """The element drawn over the centre of `element` (in its own frame), if another one."""
    return element.evaluate(_COVERED_JS)
