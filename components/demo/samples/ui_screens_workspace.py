"""In-app screens: a data table with row actions and a messaging view."""

from __future__ import annotations

from components.demo.samples import ui_html as h
from components.demo.samples import ui_vocab as v
from components.demo.samples.ui_draw import fit_text, text_width, wrap
from components.demo.samples.ui_screen import ScreenDraft

_SVG = {"aria-hidden": "true"}


def _icon_button_html(name: str, label: str, parent: str, parent_class: str) -> str:
    svg = h.tag("svg", {"class": f"icon icon-{name}", **_SVG})
    button = h.tag("button", {"type": "button", "class": "btn btn-icon", "aria-label": label}, svg)
    return h.tag(parent, {"class": parent_class}, button)


def _row_values(
    s: ScreenDraft, key: str, status: str, first: str, last: str
) -> tuple[str, list[str]]:
    """The record name (as the summary says it) and the cell texts of one table row."""
    rng = s.rng
    person = f"{first} {last}"
    month = rng.choice(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Sep", "Oct", "Nov"))
    date = f"{month} {rng.randint(1, 28)}, 2024"
    money = f"${rng.randint(12, 2400)}.{rng.randint(0, 99):02d}"
    if key == "orders":
        name = f"#{rng.randint(10000, 99999)}"
        return name, [name, person, date, money, status]
    if key == "invoices":
        name = f"INV-{rng.randint(1000, 9999)}"
        return name, [name, rng.choice(v.APPS), date, money, status]
    if key == "users":
        email = f"{first.lower()}@{rng.choice(v.APPS).lower().replace(' ', '')}.com"
        return person, [
            person,
            email,
            rng.choice(v.ROLES),
            f"{rng.randint(2, 23)} hours ago",
            status,
        ]
    name = f"#{rng.randint(1000, 9999)}"
    priority = rng.choice(("Low", "Normal", "High", "Urgent"))
    return name, [name, rng.choice(v.TICKET_SUBJECTS), person, priority, status]


def table_screen(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    key = rng.choice(tuple(v.TABLES))
    title, entity, columns, statuses = v.TABLES[key]
    table = title.lower()
    bar, _ = s.app_bar()
    x0, x1 = 40, c.width - 40
    y = bar + 20
    c.text((x0, y + 18), title, 24, t.text, "lm")
    label = f"New {entity}"
    width = text_width(label, 14) + 52
    box = c.button((x1 - width, y, x1, y + 38), label, icon="plus")
    html = h.tag(
        "div",
        {"class": "page-actions"},
        h.tag(
            "a",
            {"class": "btn btn-primary", "href": f"/{key}/new"},
            h.tag("svg", {"class": "icon icon-plus", **_SVG}),
            label,
        ),
    )
    s.add(box, "button", "click", label, html, "table_new", entity=entity)
    export = "Export CSV"
    ew = text_width(export, 14) + 48
    box = c.button(
        (x1 - width - 12 - ew, y, x1 - width - 12, y + 38), export, "secondary", icon="download"
    )
    html = h.tag(
        "div",
        {"class": "page-actions"},
        h.tag(
            "button",
            {"class": "btn btn-outline-secondary", "data-export": "csv"},
            h.tag("svg", {"class": "icon icon-download", **_SVG}),
            export,
        ),
    )
    s.add(box, "button", "click", export, html, "table_export", table=table)
    y += 56

    # toolbar: tabs or status filter, plus search
    shown_statuses = statuses
    if rng.random() < 0.5:
        tabs = ["All", *statuses]
        tx = x0
        active = rng.choice(tabs)
        if active != "All":
            shown_statuses = (active,)
        for tab in tabs:
            w = text_width(tab, 14) + 24
            box = c.tab((tx, y, tx + w, y + 36), tab, tab == active)
            html = h.tag(
                "ul",
                {"class": "nav nav-tabs", "role": "tablist"},
                h.tag(
                    "li",
                    {"class": "nav-item"},
                    h.tag(
                        "button",
                        {
                            "class": "nav-link" + (" active" if tab == active else ""),
                            "role": "tab",
                            "aria-selected": str(tab == active).lower(),
                        },
                        tab,
                    ),
                ),
            )
            if tab != active and rng.random() < 0.4:
                s.add(box, "tab", "click", tab, html, "table_tab", tab=tab)
            tx += w + 4
        c.hline(y + 36, x0, x1)
    else:
        status = rng.choice(("All", *statuses))
        shown = status
        if status != "All":
            shown_statuses = (status,)
        c.text((x0, y + 18), "Status", 13, t.muted, "lm")
        box = c.select((x0 + 52, y, x0 + 220, y + 36), shown)
        opts = "".join(h.tag("option", {"selected": o == status}, o) for o in ("All", *statuses))
        html = h.tag(
            "div",
            {"class": "filters"},
            h.tag("label", {"for": "status"}, "Status"),
            h.tag("select", {"id": "status", "class": "form-select"}, opts),
        )
        showing = f"all {table}" if status == "All" else f"{status.lower()} {table}"
        s.add(box, "select", "select", shown, html, "table_status", table=table, status=showing)
    placeholder = f"Search {table}"
    sbox = c.input((x1 - 260, y, x1, y + 36), placeholder, placeholder=True, icon="search")
    html = h.tag(
        "div",
        {"class": "table-toolbar"},
        h.tag(
            "input",
            {
                "type": "search",
                "class": "form-control",
                "placeholder": placeholder,
                "aria-label": placeholder,
            },
        ),
    )
    s.add(sbox, "input", "type", placeholder, html, "search_field", scope=f"the {table}")
    y += 52

    # header
    widths = [170, 200, 150, 130, 120]
    tx0, tx1 = x0, x1 - 14
    c.rect((tx0, y, tx1, y + 40), fill=t.subtle)
    box = c.checkbox(tx0 + 12, y + 11, False, "", 12)
    html = h.tag(
        "thead",
        {},
        h.tag(
            "tr",
            {},
            h.tag(
                "th",
                {"scope": "col"},
                h.tag(
                    "input",
                    {"type": "checkbox", "class": "form-check-input", "aria-label": "Select all"},
                ),
            ),
        ),
    )
    s.add(
        (box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3),
        "checkbox",
        "click",
        "",
        html,
        "table_select_all",
        table=table,
    )
    cx = tx0 + 44
    sort_col = rng.randrange(len(columns))
    for i, (col, w) in enumerate(zip(columns, widths, strict=True)):
        box = c.text((cx, y + 20), col, 13, t.muted, "lm")
        if i == sort_col:
            c.icon((box[2] + 5, y + 17, box[2] + 13, y + 23), "chevron", t.muted)
            hit = (box[0] - 4, y + 6, box[2] + 16, y + 34)
            html = h.tag(
                "tr",
                {},
                h.tag(
                    "th",
                    {"scope": "col", "aria-sort": "none"},
                    h.tag("button", {"class": "sort-btn", "data-sort": h.slug(col)}, col),
                ),
            )
            if rng.random() < 0.7:
                s.add(
                    hit, "button", "click", col, html, "table_sort", table=table, column=col.lower()
                )
        cx += w
    c.text((tx1 - 60, y + 20), "Actions", 13, t.muted, "lm")
    y += 40

    rows = rng.randint(5, 7)
    picks = set(rng.sample(range(rows), min(rows, 3)))
    people = rng.sample(v.PEOPLE, rows)
    for r in range(rows):
        status = rng.choice(shown_statuses)
        name, cells = _row_values(s, key, status, *people[r])
        c.hline(y + 44, tx0, tx1)
        cb = c.checkbox(tx0 + 12, y + 13, False, "", 12)
        cx = tx0 + 44
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            shown = fit_text(cell, 13, w - 12)
            if i == 0:
                first_box = c.link((cx, y + 22), shown, 13)
            elif i == len(cells) - 1:
                c.pill((cx, y + 22), cell, v.STATUS_COLOURS[cell])
            else:
                c.text((cx, y + 22), shown, 13, t.text, "lm")
            cx += w
        edit = c.icon_button((tx1 - 66, y + 8, tx1 - 38, y + 36), "edit", t.muted)
        trash = c.icon_button((tx1 - 34, y + 8, tx1 - 6, y + 36), "trash", t.danger)
        tds = "".join(h.tag("td", {}, h.text(cell)) for cell in cells[1:3])
        href = f"/{key}/{h.slug(name)}"
        if r in picks:
            action = rng.choice(("open", "edit", "delete", "select"))
            if action == "open":
                html = h.tag(
                    "tr",
                    {"data-id": h.slug(name)},
                    h.tag("td", {}, h.tag("a", {"href": href}, h.text(name))),
                    tds,
                )
                box = (first_box[0] - 2, first_box[1] - 2, first_box[2] + 2, first_box[3] + 2)
                s.add(box, "link", "click", name, html, "table_open", entity=entity, name=name)
            elif action in ("edit", "delete"):
                label = f"{action.title()} {entity}"
                button = h.tag(
                    "button",
                    {
                        "class": f"btn btn-icon btn-{action}",
                        "aria-label": label,
                        "data-id": h.slug(name),
                    },
                    h.tag(
                        "svg",
                        {"class": f"icon icon-{'edit' if action == 'edit' else 'trash'}", **_SVG},
                    ),
                )
                html = h.tag(
                    "tr",
                    {"data-id": h.slug(name)},
                    h.tag("td", {}, h.text(name)),
                    h.tag("td", {"class": "actions"}, button),
                )
                if action == "edit":
                    s.add(edit, "icon", "click", "", html, "table_edit", entity=entity, name=name)
                else:
                    s.add(
                        trash,
                        "icon",
                        "click",
                        "",
                        html,
                        "table_delete",
                        entity=entity,
                        name=name,
                        table=table,
                    )
            else:
                html = h.tag(
                    "tr",
                    {"data-id": h.slug(name)},
                    h.tag(
                        "td",
                        {},
                        h.tag(
                            "input",
                            {
                                "type": "checkbox",
                                "class": "form-check-input",
                                "aria-label": f"Select {name}",
                            },
                        ),
                    ),
                    h.tag("td", {}, h.text(name)),
                )
                box = (cb[0] - 3, cb[1] - 3, cb[2] + 3, cb[3] + 3)
                s.add(box, "checkbox", "click", "", html, "table_select", entity=entity, name=name)
        y += 44
    # scrollbar beside the rows
    track = (tx1 + 4, bar + 184, tx1 + 12, y)
    c.rect(track, fill=t.subtle, radius=4)
    c.rect(
        (track[0], track[1] + 6, track[2], track[1] + (y - track[1]) // 2), fill=t.muted, radius=4
    )
    if rng.random() < 0.4:
        html = h.tag(
            "div",
            {"class": "table-wrapper", "style": "overflow-y: auto; max-height: 320px"},
            h.tag("table", {"class": "table table-hover"}, h.tag("tbody", {}, "")),
        )
        s.add(track, "scrollbar", "scroll", "", html, "table_scroll", table=table)
    y += 16
    c.text((x0, y + 16), f"Showing 1-{rows} of {rng.randint(rows + 20, 400)}", 13, t.muted, "lm")


def chat_screen(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    people = rng.sample(v.PEOPLE, 6)
    first, last = people[0]
    person = f"{first} {last}"
    left = 0
    if not s.mobile:
        bar, _ = s.app_bar()
        left = 300
        c.rect((0, bar, left, c.height), fill=t.surface)
        c.draw.line((left, bar, left, c.height), fill=t.border)
        c.input(
            (16, bar + 14, left - 16, bar + 50), "Search messages", placeholder=True, icon="search"
        )
        y = bar + 64
        for i, (given, family) in enumerate(people):
            box = (8, y, left - 8, y + 64)
            if i == 0:
                c.rect(box, fill=t.subtle, radius=8)
            c.avatar(
                (18, y + 12, 58, y + 52),
                given[0] + family[0],
                rng.choice(("#64748b", "#0ea5e9", "#f97316", "#8b5cf6")),
            )
            c.text((70, y + 22), f"{given} {family}", 14, t.text, "lm")
            c.text(
                (70, y + 44), fit_text(rng.choice(v.MESSAGES), 12, left - 130), 12, t.muted, "lm"
            )
            c.text(
                (left - 18, y + 22),
                f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d}",
                11,
                t.muted,
                "rm",
            )
            html = h.tag(
                "ul",
                {"class": "conversation-list", "role": "listbox"},
                h.tag(
                    "li",
                    {
                        "role": "option",
                        "class": "conversation",
                        "aria-selected": str(i == 0).lower(),
                    },
                    h.tag(
                        "img",
                        {"class": "avatar", "src": f"/avatars/{given.lower()}.png", "alt": ""},
                    ),
                    h.tag("span", {"class": "name"}, f"{given} {family}"),
                ),
            )
            if i > 0 and rng.random() < 0.35:
                s.add(
                    box,
                    "list item",
                    "click",
                    f"{given} {family}",
                    html,
                    "chat_open",
                    person=f"{given} {family}",
                )
            y += 70
            if y + 64 > c.height:
                break
        top = bar
    else:
        top = 0
    # conversation header
    hx0 = left
    c.rect((hx0, top, c.width, top + 60), fill=t.surface)
    c.hline(top + 60, hx0, c.width)
    ax = hx0 + 16
    if s.mobile:
        c.icon((12, top + 22, 22, top + 38), "back", t.text)
        ax = 32
    c.avatar((ax, top + 12, ax + 36, top + 48), first[0] + last[0], "#0ea5e9")
    c.text((ax + 46, top + 22), fit_text(person, 15, c.width - ax - 150), 15, t.text, "lm")
    c.text((ax + 46, top + 42), "Active now", 11, "#16a34a", "lm")
    for name, template, label in (
        ("video", "chat_video", "Start video call"),
        ("phone", "chat_call", "Start voice call"),
    ):
        right = c.width - (16 if name == "video" else 56)
        box = c.icon_button((right - 34, top + 13, right, top + 47), name, t.accent)
        html = _icon_button_html(name, label, "div", "chat-header-actions")
        s.add(box, "icon", "click", "", html, template, person=person)
    # messages
    y = top + 80
    mine = False
    while y < c.height - 150:
        text = rng.choice(v.MESSAGES)
        max_w = (c.width - hx0) * 2 // 3
        lines = wrap(text, 13, max_w - 24)
        bw = max(text_width(line, 13) for line in lines) + 24
        bh = 18 * len(lines) + 16
        bx = c.width - 24 - bw if mine else hx0 + 20
        c.rect((bx, y, bx + bw, y + bh), fill=t.accent if mine else t.subtle, radius=12)
        for i, line in enumerate(lines):
            c.text((bx + 12, y + 8 + i * 18), line, 13, t.accent_text if mine else t.text)
        y += bh + 12
        mine = rng.random() < 0.5 if not mine else rng.random() < 0.3
    track = (c.width - 10, top + 70, c.width - 4, c.height - 90)
    c.rect(track, fill=t.subtle, radius=3)
    c.rect((track[0], track[3] - 90, track[2], track[3] - 4), fill=t.muted, radius=3)
    if rng.random() < 0.3:
        html = h.tag(
            "div",
            {
                "class": "message-list",
                "role": "log",
                "aria-live": "polite",
                "style": "overflow-y: scroll",
            },
            h.tag("div", {"class": "message incoming"}, h.tag("p", {}, "…")),
        )
        s.add(track, "scrollbar", "scroll", "", html, "chat_scroll", person=person)
    # composer
    cy0 = c.height - 70
    c.rect((hx0, cy0, c.width, c.height), fill=t.surface)
    c.hline(cy0, hx0, c.width)
    clip = c.icon_button((hx0 + 10, cy0 + 18, hx0 + 42, cy0 + 50), "clip", t.muted)
    s.add(
        clip,
        "icon",
        "click",
        "",
        _icon_button_html("clip", "Attach file", "div", "composer"),
        "chat_attach",
    )
    placeholder = rng.choice(("Type a message", f"Message {first}", "Write a reply"))
    ibox = c.input((hx0 + 48, cy0 + 14, c.width - 96, cy0 + 54), placeholder, placeholder=True)
    html = h.tag(
        "div",
        {"class": "composer"},
        h.tag(
            "textarea",
            {
                "rows": "1",
                "class": "form-control composer-input",
                "placeholder": placeholder,
                "aria-label": f"Message {person}",
            },
        ),
    )
    s.add(ibox, "input", "type", placeholder, html, "chat_type", person=person)
    smile = c.icon_button((c.width - 90, cy0 + 18, c.width - 58, cy0 + 50), "smile", t.muted)
    s.add(
        smile,
        "icon",
        "click",
        "",
        _icon_button_html("smile", "Insert emoji", "div", "composer"),
        "chat_emoji",
    )
    send = c.icon_button((c.width - 52, cy0 + 14, c.width - 12, cy0 + 54), "send", filled=True)
    html = h.tag(
        "form",
        {"class": "composer"},
        h.tag(
            "button",
            {"type": "submit", "class": "btn btn-primary btn-send", "aria-label": "Send"},
            h.tag("svg", {"class": "icon icon-send", **_SVG}),
        ),
    )
    s.add(send, "icon", "click", "", html, "chat_send", person=person)
