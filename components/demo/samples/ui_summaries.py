"""The phrasing patterns of the `summary` column: one template per distinct UI behaviour.

Each template says what acting on an element does, filled in from what the screen shows
(the element's text, the screen's context). Fixed wording per behaviour keeps the task
learnable; the number of behaviours and the slot values keep it from being trivial.
"""

from __future__ import annotations

import string

SUMMARY_TEMPLATES: dict[str, str] = {
    # sign-in form
    "signin_field": "Fills in the {field} used to sign in to {app}.",
    "signin_reveal": "Shows the typed password in plain text so it can be checked.",
    "signin_remember": "Keeps the user signed in on this device after logging in.",
    "signin_forget": "Stops remembering the sign-in on this device.",
    "signin_forgot": "Opens the password reset page to recover the account by email.",
    "signin_submit": "Submits the sign-in form with the entered {credentials}.",
    "signin_social": "Signs in to {app} with the user's {provider} account.",
    "signin_to_signup": "Switches to the sign-up form to create a new {app} account.",
    # sign-up form
    "signup_field": "Enters the {field} for the new {app} account.",
    "signup_country": "Opens the list of countries to set where the account is based.",
    "signup_terms": "Accepts the {document}, which is required before signing up.",
    "signup_submit": "Creates the {app} account with the details entered in the form.",
    "signup_to_signin": "Goes to the sign-in page for people who already have an account.",
    # navigation and landing pages
    "nav_home": "Returns to the {app} home page.",
    "nav_page": "Opens the {page} page.",
    "nav_dropdown": "Reveals the {page} drop-down menu with more links.",
    "search_field": "Lets the user type a query to search {scope}.",
    "search_submit": "Runs the search for the typed query and shows the results.",
    "nav_cart": "Opens the shopping cart, which holds {count}.",
    "nav_notifications": "Shows the {count} in a panel.",
    "nav_account": "Opens the account menu with the profile and sign-out options.",
    "nav_drawer": "Expands the side menu with the main sections of {app}.",
    "hero_trial": "Starts the sign-up flow for a free {app} trial.",
    "hero_demo": "Opens a form to book a demo with the {app} sales team.",
    # shop
    "shop_filter": "Filters the catalogue to show only {category}.",
    "shop_sort": "Opens the sorting options for the products, currently {order}.",
    "shop_add": "Adds the {product} to the shopping cart.",
    "shop_product": "Opens the product page of the {product}.",
    "shop_wishlist": "Saves the {product} to the wishlist for later.",
    "list_next": "Shows the next page of {items}.",
    "list_page": "Jumps to page {number} of the {items}.",
    # checkout
    "checkout_field": "Enters the {field} for paying by card.",
    "checkout_shipping": "Chooses {option} shipping for the order.",
    "checkout_save_card": "Saves the card details for a faster checkout next time.",
    "checkout_promo_field": "Lets the user type a promo code for a discount.",
    "checkout_promo_apply": "Applies the entered promo code to the order total.",
    "checkout_pay": "Pays {amount} and places the order.",
    "checkout_back": "Returns to the shopping cart to change the order.",
    "hint_tooltip": "Shows a tooltip explaining {topic}.",
    # dialogs, banners and pop-ups
    "dialog_close": "Closes the {dialog} dialog without making any changes.",
    "dialog_delete": "Permanently deletes the {object}.",
    "dialog_keep": "Cancels the deletion and keeps the {object}.",
    "dialog_discard": "Discards the unsaved changes to the {object} and leaves the editor.",
    "dialog_keep_editing": "Goes back to editing the {object} without losing any changes.",
    "invite_email": "Enters the email address of the person to invite to {team}.",
    "invite_role": "Chooses the role the invited person will have, currently {role}.",
    "invite_send": "Sends an email invitation to join the {team} workspace.",
    "cookies_accept": "Accepts all cookies and hides the consent banner.",
    "cookies_reject": "Rejects the optional cookies and hides the consent banner.",
    "cookies_manage": "Opens the cookie preferences to choose which cookies are allowed.",
    "newsletter_email": "Enters the email address that will receive the {newsletter} newsletter.",
    "newsletter_subscribe": "Subscribes the entered email address to the {newsletter} newsletter.",
    "popup_mute": "Stops this pop-up from appearing on future visits.",
    # settings
    "setting_on": "Turns {setting} on.",
    "setting_off": "Turns {setting} off.",
    "settings_section": "Opens the {section} settings.",
    "settings_language": "Changes the display language, which is currently {language}.",
    "settings_theme": "Chooses the colour theme of the app, now set to {theme}.",
    "settings_timezone": "Sets the time zone used for dates and reminders.",
    "settings_save": "Saves the changes made to the {section} settings.",
    "settings_logout": "Signs the user out of {app} on this device.",
    "settings_delete_account": "Starts deleting the {app} account, asking for confirmation first.",
    # data tables
    "table_tab": "Switches to the {tab} tab.",
    "table_sort": "Sorts the {table} table by {column}.",
    "table_open": "Opens the details of {entity} {name}.",
    "table_edit": "Opens the editor for {entity} {name}.",
    "table_delete": "Deletes {entity} {name} from the {table} list.",
    "table_select": "Selects {entity} {name} for bulk actions.",
    "table_select_all": "Selects every row on this page of the {table} table.",
    "table_export": "Downloads the {table} table as a CSV file.",
    "table_new": "Opens a form to create a new {entity}.",
    "table_status": "Filters the {table} table by status, now showing {status}.",
    "table_scroll": "Scrolls the {table} table to reveal more rows.",
    # messaging
    "chat_open": "Opens the conversation with {person}.",
    "chat_type": "Lets the user write a message to {person}.",
    "chat_send": "Sends the typed message to {person}.",
    "chat_attach": "Attaches a file to the message being written.",
    "chat_emoji": "Opens the emoji picker to insert an emoji into the message.",
    "chat_call": "Starts a voice call with {person}.",
    "chat_video": "Starts a video call with {person}.",
    "chat_scroll": "Scrolls up through earlier messages with {person}.",
}


def template_slots(key: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(SUMMARY_TEMPLATES[key]) if name}


def summarize(key: str, **slots: str) -> str:
    """Fill template `key`; refuses missing or extra slots so a screen cannot mislabel itself."""
    if key not in SUMMARY_TEMPLATES:
        raise KeyError(f"unknown summary template {key!r}")
    expected = template_slots(key)
    if set(slots) != expected:
        raise ValueError(
            f"summary template {key!r} takes slots {sorted(expected)}, got {sorted(slots)}"
        )
    for name, value in slots.items():
        if not value or value != value.strip() or ". " in value or value.endswith("."):
            raise ValueError(f"summary template {key!r}: slot {name}={value!r} breaks the sentence")
    return SUMMARY_TEMPLATES[key].format(**slots)
