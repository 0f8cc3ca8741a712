"""Public web pages: a landing page with its navigation bar, a product grid and a checkout."""

from __future__ import annotations

from components.demo.samples import ui_html as h
from components.demo.samples import ui_vocab as v
from components.demo.samples.ui_draw import Box, fit_text, text_width, wrap
from components.demo.samples.ui_screen import ScreenDraft


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _icon_html(name: str, label: str, href: str | None, badge: int | None = None) -> str:
    inner = h.tag("svg", {"class": f"icon icon-{name}", "aria-hidden": "true"})
    if badge is not None:
        inner += h.tag("span", {"class": "badge rounded-pill bg-danger"}, str(badge))
    if href:
        return h.tag("a", {"href": href, "class": "nav-icon", "aria-label": label}, inner)
    return h.tag("button", {"type": "button", "class": "btn-icon", "aria-label": label}, inner)


def _header_icons(s: ScreenDraft, right: int, cy: int, shop: bool) -> int:
    """Cart/bell/avatar at the right of a header, registered as elements; returns the left edge."""
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    colour = t.header_text
    x = right
    if rng.random() < 0.7:
        box = c.avatar(
            (x - 34, cy - 17, x, cy + 17), "".join(p[0] for p in rng.choice(v.PEOPLE)), "#64748b"
        )
        html = h.tag(
            "div",
            {"class": "dropdown"},
            h.tag(
                "button",
                {
                    "class": "btn avatar-btn dropdown-toggle",
                    "aria-haspopup": "menu",
                    "aria-label": "Account",
                },
                h.tag("img", {"src": "/avatars/me.png", "alt": "", "class": "avatar"}),
            ),
        )
        s.add(box, "icon", rng.choice(("click", "click", "hover")), "", html, "nav_account")
        x -= 48
    items = [("bell", "Notifications", "/notifications")]
    if shop:
        items.append(("cart", "Cart", "/cart"))
    for name, label, href in items:
        n = rng.randint(1, 9)
        box = c.icon_button((x - 34, cy - 17, x, cy + 17), name, colour)
        c.badge(x - 6, cy - 12, str(n))
        html = h.tag("li", {"class": "nav-item"}, _icon_html(name, label, href, n))
        if name == "cart":
            s.add(box, "icon", "click", "", html, "nav_cart", count=_count(n, "item"))
        else:
            s.add(
                box,
                "icon",
                "click",
                "",
                html,
                "nav_notifications",
                count=_count(n, "unread notification"),
            )
        x -= 44
    return x


def landing_screen(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    shop = rng.random() < 0.4
    if s.mobile:
        c.rect((0, 0, c.width, 56), fill=t.header)
        box = c.icon_button((10, 10, 46, 46), "menu", t.header_text)
        html = h.tag(
            "header",
            {"class": "topbar"},
            h.tag(
                "button",
                {
                    "class": "navbar-toggler",
                    "type": "button",
                    "aria-label": "Open menu",
                    "aria-expanded": "false",
                },
                h.tag("span", {"class": "navbar-toggler-icon"}),
            ),
        )
        s.add(box, "icon", "click", "", html, "nav_drawer", app=s.app)
        c.text((c.width // 2, 28), s.app, 18, t.header_text, "mm")
        if rng.random() < 0.5:
            _header_icons(s, c.width - 10, 28, shop)
        y = 72
    else:
        bar, name_right = s.app_bar(64)
        x = name_right + 36
        pages = rng.sample(v.NAV_PAGES, rng.randint(3, 5))
        dropdown = rng.randrange(len(pages)) if rng.random() < 0.4 else -1
        for i, page in enumerate(pages):
            box = c.text((x, bar // 2), page, 14, t.header_text, "lm")
            link = h.tag("a", {"class": "nav-link", "href": f"/{h.slug(page)}"}, page)
            if i == dropdown:
                c.icon(
                    (box[2] + 5, bar // 2 - 3, box[2] + 13, bar // 2 + 3), "chevron", t.header_text
                )
                box = (box[0], box[1], box[2] + 14, box[3])
                link = h.tag(
                    "a",
                    {"class": "nav-link dropdown-toggle", "href": "#", "aria-expanded": "false"},
                    page,
                )
            hit = (box[0] - 8, bar // 2 - 16, box[2] + 8, bar // 2 + 16)
            html = h.tag("ul", {"class": "navbar-nav"}, h.tag("li", {"class": "nav-item"}, link))
            if i == dropdown:
                s.add(hit, "link", "hover", page, html, "nav_dropdown", page=page.lower())
            elif rng.random() < 0.5:
                s.add(hit, "link", "click", page, html, "nav_page", page=page.lower())
            x = box[2] + 28
        if rng.random() < 0.6:
            _header_icons(s, c.width - 20, bar // 2, shop)
        else:
            label = rng.choice(("Sign in", "Log in"))
            right = c.width - 24
            cta = rng.choice(("Get started", "Start free trial"))
            bw = text_width(cta, 14) + 32
            box = c.button((right - bw, bar // 2 - 18, right, bar // 2 + 18), cta)
            html = h.tag(
                "div",
                {"class": "navbar-cta"},
                h.tag("a", {"class": "btn btn-primary", "href": "/signup"}, cta),
            )
            s.add(box, "button", "click", cta, html, "hero_trial", app=s.app)
            box = c.text((right - bw - 20, bar // 2), label, 14, t.header_text, "rm")
            box = (box[0] - 6, box[1] - 6, box[2] + 6, box[3] + 6)
            html = h.tag(
                "div",
                {"class": "navbar-cta"},
                h.tag("a", {"class": "nav-link", "href": "/login"}, label),
            )
            if rng.random() < 0.5:
                s.add(box, "link", "click", label, html, "nav_page", page="sign-in")
        y = bar + 16

    # search bar
    scope = "products" if shop else rng.choice(("articles", "docs", "help articles"))
    placeholder = f"Search {scope}"
    sbox = (16, y, c.width - 16, y + 40) if s.mobile else (48, y + 8, 468, y + 48)
    c.input(sbox, placeholder, placeholder=True, icon="search")
    html = h.tag(
        "form",
        {"class": "search-form", "role": "search", "action": "/search"},
        h.tag(
            "input",
            {
                "type": "search",
                "name": "q",
                "class": "form-control",
                "placeholder": placeholder,
                "aria-label": placeholder,
            },
        ),
    )
    s.add(sbox, "input", "type", placeholder, html, "search_field", scope=f"the {s.app} {scope}")
    if not s.mobile:
        box = c.button((sbox[2] + 8, sbox[1], sbox[2] + 96, sbox[3]), "Search")
        html = h.tag(
            "form",
            {"class": "search-form", "role": "search"},
            h.tag("button", {"type": "submit", "class": "btn btn-primary"}, "Search"),
        )
        s.add(box, "button", "click", "Search", html, "search_submit")
    y = sbox[3] + (28 if s.mobile else 40)

    # hero
    headline = rng.choice(v.HERO_LINES)
    width = c.width - 32 if s.mobile else 520
    x0 = 16 if s.mobile else 48
    size = 26 if s.mobile else 34
    for line in wrap(headline, size, width):
        c.text((x0, y), line, size)
        y += size + 8
    sub = f"{s.app} helps teams like yours do more with less effort."
    for line in wrap(sub, 15, width):
        c.text((x0, y + 6), line, 15, t.muted)
        y += 22
    y += 24
    primary = rng.choice(("Start free trial", "Get started", "Try it free"))
    secondary = rng.choice(("Book a demo", "Talk to sales", "Request a demo"))
    if s.mobile:
        boxes = [(x0, y, c.width - 16, y + 44), (x0, y + 56, c.width - 16, y + 100)]
    else:
        w1, w2 = text_width(primary, 15) + 40, text_width(secondary, 15) + 40
        boxes = [(x0, y, x0 + w1, y + 46), (x0 + w1 + 12, y, x0 + w1 + 12 + w2, y + 46)]
    c.button(boxes[0], primary, "primary", 15)
    c.button(boxes[1], secondary, "secondary", 15)
    html1 = h.tag(
        "div",
        {"class": "hero-actions"},
        h.tag("a", {"class": "btn btn-lg btn-primary", "href": "/signup"}, primary),
    )
    html2 = h.tag(
        "div",
        {"class": "hero-actions"},
        h.tag("a", {"class": "btn btn-lg btn-outline-secondary", "href": "/demo"}, secondary),
    )
    s.add(boxes[0], "button", "click", primary, html1, "hero_trial", app=s.app)
    s.add(boxes[1], "button", "click", secondary, html2, "hero_demo", app=s.app)
    if not s.mobile:
        c.photo((620, sbox[3] + 40, c.width - 48, boxes[1][3]), rng.choice(v.PRODUCT_TINTS))
    # feature strip: plain content, not interactive
    fy = boxes[1][3] + 36
    if fy + 90 < c.height:
        cols = 2 if s.mobile else 3
        cw = (c.width - 2 * x0 - (cols - 1) * 16) // cols
        for i, title in enumerate(("Fast setup", "Secure by default", "Works everywhere")[:cols]):
            fx = x0 + i * (cw + 16)
            c.rect(
                (fx, fy, fx + cw, min(c.height - 16, fy + 110)),
                fill=t.surface,
                outline=t.border,
                radius=10,
            )
            c.icon((fx + 14, fy + 14, fx + 38, fy + 38), "logo", t.accent)
            c.text((fx + 14, fy + 52), title, 14)
            c.text(
                (fx + 14, fy + 74),
                fit_text("Less time on setup, more on work.", 12, cw - 28),
                12,
                t.muted,
            )


def product_grid_screen(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    categories = rng.sample(tuple(v.SHOP), 4)
    current = categories[0]
    bar, _ = s.app_bar()
    _header_icons(s, c.width - (10 if s.mobile else 20), bar // 2, shop=True)
    x0 = 16 if s.mobile else 48
    x1 = c.width - x0
    y = bar + 18
    names, (low, high) = v.SHOP[current]
    c.text((x0, y), current, 22 if s.mobile else 26)
    total = rng.randint(12, 96)
    c.text((x0, y + 34), f"{total} results", 13, t.muted)
    y += 64 if s.mobile else 70

    # category chips and sort select
    chips = ["All", *categories]
    cx = x0
    for chip in chips[: 3 if s.mobile else 5]:
        width = text_width(chip, 13) + 26
        active = chip == current
        box = c.chip((cx, y, cx + width, y + 30), chip, active)
        html = h.tag(
            "div",
            {"class": "filter-chips", "role": "tablist"},
            h.tag(
                "button",
                {
                    "class": "chip" + (" active" if active else ""),
                    "role": "tab",
                    "aria-selected": str(active).lower(),
                    "data-category": h.slug(chip),
                },
                chip,
            ),
        )
        if not active and chip != "All" and rng.random() < 0.5:
            s.add(box, "tab", "click", chip, html, "shop_filter", category=chip.lower())
        cx += width + 8
    shown, phrase = rng.choice(v.SORT_ORDERS)
    if s.mobile:
        y += 40
        sort_box = (x0 + 64, y, x1, y + 34)
    else:
        sort_box = (x1 - 190, y - 2, x1, y + 32)
    c.text((sort_box[0] - 10, (sort_box[1] + sort_box[3]) // 2), "Sort by", 13, t.muted, "rm")
    c.select(sort_box, shown, 13)
    opts = "".join(h.tag("option", {"selected": o == shown}, h.text(o)) for o, _ in v.SORT_ORDERS)
    html = h.tag(
        "div",
        {"class": "toolbar"},
        h.tag("label", {"for": "sort", "class": "visually-hidden"}, "Sort by"),
        h.tag("select", {"id": "sort", "class": "form-select form-select-sm"}, opts),
    )
    if rng.random() < 0.6:
        s.add(sort_box, "select", "select", shown, html, "shop_sort", order=phrase)
    y += 46

    cols, rows = (2, 2) if s.mobile else (4, 2)
    gap = 12 if s.mobile else 16
    cw = (x1 - x0 - (cols - 1) * gap) // cols
    ch = 228 if s.mobile else 186
    photo_h = 104 if s.mobile else 84
    add_label = rng.choice(("Add to cart", "Add to bag")) if cw > 150 else "Add"
    for r in range(rows):
        for col in range(cols):
            px, py = x0 + col * (cw + gap), y + r * (ch + gap)
            name = rng.choice(names)
            price = f"${rng.randint(low, high)}.{rng.choice(('00', '99', '50'))}"
            product = name.lower()
            c.rect((px, py, px + cw, py + ch), fill=t.surface, outline=t.border, radius=10)
            c.photo((px + 8, py + 8, px + cw - 8, py + 8 + photo_h), rng.choice(v.PRODUCT_TINTS))
            heart = (px + cw - 42, py + 14, px + cw - 14, py + 42)
            c.draw.ellipse(heart, fill="#ffffff")
            c.icon((heart[0] + 7, heart[1] + 8, heart[2] - 7, heart[3] - 7), "heart", "#9ca3af")
            ny = py + photo_h + 22
            title = fit_text(name, 14, cw - 20)
            tbox = c.text((px + 10, ny), title, 14, t.text, "lm")
            c.text((px + 10, ny + 22), price, 14, t.muted, "lm")
            bbox: Box = (px + 10, py + ch - 44, px + cw - 10, py + ch - 10)
            label = add_label
            c.button(bbox, label, "primary", 13)
            card = {"class": "product-card", "data-sku": f"SKU-{rng.randint(1000, 9999)}"}
            pick = rng.random()
            if pick < 0.35:
                html = h.tag(
                    "div",
                    card,
                    h.tag("button", {"class": "btn btn-primary btn-sm add-to-cart"}, label),
                )
                s.add(bbox, "button", "click", label, html, "shop_add", product=product)
            elif pick < 0.55:
                html = h.tag(
                    "div",
                    card,
                    h.tag(
                        "h3",
                        {"class": "product-title"},
                        h.tag("a", {"href": f"/products/{h.slug(name)}"}, h.text(name)),
                    ),
                )
                hit = (tbox[0] - 2, tbox[1] - 3, tbox[2] + 2, tbox[3] + 3)
                s.add(hit, "link", "click", name, html, "shop_product", product=product)
            elif pick < 0.7:
                html = h.tag(
                    "div",
                    card,
                    h.tag(
                        "button",
                        {"class": "btn-icon wishlist", "aria-label": "Add to wishlist"},
                        h.tag("svg", {"class": "icon icon-heart", "aria-hidden": "true"}),
                    ),
                )
                s.add(heart, "icon", "click", "", html, "shop_wishlist", product=product)
    y += rows * (ch + gap)
    if y + 32 <= c.height:
        items = f"{current.lower()} results"
        px = x1 - 36
        box = c.button((px - 54, y, px + 36, y + 32), "Next", "secondary", 13)
        html = h.tag(
            "nav",
            {"aria-label": "Pagination"},
            h.tag(
                "ul",
                {"class": "pagination"},
                h.tag(
                    "li",
                    {"class": "page-item"},
                    h.tag("a", {"class": "page-link", "href": "?page=2", "rel": "next"}, "Next"),
                ),
            ),
        )
        s.add(box, "button", "click", "Next", html, "list_next", items=items)
        px -= 64
        for number in (3, 2, 1):
            nb = (px - 32, y, px, y + 32)
            c.rect(nb, fill=t.accent if number == 1 else t.surface, outline=t.border, radius=6)
            c.text(
                (px - 16, y + 16), str(number), 13, t.accent_text if number == 1 else t.text, "mm"
            )
            if number > 1 and rng.random() < 0.4:
                html = h.tag(
                    "ul",
                    {"class": "pagination"},
                    h.tag(
                        "li",
                        {"class": "page-item"},
                        h.tag("a", {"class": "page-link", "href": f"?page={number}"}, str(number)),
                    ),
                )
                s.add(
                    nb,
                    "link",
                    "click",
                    str(number),
                    html,
                    "list_page",
                    number=str(number),
                    items=items,
                )
            px -= 40


def checkout_screen(s: ScreenDraft) -> None:
    c, t, rng = s.canvas, s.canvas.theme, s.rng
    bar, _ = s.app_bar()
    x0 = 16 if s.mobile else 48
    x1 = c.width - 16 if s.mobile else 560
    y = bar + 14
    c.icon((x0, y + 2, x0 + 10, y + 14), "back", t.accent)
    back = c.link((x0 + 14, y + 8), "Back to cart", 13)
    back = (x0 - 2, back[1], back[2], back[3])
    html = h.tag(
        "nav",
        {"class": "breadcrumb"},
        h.tag("a", {"href": "/cart", "class": "back-link"}, "Back to cart"),
    )
    s.add(back, "link", "click", "Back to cart", html, "checkout_back")
    y += 30
    c.text((x0, y), "Payment", 22)
    y += 40

    def field(label: str, placeholder: str, phrase: str, left: int, right: int, top: int) -> Box:
        c.text((left, top), label, 13)
        box = c.input((left, top + 20, right, top + 58), placeholder, placeholder=True)
        name = h.slug(label)
        html = h.tag(
            "div",
            {"class": "form-group"},
            h.tag("label", {"for": name}, label),
            h.tag(
                "input",
                {
                    "id": name,
                    "name": name,
                    "inputmode": "numeric" if "number" in phrase else None,
                    "autocomplete": f"cc-{name}",
                    "placeholder": placeholder,
                    "class": "form-control",
                },
            ),
        )
        s.add(box, "input", "type", placeholder, html, "checkout_field", field=phrase)
        return box

    field("Card number", "1234 1234 1234 1234", "card number", x0, x1, y)
    y += 70
    mid = (x0 + x1) // 2
    field("Expiry", "MM / YY", "card's expiry date", x0, mid - 8, y)
    field("CVC", "123", "card's security code", mid + 8, x1, y)
    info = c.icon((mid + 44, y + 1, mid + 58, y + 15), "info", t.muted)
    html = h.tag(
        "label",
        {"for": "cvc"},
        "CVC",
        h.tag(
            "span",
            {
                "class": "hint",
                "data-bs-toggle": "tooltip",
                "title": "3 digits on the back of your card",
                "aria-label": "What is CVC?",
            },
            "?",
        ),
    )
    s.add(
        (info[0] - 3, info[1] - 3, info[2] + 3, info[3] + 3),
        "icon",
        "hover",
        "",
        html,
        "hint_tooltip",
        topic="where to find the card's security code",
    )
    y += 70
    first, last = rng.choice(v.PEOPLE)
    field("Name on card", f"{first} {last}", "cardholder's name", x0, x1, y)
    y += 72
    box = c.checkbox(x0, y, False, "Save this card for next time", 13)
    html = h.tag(
        "div",
        {"class": "form-check"},
        h.tag("input", {"type": "checkbox", "id": "save-card", "class": "form-check-input"}),
        h.tag(
            "label",
            {"for": "save-card", "class": "form-check-label"},
            "Save this card for next time",
        ),
    )
    s.add(box, "checkbox", "click", "Save this card for next time", html, "checkout_save_card")
    y += 34
    c.text((x0, y), "Shipping", 15)
    y += 26
    options = [("Standard", "3-5 days, free"), ("Express", "1-2 days, $9.99")]
    chosen = rng.randrange(2)
    for i, (name, detail) in enumerate(options):
        label = f"{name} ({detail})"
        box = c.radio(x0, y, i == chosen, label, 13)
        html = h.tag(
            "fieldset",
            {"class": "shipping-options"},
            h.tag(
                "div",
                {"class": "form-check"},
                h.tag(
                    "input",
                    {
                        "type": "radio",
                        "name": "shipping",
                        "id": f"ship-{name.lower()}",
                        "value": name.lower(),
                        "checked": i == chosen,
                        "class": "form-check-input",
                    },
                ),
                h.tag(
                    "label",
                    {"for": f"ship-{name.lower()}", "class": "form-check-label"},
                    h.text(label),
                ),
            ),
        )
        if i != chosen:
            s.add(box, "radio", "click", label, html, "checkout_shipping", option=name.lower())
        y += 28

    amount = f"${rng.randint(20, 480)}.{rng.randint(0, 99):02d}"
    if s.mobile:
        sx0, sx1, sy = x0, x1, y + 12
        c.hline(sy - 6, x0, x1)
    else:
        sx0, sx1, sy = 600, c.width - 48, bar + 44
        c.rect((sx0 - 20, sy - 20, sx1 + 20, sy + 330), fill=t.surface, outline=t.border, radius=10)
        c.text((sx0, sy), "Order summary", 16)
        sy += 34
        for _ in range(2):
            names, (low, high) = v.SHOP[rng.choice(tuple(v.SHOP))]
            c.photo((sx0, sy, sx0 + 44, sy + 44), rng.choice(v.PRODUCT_TINTS))
            c.text((sx0 + 56, sy + 12), rng.choice(names), 13, t.text, "lm")
            c.text((sx1, sy + 12), f"${rng.randint(low, high)}.00", 13, t.text, "rm")
            c.text((sx0 + 56, sy + 32), "Qty 1", 12, t.muted, "lm")
            sy += 58
        c.hline(sy, sx0, sx1)
        sy += 14
    promo = "Promo code"
    pbox = c.input((sx0, sy, sx1 - 86, sy + 38), promo, placeholder=True)
    html = h.tag(
        "div",
        {"class": "input-group promo"},
        h.tag(
            "input",
            {"type": "text", "name": "promo", "placeholder": promo, "class": "form-control"},
        ),
        h.tag("button", {"class": "btn btn-outline-secondary", "type": "button"}, "Apply"),
    )
    s.add(pbox, "input", "type", promo, html, "checkout_promo_field")
    abox = c.button((sx1 - 78, sy, sx1, sy + 38), "Apply", "secondary", 13)
    s.add(abox, "button", "click", "Apply", html, "checkout_promo_apply")
    sy += 54
    c.text((sx0, sy), "Total", 15, t.text, "lm")
    c.text((sx1, sy), amount, 15, t.text, "rm")
    sy += 22
    label = f"Pay {amount}"
    pay = c.button((sx0, sy, sx1, sy + 44), label)
    html = h.tag(
        "form",
        {"id": "payment-form", "method": "post", "action": "/checkout/pay"},
        h.tag(
            "button",
            {"type": "submit", "class": "btn btn-primary btn-lg w-100", "id": "pay"},
            h.text(label),
        ),
    )
    s.add(pay, "button", "click", label, html, "checkout_pay", amount=amount)
