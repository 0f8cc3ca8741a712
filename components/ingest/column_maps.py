"""Column maps: how a source dataset's columns become the input contract's.

A map names, for each contract column, the source columns to read, in order: the first
one holding a non-blank value wins (a list value counts by its first non-blank item).
Contract columns it does not name are read from a source column of the same name when
there is one; optional text columns that no source column provides become "".

Presets for public datasets:

`wave-ui` (agentsea/wave-ui and agentsea/wave-ui-25k):
- summary <- purpose; element_type <- type; bbox <- bbox ([x0, y0, x1, y1] pixels).
- text <- OCR, falling back to name when OCR is empty: OCR is what the element shows,
  which is what `text` means in the contract; name is an annotator's description, the
  closest thing to visible text for icon-only elements.
- html: wave-ui has none, so "".
- action_type is derived from the element type: text-entry elements (input, text field,
  search box, ...) are typed into, everything else is clicked. wave-ui has no action
  column, and those two cover what its element types afford.
- external_id is derived as `<split>-<row>@<revision[:12]>`: wave-ui has no record id,
  and row order is fixed at a pinned revision, so the id is stable for that revision.
- no screen_id: records are grouped by image hash when splitting.

`rico-widget-captions` (rootsautomation/RICO-WidgetCaptioning; columns screenId,
captions, bbox, image, view_hierarchy, ...):
- summary <- captions (the first non-blank caption); screen_id <- screenId.
- bbox is relative ([x0, y0, x1, y1] in [0, 1], as the dataset card states) and is
  scaled to pixels by the image size.
- action_type is "click": the widget-captioning set labels clickable widgets.
- element_type, text, html: "" (the view hierarchy is Android JSON, not HTML).
- external_id is derived as for wave-ui (one screen has many widgets, so screenId alone
  is not unique).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from components.ingest.contract import CONTRACT_COLUMNS, REQUIRED_COLUMNS

BboxUnits = Literal["pixels", "relative"]
Derivation = Callable[[Mapping[str, str]], str]

TEXT_ENTRY_TYPES = frozenset(
    {
        "input",
        "text field",
        "textfield",
        "text input",
        "textbox",
        "textarea",
        "search",
        "search box",
    }
)


class ColumnMapError(ValueError):
    """A column map that cannot apply to the source; the message lists what is there."""


def action_from_element_type(record: Mapping[str, str]) -> str:
    """'type' for text-entry elements, 'click' for everything else."""
    element = record.get("element_type", "").strip().lower().replace("_", " ")
    return "type" if element in TEXT_ENTRY_TYPES else "click"


def always_click(record: Mapping[str, str]) -> str:
    return "click"


@dataclass(frozen=True)
class ColumnMap:
    """Where each contract column comes from in one source dataset."""

    name: str
    # contract column -> source columns to try in order
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    bbox_units: BboxUnits = "pixels"
    # contract text column -> rule computing it from the mapped text fields
    derived: Mapping[str, Derivation] = field(default_factory=dict)
    derive_external_id: bool = False

    def resolve(self, available: list[str]) -> ResolvedColumnMap:
        """Bind the map to the source's columns, or fail naming what is missing."""
        sources: dict[str, tuple[str, ...]] = {}
        for column in CONTRACT_COLUMNS:
            wanted = self.sources.get(column, (column,))
            present = tuple(name for name in wanted if name in available)
            explicit = column in self.sources
            if explicit and len(present) < len(wanted):
                missing = [name for name in wanted if name not in available]
                raise ColumnMapError(
                    f"column map {self.name!r} reads {', '.join(missing)} for {column!r}, but "
                    f"the source has no such column; it has: {', '.join(available)}"
                )
            sources[column] = present
        missing_required = [
            column
            for column in REQUIRED_COLUMNS
            if not sources[column] and not (column == "external_id" and self.derive_external_id)
        ]
        if missing_required:
            raise ColumnMapError(
                f"the source has no column for required field(s) {', '.join(missing_required)}; "
                f"it has: {', '.join(available)}. Map them with --column-map src=dst,... or a "
                f"preset ({', '.join(PRESETS)})"
            )
        return ResolvedColumnMap(self, sources)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the map."""
        return {
            "name": self.name,
            "sources": {column: list(names) for column, names in self.sources.items()},
            "bbox_units": self.bbox_units,
            "derived": sorted(self.derived) + (["external_id"] if self.derive_external_id else []),
        }


@dataclass(frozen=True)
class ResolvedColumnMap:
    """A column map bound to one source's columns."""

    column_map: ColumnMap
    sources: Mapping[str, tuple[str, ...]]

    @property
    def image_column(self) -> str:
        return self.sources["image"][0]

    def describe(self) -> dict[str, Any]:
        """The map as the manifest records it: which source columns fed each contract column."""
        return {
            **self.column_map.describe(),
            "sources": {c: list(s) for c, s in self.sources.items()},
        }

    def pick(self, row: Mapping[str, Any], column: str) -> Any:
        """The first non-blank value among the source columns of `column` (None if none)."""
        for name in self.sources[column]:
            value = first_non_blank(row.get(name))
            if value is not None:
                return value
        return None


def first_non_blank(value: Any) -> Any:
    """None for None, blank strings and lists without a non-blank item; else the value."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return next((v for v in value if v.strip()), None)
    return value


WAVE_UI = ColumnMap(
    name="wave-ui",
    sources={
        "summary": ("purpose",),
        "element_type": ("type",),
        "text": ("OCR", "name"),
        "html": (),
        "action_type": (),
        "external_id": (),
        "screen_id": (),
    },
    derived={"action_type": action_from_element_type},
    derive_external_id=True,
)

RICO_WIDGET_CAPTIONS = ColumnMap(
    name="rico-widget-captions",
    sources={
        "summary": ("captions",),
        "screen_id": ("screenId",),
        "element_type": (),
        "text": (),
        "html": (),
        "action_type": (),
        "external_id": (),
    },
    bbox_units="relative",
    derived={"action_type": always_click},
    derive_external_id=True,
)

IDENTITY = ColumnMap(name="identity")
PRESETS: dict[str, ColumnMap] = {m.name: m for m in (WAVE_UI, RICO_WIDGET_CAPTIONS)}


def parse_column_map(spec: str | None) -> ColumnMap:
    """`None` | `PRESET` | `src=dst,...` | `PRESET,src=dst,...` (overrides on a preset)."""
    if not spec or not spec.strip():
        return IDENTITY
    base = IDENTITY
    overrides: dict[str, tuple[str, ...]] = {}
    for index, item in enumerate(part.strip() for part in spec.split(",")):
        if not item:
            continue
        if "=" not in item:
            if index != 0 or item not in PRESETS:
                raise ColumnMapError(
                    f"{item!r} in --column-map is neither src=dst nor a preset named first "
                    f"(presets: {', '.join(PRESETS)})"
                )
            base = PRESETS[item]
            continue
        source, _, target = (s.strip() for s in item.partition("="))
        if target not in CONTRACT_COLUMNS:
            raise ColumnMapError(
                f"--column-map {item!r}: {target!r} is not a contract column "
                f"({', '.join(CONTRACT_COLUMNS)})"
            )
        if not source:
            raise ColumnMapError(f"--column-map {item!r} names no source column")
        if target in overrides:
            raise ColumnMapError(f"--column-map maps two source columns to {target!r}")
        overrides[target] = (source,)
    if not overrides:
        return base
    derived = {k: v for k, v in base.derived.items() if k not in overrides}
    return ColumnMap(
        name=f"{base.name}+custom" if base is not IDENTITY else "custom",
        sources={**base.sources, **overrides},
        bbox_units=base.bbox_units,
        derived=derived,
        derive_external_id=base.derive_external_id and "external_id" not in overrides,
    )
