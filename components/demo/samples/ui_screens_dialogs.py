"""Overlays: modal dialogs (delete, discard, invite, newsletter) and a cookie consent banner.

They sit on a plain app page that is not recorded: only the overlay is what a user can
act on at that moment.
"""

from __future__ import annotations

from components.demo.samples import ui_html as h
from components.demo.samples import ui_vocab as v
from components.demo.samples.ui_draw import Box, text_width, wrap
from components.demo.samples.ui_screen import ScreenDraft


def _backdrop(s: ScreenDraft, dim: bool) -> None:
    """An ordinary page of cards for the overlay to sit on; dimmed behind modals."""
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    c.rect((0, 0, c.width, 56), fill=t.header)
    c.icon((16, 14, 44, 42), "logo", "#ffffff" if t.header == t.accent else t.accent)
    c.text((54, 28), s.app, 18, t.header_text, "lm")
    cols = 1 if s.mobile else 3
    cw = (c.width - 32 - (cols - 1) * 16) // cols
    y = 80
    while y + 120 < c.height:
        for i in range(cols):
            x = 16 + i * (cw + 16)
            c.rect((x, y, x + cw, y + 120), fill=t.surface, outline=t.border, radius=10)
            c.text((x + 16, y + 20), rng.choice(v.PROJECT_NAMES), 14)
            for line in range(3):
                bar = (x + 16, y + 48 + line * 18, x + cw - 16 - line * 30, y + 56 + line * 18)
                c.rect(bar, fill=t.subtle, radius=4)
        y += 136
    if dim:
        c.dim()


def _modal(s: ScreenDraft, title: str, body: str, height: int, name: str) -> tuple[int, int, int]:
    """A centred modal with title, close button and body; returns x0, x1 and y below the body."""
    c, t = s.canvas, s.canvas.theme
    width = c.width - 32 if s.mobile else 440
    x0 = (c.width - width) // 2
    top = (c.height - height) // 2
    c.rect((x0, top, x0 + width, top + height), fill=t.surface, radius=12)
    c.text((x0 + 24, top + 28), title, 18, t.text, "lm")
    close = c.icon_button((x0 + width - 44, top + 12, x0 + width - 12, top + 44), "close", t.muted)
    close_attrs = {"type": "button", "class": "btn-close", "data-bs-dismiss": "modal"}
    html = h.tag(
        "div",
        {"class": "modal-header"},
        h.tag("h5", {"class": "modal-title"}, h.text(title)),
        h.tag("button", {**close_attrs, "aria-label": "Close"}),
    )
    s.add(close, "icon", "click", "", html, "dialog_close", dialog=name)
    y = top + 58
    for line in wrap(body, 13, width - 48):
        c.text((x0 + 24, y), line, 13, t.muted)
        y += 20
    return x0 + 24, x0 + width - 24, y + 16


def _footer(s: ScreenDraft, x1: int, y: int, labels: tuple[str, str], variant: str) -> list[Box]:
    """A secondary and a main button, right-aligned as modal footers have them."""
    c = s.canvas
    w1, w2 = text_width(labels[0], 14) + 36, text_width(labels[1], 14) + 36
    first = c.button((x1 - w2 - 10 - w1, y, x1 - w2 - 10, y + 38), labels[0], "secondary")
    second = c.button((x1 - w2, y, x1, y + 38), labels[1], variant)
    return [first, second]


def _footer_html(labels: tuple[str, str], classes: tuple[str, str]) -> str:
    """Both footer buttons: the parent context a QA agent sees around either of them."""
    first = h.tag("button", {"type": "button", "class": f"btn {classes[0]}"}, h.text(labels[0]))
    second = h.tag("button", {"type": "button", "class": f"btn {classes[1]}"}, h.text(labels[1]))
    return h.tag("div", {"class": "modal-footer"}, first, second)


def _confirm_dialog(s: ScreenDraft, discard: bool) -> None:
    rng = s.rng
    name, kind = rng.choice(v.PROJECT_NAMES), rng.choice(v.DELETABLE)
    obj = f"{name} {kind}"
    if discard:
        body = f"You have unsaved changes to the {obj}."
        _, x1, y = _modal(s, "Discard changes?", body, 170, "discard changes")
        labels, templates = ("Keep editing", "Discard"), ("dialog_keep_editing", "dialog_discard")
    else:
        body = f"{name} will be permanently removed. This cannot be undone."
        _, x1, y = _modal(s, f"Delete {kind}?", body, 180, f"delete {kind}")
        labels = ("Cancel", rng.choice(("Delete", f"Delete {kind}")))
        templates = ("dialog_keep", "dialog_delete")
    html = _footer_html(labels, ("btn-secondary", "btn-danger"))
    for box, label, template in zip(
        _footer(s, x1, y, labels, "danger"), labels, templates, strict=True
    ):
        s.add(box, "button", "click", label, html, template, object=obj)


def _invite_dialog(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    team = rng.choice(v.TEAMS)
    body = "They will get an email with a link to join."
    x0, x1, y = _modal(s, f"Invite people to {team}", body, 280, "invite people")
    c.text((x0, y), "Email address", 13)
    placeholder = "name@company.com"
    box = c.input((x0, y + 20, x1, y + 58), placeholder, placeholder=True)
    field = {"type": "email", "id": "invite-email", "class": "form-control", "multiple": True}
    html = h.tag(
        "div",
        {"class": "modal-body"},
        h.tag("label", {"for": "invite-email"}, "Email address"),
        h.tag("input", {**field, "placeholder": placeholder}),
    )
    s.add(box, "input", "type", placeholder, html, "invite_email", team=team)
    y += 70
    role = rng.choice(v.ROLES)
    c.text((x0, y + 18), "Role", 13, t.text, "lm")
    box = c.select((x0 + 60, y, x1, y + 36), role)
    options = "".join(h.tag("option", {"selected": r == role}, r) for r in v.ROLES)
    html = h.tag(
        "div",
        {"class": "modal-body"},
        h.tag("label", {"for": "role"}, "Role"),
        h.tag("select", {"id": "role", "class": "form-select"}, options),
    )
    s.add(box, "select", "select", role, html, "invite_role", role=role.lower())
    labels = ("Cancel", "Send invite")
    send = _footer(s, x1, y + 52, labels, "primary")[1]
    html = _footer_html(labels, ("btn-light", "btn-primary"))
    s.add(send, "button", "click", labels[1], html, "invite_send", team=team)


def _newsletter_dialog(s: ScreenDraft) -> None:
    c, rng = s.canvas, s.rng
    letter = rng.choice(v.NEWSLETTERS)
    body = f"The best of {s.app} in your inbox. No spam, unsubscribe any time."
    x0, x1, y = _modal(s, f"Get {letter}", body, 250, "newsletter sign-up")
    placeholder = "Your email"
    box = c.input((x0, y, x1, y + 40), placeholder, placeholder=True)
    form = {"class": "newsletter-form", "action": "/subscribe", "method": "post"}
    field = {"type": "email", "name": "email", "class": "form-control", "placeholder": placeholder}
    submit = h.tag("button", {"type": "submit", "class": "btn btn-primary w-100"}, "Subscribe")
    html = h.tag("form", form, h.tag("input", field), submit)
    s.add(box, "input", "type", placeholder, html, "newsletter_email", newsletter=letter)
    box = c.button((x0, y + 52, x1, y + 92), "Subscribe")
    s.add(box, "button", "click", "Subscribe", html, "newsletter_subscribe", newsletter=letter)
    label = "Don't show this again"
    box = c.checkbox(x0, y + 106, False, label, 12)
    html = h.tag(
        "div",
        {"class": "form-check"},
        h.tag("input", {"type": "checkbox", "id": "mute-popup", "class": "form-check-input"}),
        h.tag("label", {"for": "mute-popup", "class": "form-check-label"}, h.text(label)),
    )
    s.add(box, "checkbox", "click", label, html, "popup_mute")


def _cookie_banner(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    top = c.height - (200 if s.mobile else 120)
    c.rect((0, top, c.width, c.height), fill=t.surface)
    c.hline(top, 0, c.width)
    c.text((20, top + 18), "We value your privacy", 16)
    body = "We use cookies to improve your experience and to measure traffic."
    for i, line in enumerate(wrap(body, 13, c.width - 40 if s.mobile else 560)):
        c.text((20, top + 44 + i * 20), line, 13, t.muted)
    accept = rng.choice(("Accept all", "Allow all cookies", "Accept"))
    reject = rng.choice(("Reject all", "Only necessary", "Decline"))
    manage = rng.choice(("Manage preferences", "Customize", "Cookie settings"))
    if s.mobile:
        by, half = top + 100, (c.width - 50) // 2
        accept_box, reject_box = (
            (20, by, 20 + half, by + 38),
            (30 + half, by, c.width - 20, by + 38),
        )
        manage_box = c.link((c.width // 2, by + 66), manage, 13, "mm")
    else:
        by = top + 42
        w1, w2 = text_width(accept, 14) + 36, text_width(reject, 14) + 36
        accept_box = (c.width - 24 - w1, by, c.width - 24, by + 38)
        reject_box = (c.width - 34 - w1 - w2, by, c.width - 34 - w1, by + 38)
        manage_box = c.link((reject_box[0] - 20, by + 19), manage, 13, "rm")
    c.button(accept_box, accept)
    c.button(reject_box, reject, "secondary")
    html = h.tag(
        "div",
        {"class": "cookie-banner", "role": "dialog", "aria-label": "Cookie consent"},
        h.tag("a", {"href": "/cookies", "class": "cookie-settings"}, manage),
        h.tag("button", {"class": "btn btn-outline-secondary", "id": "reject-cookies"}, reject),
        h.tag("button", {"class": "btn btn-primary", "id": "accept-cookies"}, accept),
    )
    s.add(accept_box, "button", "click", accept, html, "cookies_accept")
    s.add(reject_box, "button", "click", reject, html, "cookies_reject")
    s.add(manage_box, "link", "click", manage, html, "cookies_manage")


def dialog_screen(s: ScreenDraft) -> None:
    variant = s.rng.choice(("delete", "discard", "invite", "cookies", "newsletter"))
    _backdrop(s, dim=variant != "cookies")
    if variant in ("delete", "discard"):
        _confirm_dialog(s, discard=variant == "discard")
    elif variant == "invite":
        _invite_dialog(s)
    elif variant == "newsletter":
        _newsletter_dialog(s)
    else:
        _cookie_banner(s)
