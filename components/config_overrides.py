"""`key=value` overrides of a nested config: the one parser the settings and `uicap train` share.

Keys are dotted paths into nested mappings (`train.lora.rank=32`); values are YAML scalars
or flow collections (`train.deepspeed=null`, `kubernetes.node_selector={pool: h100}`), so
`32` arrives as an int and `null` as None before the config model validates them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class OverrideError(ValueError):
    """An override that is not `key=value`, or that treats a value as a group."""


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set each `dotted.key=value` into `data` (changed in place, and returned)."""
    for override in overrides:
        apply_override(data, override)
    return data


def apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or not all(parts):
        raise OverrideError(f"override {override!r} is not key=value (e.g. train.lora.rank=32)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise OverrideError(f"override {key}: value is not a YAML scalar: {error}") from None
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            parent = ".".join(parts[: depth + 1])
            raise OverrideError(f"override {key}: {parent} is a value, not a group")
        node = child
    node[parts[-1]] = value
