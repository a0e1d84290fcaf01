"""Istio's request matching for AuthorizationPolicies and RequestAuthentications: string patterns,
operations, who a DENY rule stops, which workloads a policy selects, where a JWT rule reads the token."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..engine import Resource
from .index import index_of
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


class TokenlessDenies:
    """A stack's unconditional DENY-without-token rules, looked up by the host of a request: an
    operation naming only exact hosts (`h`, `h:80`, `h:*`) can match no other host, so a request is
    checked against those naming its host and those naming no host or a wider pattern, of the
    policies selecting the gateway in question."""

    def __init__(self, policies: list[Resource]) -> None:
        self._rules = [(p, rule) for p in policies if dig(p.props, "spec", "action") == "DENY"
                       for rule in items(dig(p.props, "spec", "rules")) if denies_tokenless(rule)]
        self._tables: tuple[dict[str, list[tuple[Resource, Mapping[str, Any]]]],
                            list[tuple[Resource, Mapping[str, Any]]]] | None = None
        self._selects: dict[tuple[int, int], bool] = {}

    @classmethod
    def of(cls, resources: list[Resource], policies: Callable[[], list[Resource]]) -> TokenlessDenies:
        """The stack's, built once per evaluation from its Istio AuthorizationPolicies (`policies()`)."""
        return index_of(resources).memo("tokenless-denies", lambda: cls(policies()))

    def operations(self, gateway: Resource, host: str) -> list[Mapping[str, Any]]:
        """The operations (`to[].operation`, `{}` for a rule without `to`) of the rules selecting
        `gateway` that may match a request for `host`."""
        if self._tables is None:
            by_host: dict[str, list[tuple[Resource, Mapping[str, Any]]]] = {}
            general: list[tuple[Resource, Mapping[str, Any]]] = []
            for policy, rule in self._rules:
                for target in items(rule.get("to")) or [{}]:
                    operation = target.get("operation") or {}
                    keys = _exact_host_keys(operation)
                    if keys is None:
                        general.append((policy, operation))
                    for host_key in keys or ():
                        by_host.setdefault(host_key, []).append((policy, operation))
            self._tables = (by_host, general)
        by_host, general = self._tables
        found = []
        for policy, operation in by_host.get(_host_key(host), []) + general:
            pair = (id(policy), id(gateway))
            if pair not in self._selects:
                self._selects[pair] = selects(policy, gateway)
            if self._selects[pair]:
                found.append(operation)
        return found


def _host_key(host: str) -> str:
    return host.lower().split(":", 1)[0]


def _exact_host_keys(operation: Mapping[str, Any]) -> set[str] | None:
    """The hosts (port dropped) an operation is limited to; None when it may match any host."""
    if "hosts" not in operation:
        return None
    keys = set()
    for pattern in map(str, items(operation["hosts"])):
        bare = pattern[:-2] if pattern.endswith(":*") else pattern
        if "*" in bare:
            return None
        keys.add(_host_key(bare))
    return keys


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
