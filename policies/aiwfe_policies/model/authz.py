"""Istio's request matching for AuthorizationPolicies and RequestAuthentications: string patterns,
operations, who a DENY rule stops, which workloads a policy selects, where a JWT rule reads the token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine import Resource
from .props import dig, items, namespace_name


def authz_pattern_matches(pattern: Any, value: str, *, case_insensitive: bool = False) -> bool:
    """Istio's string match in AuthorizationPolicy: `*`, prefix `abc*`, suffix `*abc`, or exact."""
    pattern = str(pattern)
    if case_insensitive:
        pattern, value = pattern.lower(), value.lower()
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return pattern == value


def any_pattern_matches(patterns: Any, value: str, *, hosts: bool = False) -> bool:
    return any(authz_pattern_matches(p, value, case_insensitive=hosts) for p in items(patterns))


def operation_matches(operation: Mapping[str, Any], host: str, path: str) -> bool:
    """Whether one AuthorizationPolicy operation matches every request to host+path (any method, port)."""
    if any(operation.get(k) for k in ("methods", "ports", "notMethods", "notPorts")):
        return False  # narrower than the whole route
    if "hosts" in operation and not any_pattern_matches(operation["hosts"], host, hosts=True):
        return False
    if any_pattern_matches(operation.get("notHosts"), host, hosts=True):
        return False
    if "paths" in operation and not any_pattern_matches(operation["paths"], path):
        return False
    return not any_pattern_matches(operation.get("notPaths"), path)


def denies_tokenless(rule: Mapping[str, Any]) -> bool:
    """A DENY rule's `from` is met by every request without a valid token (or it has no `from`)."""
    if rule.get("when"):
        return False  # conditional: it denies only the requests the conditions pick
    sources = items(rule.get("from"))
    if not sources:
        return True
    return any(set(s.get("source") or {}) == {"notRequestPrincipals"} and items(s["source"]["notRequestPrincipals"])
               for s in sources)


def selects(policy: Resource, gateway: Resource) -> bool:
    if namespace_name(policy) != namespace_name(gateway):
        return False
    wanted = dig(policy.props, "spec", "selector", "matchLabels") or {}
    labels = dig(gateway.props, "spec", "selector") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def jwt_header_names(rule: Mapping[str, Any]) -> list[str]:
    names = [str(h.get("name", "")) for h in items(rule.get("fromHeaders"))]
    if not names and not items(rule.get("fromParams")) and not items(rule.get("fromCookies")):
        names = ["Authorization"]  # Istio's default location
    return names
