"""Account screens: sign-in and sign-up forms, and a settings page with toggles and selects."""

from __future__ import annotations

from components.demo.samples import ui_html as h
from components.demo.samples import ui_vocab as v
from components.demo.samples.ui_draw import fit_text, text_width
from components.demo.samples.ui_screen import ScreenDraft


def _form_frame(s: ScreenDraft, content_height: int) -> tuple[int, int, int]:
    """Desktop: centred card under an app bar; mobile: full-width page. Returns x0, x1, top."""
    c, t = s.canvas, s.canvas.theme
    if s.mobile:
        c.rect((0, 0, c.width, c.height), fill=t.surface)
        c.icon((c.width // 2 - 18, 28, c.width // 2 + 18, 64), "logo", t.accent)
        c.text((c.width // 2, 80), s.app, 16, t.text, "mt")
        return 24, c.width - 24, 116
    bar, _ = s.app_bar()
    page = s.rng.choice(("Help", "Support", "Contact"))
    colour = t.header_text
    box = c.text((c.width - 24, bar // 2), page, 14, colour, "rm")
    html = h.tag(
        "nav",
        {"class": "navbar-nav ms-auto"},
        h.tag("a", {"class": "nav-link", "href": f"/{h.slug(page)}"}, page),
    )
    if s.rng.random() < 0.5:
        box = (box[0] - 6, box[1] - 6, box[2] + 6, box[3] + 6)
        s.add(box, "link", "click", page, html, "nav_page", page=page.lower())
    width = 400
    x0 = (c.width - width) // 2
    top = bar + max(16, (c.height - bar - content_height) // 2)
    c.rect((x0, top, x0 + width, top + content_height), fill=t.surface, outline=t.border, radius=12)
    return x0 + 32, x0 + width - 32, top + 28


def _labelled_input(
    s: ScreenDraft, x0: int, x1: int, y: int, label: str, field_type: str, shown: str, typed: bool
) -> tuple[tuple[int, int, int, int], str]:
    """Label above a bordered input; returns the input box and the html of label + input."""
    c = s.canvas
    c.text((x0, y), label, 13, c.theme.text)
    box = (x0, y + 20, x1, y + 60)
    name = h.slug(label).replace("-", "_")
    if field_type == "password" and typed:
        c.masked_input(box, len(shown) if shown else 10)
    else:
        c.input(box, shown, placeholder=not typed)
    attrs: dict[str, str | bool | None] = {
        "type": field_type,
        "id": name,
        "name": name,
        "class": "form-control",
        "autocomplete": {"email": "email", "password": "current-password"}.get(field_type),
    }
    if typed and field_type != "password":
        attrs["value"] = shown
    elif not typed:
        attrs["placeholder"] = shown
    attrs["required"] = True
    html = h.tag(
        "div",
        {"class": "mb-3"},
        h.tag("label", {"for": name, "class": "form-label"}, h.text(label)),
        h.tag("input", attrs),
    )
    return box, html


def login_screen(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    social = rng.choice(v.PROVIDERS) if rng.random() < 0.6 else None
    x0, x1, y = _form_frame(s, 420 + (58 if social else 0))
    c.text((x0, y), rng.choice(("Sign in to ", "Log in to ", "Welcome to ")) + s.app, 22)
    c.text((x0, y + 34), "Please enter your details.", 13, t.muted)
    y += 64

    use_email = rng.random() < 0.7
    label = "Email address" if use_email else "Username"
    first, last = rng.choice(v.PEOPLE)
    typed = rng.random() < 0.4
    if use_email:
        shown = f"{first.lower()}.{last.lower()}@example.com" if typed else "you@example.com"
    else:
        shown = f"{first.lower()}{last.lower()[0]}" if typed else "Enter your username"
    box, html = _labelled_input(s, x0, x1, y, label, "email" if use_email else "text", shown, typed)
    field = "email address" if use_email else "username"
    s.add(box, "input", "type", shown, html, "signin_field", field=field, app=s.app)
    y += 74

    typed_pw = rng.random() < 0.5
    shown_pw = "" if typed_pw else "Enter your password"
    box, html = _labelled_input(s, x0, x1, y, "Password", "password", shown_pw, typed_pw)
    s.add(box, "input", "type", shown_pw, html, "signin_field", field="password", app=s.app)
    eye = c.icon_button((x1 - 36, box[1] + 6, x1 - 8, box[3] - 6), "eye", t.muted)
    eye_html = h.tag(
        "div",
        {"class": "input-group"},
        h.tag("input", {"type": "password", "name": "password", "class": "form-control"}),
        h.tag(
            "button",
            {
                "type": "button",
                "class": "btn btn-icon toggle-password",
                "aria-label": "Show password",
            },
            h.tag("svg", {"class": "icon icon-eye", "viewBox": "0 0 24 24", "aria-hidden": "true"}),
        ),
    )
    s.add(eye, "icon", "click", "", eye_html, "signin_reveal")
    y += 78

    remembered = rng.random() < 0.3
    box = c.checkbox(x0, y, remembered, "Remember me", 13)
    html = h.tag(
        "div",
        {"class": "form-check"},
        h.tag(
            "input",
            {
                "type": "checkbox",
                "id": "remember",
                "class": "form-check-input",
                "checked": remembered,
            },
        ),
        h.tag("label", {"for": "remember", "class": "form-check-label"}, "Remember me"),
    )
    s.add(
        box,
        "checkbox",
        "click",
        "Remember me",
        html,
        "signin_forget" if remembered else "signin_remember",
    )
    forgot = "Forgot password?"
    box = c.link((x1, y + 9), forgot, 13, "rm")
    html = h.tag(
        "div",
        {"class": "d-flex justify-content-between"},
        h.tag("a", {"href": "/password/reset", "class": "link-primary small"}, h.text(forgot)),
    )
    s.add(box, "link", "click", forgot, html, "signin_forgot")
    y += 40

    label = rng.choice(("Sign in", "Log in", "Continue"))
    box = c.button((x0, y, x1, y + 42), label)
    credentials = f"{field} and password"
    html = h.tag(
        "form",
        {"class": "auth-form", "action": "/session", "method": "post"},
        h.tag("button", {"type": "submit", "class": "btn btn-primary w-100"}, label),
    )
    s.add(box, "button", "click", label, html, "signin_submit", credentials=credentials)
    y += 58

    if social:
        c.hline(y + 8, x0, x1)
        c.rect(((x0 + x1) // 2 - 16, y, (x0 + x1) // 2 + 16, y + 16), fill=t.surface)
        c.text(((x0 + x1) // 2, y + 8), "or", 12, t.muted, "mm")
        y += 28
        label = f"Continue with {social}"
        box = c.button((x0, y, x1, y + 42), label, "secondary")
        c.avatar((x0 + 14, y + 11, x0 + 34, y + 31), social[0], "#374151")
        html = h.tag(
            "div",
            {"class": "social-login"},
            h.tag(
                "a",
                {"href": f"/auth/{social.lower()}", "class": "btn btn-outline-secondary w-100"},
                h.tag("img", {"src": f"/static/{social.lower()}.svg", "alt": "", "width": "18"}),
                h.text(label),
            ),
        )
        s.add(box, "button", "click", label, html, "signin_social", app=s.app, provider=social)
        y += 58

    prompt = "No account yet?"
    c.text((x0, y + 8), prompt, 13, t.muted, "lm")
    link = rng.choice(("Sign up", "Create an account", "Register"))
    box = c.link((x0 + text_width(prompt, 13) + 6, y + 8), link, 13)
    html = h.tag(
        "p", {"class": "auth-footer"}, h.text(prompt + " "), h.tag("a", {"href": "/signup"}, link)
    )
    s.add(box, "link", "click", link, html, "signin_to_signup", app=s.app)


def signup_screen(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    with_country = rng.random() < 0.5
    x0, x1, y = _form_frame(s, 500 if with_country else 430)
    c.text((x0, y), "Create your account", 22)
    c.text((x0, y + 34), f"Start using {s.app} in minutes.", 13, t.muted)
    y += 62
    fields = [
        ("Full name", "text", "Jane Doe", "full name"),
        ("Email", "email", "you@example.com", "email address"),
    ]
    fields.append(("Password", "password", "At least 8 characters", "password"))
    for label, field_type, placeholder, phrase in fields:
        box, html = _labelled_input(s, x0, x1, y, label, field_type, placeholder, False)
        s.add(box, "input", "type", placeholder, html, "signup_field", field=phrase, app=s.app)
        y += 68
    if with_country:
        country = rng.choice(v.COUNTRIES)
        c.text((x0, y), "Country", 13, t.text)
        box = c.select((x0, y + 20, x1, y + 60), country)
        options = "".join(h.tag("option", {"selected": k == country}, k) for k in v.COUNTRIES[:4])
        if country not in v.COUNTRIES[:4]:
            options += h.tag("option", {"selected": True}, country)
        html = h.tag(
            "div",
            {"class": "mb-3"},
            h.tag("label", {"for": "country", "class": "form-label"}, "Country"),
            h.tag("select", {"id": "country", "name": "country", "class": "form-select"}, options),
        )
        s.add(box, "select", "select", country, html, "signup_country")
        y += 70
    document = rng.choice(v.DOCUMENTS)
    label = f"I agree to the {document}"
    box = c.checkbox(x0, y, False, label, 13)
    html = h.tag(
        "div",
        {"class": "form-check"},
        h.tag(
            "input",
            {"type": "checkbox", "id": "terms", "class": "form-check-input", "required": True},
        ),
        h.tag("label", {"for": "terms", "class": "form-check-label"}, h.text(label)),
    )
    s.add(box, "checkbox", "click", label, html, "signup_terms", document=document)
    y += 32
    label = rng.choice(("Create account", "Sign up", "Get started"))
    box = c.button((x0, y, x1, y + 42), label)
    html = h.tag(
        "form",
        {"class": "signup-form", "action": "/users", "method": "post"},
        h.tag("button", {"type": "submit", "class": "btn btn-primary w-100"}, label),
    )
    s.add(box, "button", "click", label, html, "signup_submit", app=s.app)
    y += 58
    prompt = "Already have an account?"
    c.text((x0, y + 8), prompt, 13, t.muted, "lm")
    link = rng.choice(("Sign in", "Log in"))
    box = c.link((x0 + text_width(prompt, 13) + 6, y + 8), link, 13)
    html = h.tag(
        "p", {"class": "auth-footer"}, h.text(prompt + " "), h.tag("a", {"href": "/login"}, link)
    )
    s.add(box, "link", "click", link, html, "signup_to_signin")


def settings_screen(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    section = rng.choice(tuple(v.TOGGLES))
    if s.mobile:
        c.rect((0, 0, c.width, 56), fill=t.header)
        c.icon((16, 20, 28, 36), "back", t.header_text)
        c.text((44, 28), f"{section}", 18, t.header_text, "lm")
        x0, x1, y = 16, c.width - 16, 72
    else:
        bar, _ = s.app_bar()
        c.rect((0, bar, 220, c.height), fill=t.surface)
        c.draw.line((220, bar, 220, c.height), fill=t.border)
        c.text((24, bar + 24), "Settings", 13, t.muted)
        sy = bar + 48
        for name in v.SETTINGS_SECTIONS:
            active = name == section
            box = (12, sy, 208, sy + 34)
            if active:
                c.rect(box, fill=t.subtle, radius=6)
            c.text((24, sy + 17), name, 14, t.accent if active else t.text, "lm")
            html = h.tag(
                "ul",
                {"class": "settings-nav", "role": "menu"},
                h.tag(
                    "li",
                    {"role": "menuitem", "aria-current": "page" if active else None},
                    h.tag("a", {"href": f"/settings/{h.slug(name)}"}, name),
                ),
            )
            if not active and rng.random() < 0.35:
                s.add(
                    box, "menu item", "click", name, html, "settings_section", section=name.lower()
                )
            sy += 40
        x0, x1, y = 252, c.width - 32, bar + 24
        c.text((x0, y), f"{section} settings", 22)
        c.text((x0, y + 32), "Changes apply to all your devices.", 13, t.muted)
        y += 64

    rows = list(v.TOGGLES[section])
    rng.shuffle(rows)
    rows = rows[: rng.randint(2, min(4, len(rows)))]
    row_h = 64 if s.mobile else 58
    hint_row = rng.randrange(len(rows)) if rng.random() < 0.4 else -1
    for i, (label, description, phrase) in enumerate(rows):
        c.rect((x0, y, x1, y + row_h - 6), fill=t.surface, outline=t.border, radius=8)
        title = c.text((x0 + 14, y + 12), label, 14)
        if i == hint_row:
            info = c.icon(
                (title[2] + 6, title[1] + 1, title[2] + 20, title[1] + 15), "info", t.muted
            )
            html = h.tag(
                "p",
                {"class": "setting-title"},
                h.text(label),
                h.tag(
                    "span",
                    {
                        "class": "help-icon",
                        "role": "img",
                        "tabindex": "0",
                        "aria-label": f"About {label}",
                        "title": description,
                    },
                ),
            )
            box = (info[0] - 3, info[1] - 3, info[2] + 3, info[3] + 3)
            s.add(box, "icon", "hover", "", html, "hint_tooltip", topic=phrase)
        c.text((x0 + 14, y + 32), fit_text(description, 12, x1 - x0 - 90), 12, t.muted)
        on = rng.random() < 0.5
        box = c.toggle(x1 - 56, y + (row_h - 6) // 2 - 11, on)
        box = (box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2)
        html = h.tag(
            "div",
            {"class": "setting-row"},
            h.tag("div", {"class": "setting-text"}, h.tag("p", {"class": "setting-title"}, label)),
            h.tag(
                "label",
                {"class": "switch"},
                h.tag(
                    "input",
                    {
                        "type": "checkbox",
                        "role": "switch",
                        "checked": on,
                        "aria-checked": str(on).lower(),
                        "aria-label": label,
                    },
                ),
                h.tag("span", {"class": "slider round"}),
            ),
        )
        s.add(
            box,
            "toggle",
            "toggle",
            label,
            html,
            "setting_off" if on else "setting_on",
            setting=phrase,
        )
        y += row_h

    y += 6
    selects = [
        ("Language", v.LANGUAGES, "settings_language"),
        ("Theme", v.THEMES, "settings_theme"),
        ("Time zone", v.TIMEZONES, "settings_timezone"),
    ]
    rng.shuffle(selects)
    for label, options, template in selects[: rng.randint(1, 2)]:
        value = rng.choice(options)
        c.text((x0, y + 18), label, 14, t.text, "lm")
        left = x1 - (180 if s.mobile else 240)
        box = c.select((left, y, x1, y + 36), value)
        opts = "".join(h.tag("option", {"selected": o == value}, o) for o in options)
        html = h.tag(
            "div",
            {"class": "setting-row"},
            h.tag("label", {"for": h.slug(label), "class": "setting-title"}, label),
            h.tag("select", {"id": h.slug(label), "class": "form-select"}, opts),
        )
        slots = {"settings_language": {"language": value}, "settings_theme": {"theme": value}}
        s.add(box, "select", "select", value, html, template, **slots.get(template, {}))
        y += 48

    y += 8
    save = rng.choice(("Save changes", "Save", "Update settings"))
    width = text_width(save, 14) + 36
    box = c.button((x1 - width, y, x1, y + 38), save)
    html = h.tag(
        "div",
        {"class": "form-actions"},
        h.tag("button", {"type": "button", "class": "btn btn-light"}, "Cancel"),
        h.tag("button", {"type": "submit", "class": "btn btn-primary"}, h.text(save)),
    )
    c.button((x1 - width - 90, y, x1 - width - 10, y + 38), "Cancel", "secondary")
    s.add(box, "button", "click", save, html, "settings_save", section=section.lower())
    if rng.random() < 0.5:
        label = rng.choice(("Log out", "Sign out"))
        box = c.button((x0, y, x0 + text_width(label, 14) + 36, y + 38), label, "ghost")
        html = h.tag(
            "div",
            {"class": "account-actions"},
            h.tag("button", {"class": "btn btn-ghost", "data-action": "logout"}, label),
        )
        s.add(box, "button", "click", label, html, "settings_logout", app=s.app)
    elif y + 60 < c.height:
        label = "Delete account"
        c.text((x0, y + 58), "Danger zone", 12, t.muted, "lm")
        box = c.text((x0 + 90, y + 58), label, 13, t.danger, "lm")
        box = (box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4)
        html = h.tag(
            "section",
            {"class": "danger-zone"},
            h.tag("a", {"href": "/settings/account/delete", "class": "text-danger"}, label),
        )
        s.add(box, "link", "click", label, html, "settings_delete_account", app=s.app)
