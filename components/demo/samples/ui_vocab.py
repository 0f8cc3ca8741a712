"""Names, labels and catalogue entries that synthetic screens draw from.

Kept in one place so the screens stay about layout, and so the vocabulary the tokenizer
sees is easy to review.
"""

from __future__ import annotations

APPS = (
    "Northwind",
    "Acme Cloud",
    "Pixelpost",
    "FreshCart",
    "Trailhead",
    "Ledgerly",
    "Brightdesk",
    "Harbor",
    "Quillnote",
    "Orbitly",
    "Maple Bank",
    "Sundial",
)

PEOPLE = (
    ("Maria", "Lopez"),
    ("James", "Chen"),
    ("Aisha", "Khan"),
    ("Lukas", "Weber"),
    ("Sofia", "Rossi"),
    ("Noah", "Smith"),
    ("Emma", "Dubois"),
    ("Kenji", "Sato"),
    ("Olivia", "Brown"),
    ("Mateo", "Garcia"),
    ("Priya", "Patel"),
    ("Lars", "Nielsen"),
    ("Chloe", "Martin"),
    ("Omar", "Haddad"),
)

PROVIDERS = ("Google", "GitHub", "Apple", "Microsoft")
COUNTRIES = ("United States", "Germany", "France", "Spain", "Japan", "Canada", "Brazil", "India")
DOCUMENTS = ("Terms of Service", "Privacy Policy", "User Agreement")

NAV_PAGES = (
    "Products",
    "Pricing",
    "Docs",
    "Blog",
    "About",
    "Careers",
    "Contact",
    "Features",
    "Customers",
    "Support",
    "Changelog",
    "Integrations",
)

HERO_LINES = (
    "Ship faster with less busywork",
    "Your money, finally organised",
    "Plan trips your friends will love",
    "Notes that think with you",
    "Groceries at your door in an hour",
    "Every project, one calm place",
)

# category -> (product names, price range in dollars)
SHOP: dict[str, tuple[tuple[str, ...], tuple[int, int]]] = {
    "Shoes": (("Trail Runner", "City Sneaker", "Canvas Slip-On", "Leather Boot"), (45, 160)),
    "Jackets": (("Rain Shell", "Down Parka", "Denim Jacket", "Fleece Zip"), (60, 240)),
    "Bags": (("Weekender Bag", "Laptop Backpack", "Canvas Tote", "Sling Pack"), (25, 140)),
    "Watches": (("Field Watch", "Smart Watch", "Dive Watch", "Minimal Watch"), (80, 420)),
    "Headphones": (("Studio Headphones", "Wireless Earbuds", "Sport Earbuds"), (30, 350)),
    "Lamps": (("Desk Lamp", "Floor Lamp", "Clip Light", "Arc Lamp"), (20, 190)),
}

PRODUCT_TINTS = ("#93c5fd", "#fca5a5", "#86efac", "#fcd34d", "#c4b5fd", "#f9a8d4", "#99f6e4")

SORT_ORDERS = (
    ("Featured", "sorted by featured items"),
    ("Newest", "sorted by newest first"),
    ("Price: low to high", "sorted by lowest price"),
    ("Price: high to low", "sorted by highest price"),
    ("Best rated", "sorted by rating"),
)

SETTINGS_SECTIONS = ("Profile", "Account", "Notifications", "Privacy", "Security", "Appearance")

# section -> (label shown, description shown, phrase used in the summary)
TOGGLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "Notifications": (
        ("Email notifications", "Get an email when someone mentions you", "email notifications"),
        ("Push notifications", "Alerts on your phone for new activity", "push notifications"),
        ("Weekly digest", "A summary of your week every Monday", "the weekly digest email"),
        ("Notification sounds", "Play a sound for new messages", "notification sounds"),
        ("Product updates", "News about features and releases", "product update emails"),
    ),
    "Privacy": (
        ("Public profile", "Anyone can see your profile page", "the public profile"),
        ("Show online status", "Let others see when you are active", "the online status"),
        ("Share usage data", "Help us improve with anonymous data", "usage data sharing"),
        ("Personalised ads", "Ads based on your activity", "personalised ads"),
    ),
    "Security": (
        (
            "Two-factor authentication",
            "Ask for a code when signing in",
            "two-factor authentication",
        ),
        ("Login alerts", "Email me about sign-ins from new devices", "login alerts"),
        ("Remember devices", "Skip the code on trusted devices", "remembered devices"),
    ),
    "Appearance": (
        ("Compact mode", "Show more items on screen", "compact mode"),
        ("Reduce motion", "Fewer animations across the app", "reduced motion"),
        ("High contrast", "Stronger colours for readability", "high contrast mode"),
    ),
}

LANGUAGES = ("English", "German", "Spanish", "French", "Italian", "Dutch", "Portuguese")
THEMES = ("Light", "Dark", "System default")
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")


# table key -> title, entity, columns (first is the id column), statuses
TABLES: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "orders": (
        "Orders",
        "order",
        ("Order", "Customer", "Date", "Total", "Status"),
        ("Paid", "Pending", "Shipped", "Refunded"),
    ),
    "invoices": (
        "Invoices",
        "invoice",
        ("Invoice", "Client", "Due date", "Amount", "Status"),
        ("Paid", "Overdue", "Draft"),
    ),
    "users": (
        "Users",
        "user",
        ("Name", "Email", "Role", "Last active", "Status"),
        ("Active", "Invited", "Suspended"),
    ),
    "tickets": (
        "Tickets",
        "ticket",
        ("Ticket", "Subject", "Requester", "Priority", "Status"),
        ("Open", "Pending", "Solved"),
    ),
}

STATUS_COLOURS = {
    "Paid": "#16a34a",
    "Active": "#16a34a",
    "Solved": "#16a34a",
    "Shipped": "#0284c7",
    "Open": "#0284c7",
    "Pending": "#d97706",
    "Invited": "#d97706",
    "Draft": "#6b7280",
    "Refunded": "#6b7280",
    "Overdue": "#dc2626",
    "Suspended": "#dc2626",
}

TICKET_SUBJECTS = (
    "Cannot reset password",
    "Invoice shows wrong VAT",
    "App crashes on upload",
    "Request for refund",
    "Add a second admin",
    "Export is empty",
)
ROLES = ("Admin", "Editor", "Viewer", "Member")

TEAMS = ("Design", "Marketing", "Platform", "Growth", "Support", "Finance")
DELETABLE = ("project", "file", "board", "playlist", "folder", "report")
PROJECT_NAMES = ("Website Redesign", "Q3 Budget", "Launch Plan", "Road Trip", "Onboarding Guide")
NEWSLETTERS = ("Weekly Picks", "Product News", "Morning Brief", "Deals of the Week")

MESSAGES = (
    "Are we still on for tomorrow?",
    "I pushed the new version, can you check?",
    "Thanks, that works for me!",
    "Can you send me the invoice?",
    "Lunch at 12:30?",
    "The client loved the mockups.",
    "Running 5 minutes late, sorry.",
    "Let's move the call to Friday.",
    "Great, see you there.",
)
