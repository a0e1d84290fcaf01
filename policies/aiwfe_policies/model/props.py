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


def selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if not isinstance(selector, Mapping):
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in items(selector.get("matchExpressions")):
        key, op, values = expr.get("key"), expr.get("operator"), items(expr.get("values"))
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True
