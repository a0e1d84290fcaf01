"""The stack's resources indexed by type and by namespace, built once per evaluation: stack rules
that pair resources (a workload and its HPA, PDBs, NetworkPolicies) look them up instead of
scanning the whole stack for each workload, so their cost grows linearly with the stack. `memo`
keeps what several rules derive from the same resources (the WebSocket traces, the token-less
DENY rules) for the rest of the evaluation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..engine import Resource
from .props import dig

_LAST: list[tuple[list[Resource], tuple[int, int, int, int], ResourceIndex]] = []
T = TypeVar("T")


@dataclass
class ResourceIndex:
    by_type: dict[str, list[Resource]] = field(default_factory=lambda: defaultdict(list))
    _by_namespace: dict[tuple[str, Any], list[Resource]] = field(default_factory=dict)
    _namespaces_built: set[str] = field(default_factory=set)
    _hpa_targets: dict[tuple[Any, Any, Any], Resource] | None = None
    _selectors: dict[tuple[str, tuple[str, ...]], Any] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict)

    def memo(self, key: str, build: Callable[[], T]) -> T:
        """What `build` derives from this evaluation's resources, built once and shared by every rule
        that asks (kept only once built whole: a value unknown at preview raises again next time)."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def of_type(self, *types: str) -> list[Resource]:
        if len(types) == 1:
            return self.by_type.get(types[0], [])
        return [r for t in types for r in self.by_type.get(t, [])]

    def in_namespace(self, type_: str, namespace: Any) -> list[Resource]:
        if type_ not in self._namespaces_built:
            # Built whole or not at all: a value unknown at preview must not leave half an index.
            grouped: dict[tuple[str, Any], list[Resource]] = {}
            for resource in self.by_type.get(type_, []):
                grouped.setdefault((type_, dig(resource.props, "metadata", "namespace")), []).append(resource)
            self._by_namespace.update(grouped)
            self._namespaces_built.add(type_)
        return self._by_namespace.get((type_, namespace), [])

    def selector_candidates(self, type_: str, path: tuple[str, ...], namespace: Any,
                            labels: dict[str, Any]) -> list[Resource]:
        """Resources of `type_` in `namespace` whose selector at `path` may select `labels` (the caller
        still applies the selector: this only narrows the search)."""
        key = (type_, path)
        if key not in self._selectors:
            self._selectors[key] = _selector_buckets(self.by_type.get(type_, []), path)
        buckets, rest = self._selectors[key]
        found = list(rest.get(namespace, []))
        for label, value in labels.items():
            found += buckets.get((namespace, str(label), value), [])
        return found

    def hpa_for(self, hpa_type: str, namespace: Any, kind: str, name: Any) -> Resource | None:
        if self._hpa_targets is None:
            targets: dict[tuple[Any, Any, Any], Resource] = {}
            for hpa in self.by_type.get(hpa_type, []):
                target = dig(hpa.props, "spec", "scaleTargetRef") or {}
                key = (dig(hpa.props, "metadata", "namespace"), target.get("kind"), target.get("name"))
                targets.setdefault(key, hpa)
            self._hpa_targets = targets
        return self._hpa_targets.get((namespace, kind, name))


def _selector_buckets(resources: list[Resource], path: tuple[str, ...]
                      ) -> tuple[dict[tuple[Any, str, Any], list[Resource]], dict[Any, list[Resource]]]:
    """Selectors bucketed by one of their matchLabels pairs (a workload can only be selected through
    a pair it carries); those without matchLabels are checked against every workload of the namespace."""
    buckets: dict[tuple[Any, str, Any], list[Resource]] = {}
    rest: dict[Any, list[Resource]] = {}
    for resource in resources:
        namespace = dig(resource.props, "metadata", "namespace")
        labels = dig(resource.props, *path, "matchLabels") or {}
        if labels:
            key, value = min(labels.items(), key=lambda kv: str(kv[0]))
            buckets.setdefault((namespace, str(key), value), []).append(resource)
        else:
            rest.setdefault(namespace, []).append(resource)
    return buckets, rest


def _fingerprint(resources: list[Resource]) -> tuple[int, int, int, int]:
    # O(1): the list object, its length and its ends (an evaluation never edits its list).
    return (id(resources), len(resources), id(resources[0]) if resources else 0,
            id(resources[-1]) if resources else 0)


def index_of(resources: list[Resource]) -> ResourceIndex:
    """The index of this very list (the one evaluation hands every stack rule), built on first use."""
    fingerprint = _fingerprint(resources)
    if _LAST and _LAST[0][0] is resources and _LAST[0][1] == fingerprint:
        return _LAST[0][2]
    index = ResourceIndex()
    for resource in resources:
        index.by_type[resource.type].append(resource)
    _LAST[:] = [(resources, fingerprint, index)]
    return index
