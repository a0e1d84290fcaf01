"""Reading declared props: nested keys, list-valued props, numbers (the wire gives floats)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def items(value: Any) -> list[Any]:
    """A list-valued prop, or [] when absent (strings are not lists here)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def namespace_name(resource: Any) -> str:
    """`metadata.namespace` of a declared Kubernetes object, '' when unset."""
    return str(dig(resource.props, "metadata", "namespace") or "")
