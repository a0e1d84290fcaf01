"""Where a GCP URL map sends a request: the one router the rules, the cross-layer tracer and
`tools/urlmap.py` ask.

GCP's matching (URL map concepts): a host rule's hosts are exact names, `*`, or `*` followed by a
suffix that starts with `.` or `-` (`*.example.com`, `*-shop.example.com`); an exact host wins, then
the longest matching wildcard; a host no rule names goes to the URL map's default. In a path
matcher, route rules are tried by ascending priority and the first whose match rules hold wins;
path rules take the longest match, where `/a/*` covers everything below `/a/` (not `/a` itself),
any other path only itself, and at equal length an exact path beats a prefix. No match gives the
path matcher's default. The query string and fragment are not part of the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..contract import WEBSOCKET_PATHS
from .props import items, number

# What a browser's WebSocket handshake always sends (values stand in for the per-request ones),
# for header match rules at the LB and in the mesh.
UPGRADE_HEADERS: Mapping[str, str] = MappingProxyType({
    "upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "origin": "https://browser.invalid",
})
# Paths a WebSocket client opens: each WebSocket path and one below it.
WEBSOCKET_REQUEST_PATHS = tuple(p for base in WEBSOCKET_PATHS for p in (base, f"{base}/session"))


@dataclass(frozen=True)
class Request:
    host: str
    path: str
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Lower-case names."""


@dataclass(frozen=True)
class Route:
    """The URL map's answer for one request."""

    services: tuple[str, ...]
    """GCP names of the backend services (several with weighted backends); empty for a redirect."""
    matcher: str | None
    """The path matcher that decided; None when the URL map's own default did."""
    via: str
    """Which rule decided, for messages: `routeRules[priority 10]`, `pathRules[/ws/*]`, `defaultService`."""


def gcp_name(reference: Any) -> str:
    """A backend service's name from its self link, relative path or bare name."""
    return str(reference or "").rstrip("/").rsplit("/", 1)[-1]


def host_matches(pattern: str, host: str) -> bool:
    """A host rule's host against a request host (case-insensitive, port ignored)."""
    pattern, host = pattern.lower(), host.lower().split(":", 1)[0]
    if pattern == "*" or pattern == host:
        return True
    return pattern[:1] == "*" and pattern[1:2] in (".", "-") and host.endswith(pattern[1:])


def path_matcher(url_map: Mapping[str, Any], host: str) -> Mapping[str, Any] | None:
    """The path matcher `host` goes to; None for the URL map's default."""
    matchers = {m.get("name"): m for m in items(url_map.get("pathMatchers")) if isinstance(m, Mapping)}
    best: tuple[tuple[bool, int], Any] | None = None
    for rule in items(url_map.get("hostRules")):
        for pattern in map(str, items(rule.get("hosts"))):
            if host_matches(pattern, host):
                rank = ("*" not in pattern, len(pattern))
                if best is None or rank > best[0]:
                    best = (rank, rule.get("pathMatcher"))
    return matchers.get(best[1]) if best else None


def route(url_map: Mapping[str, Any], request: Request) -> Route:
    matcher = path_matcher(url_map, request.host)
    if matcher is None:
        return Route(_services(url_map.get("defaultService")), None, "defaultService")
    return route_in_matcher(matcher, request)


def route_in_matcher(matcher: Mapping[str, Any], request: Request) -> Route:
    path = request.path.split("?", 1)[0].split("#", 1)[0] or "/"
    name = matcher.get("name")
    rules = [r for r in items(matcher.get("routeRules")) if isinstance(r, Mapping)]
    for rule in sorted(rules, key=lambda r: number(r.get("priority")) or 0.0):
        if any(match_rule_matches(m, path, request.headers) for m in items(rule.get("matchRules"))
               if isinstance(m, Mapping)):
            return Route(_rule_services(rule), name, f"routeRules[priority {number(rule.get('priority')) or 0:g}]")
    best: tuple[tuple[int, bool], Mapping[str, Any], str] | None = None
    for rule in items(matcher.get("pathRules")):
        for pattern in map(str, items(rule.get("paths"))):
            if path_rule_matches(pattern, path):
                rank = (len(pattern.rstrip("*")), not pattern.endswith("*"))
                if best is None or rank > best[0]:
                    best = (rank, rule, pattern)
    if best is not None:
        return Route(_rule_services(best[1]), name, f"pathRules[{best[2]}]")
    return Route(_services(matcher.get("defaultService")), name, "defaultService")


def path_rule_matches(pattern: str, path: str) -> bool:
    """`*` only at the end after `/` (everything below), else the exact path."""
    if pattern.endswith("/*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def match_rule_matches(match: Mapping[str, Any], path: str, headers: Mapping[str, str]) -> bool:
    """One of a route rule's matchRules (criteria on query parameters or path templates are not
    modelled and never match)."""
    for header in items(match.get("headerMatches")):
        value = headers.get(str(header.get("headerName") or "").lower())
        if header.get("presentMatch") is not None:
            hit = (value is not None) == bool(header["presentMatch"])
        elif header.get("exactMatch") is not None:
            hit = value == str(header["exactMatch"])
        elif header.get("prefixMatch") is not None:
            hit = value is not None and value.startswith(str(header["prefixMatch"]))
        elif header.get("suffixMatch") is not None:
            hit = value is not None and value.endswith(str(header["suffixMatch"]))
        elif header.get("regexMatch") is not None:
            hit = value is not None and _fullmatch(str(header["regexMatch"]), value)
        else:
            hit = False
        if hit == bool(header.get("invertMatch")):
            return False
    if items(match.get("queryParameterMatches")) or match.get("pathTemplateMatch"):
        return False
    ignore_case = bool(match.get("ignoreCase"))
    target = path.lower() if ignore_case else path
    if match.get("fullPathMatch") is not None:
        full = str(match["fullPathMatch"])
        return target == (full.lower() if ignore_case else full)
    if match.get("prefixMatch") is not None:
        prefix = str(match["prefixMatch"])
        return target.startswith(prefix.lower() if ignore_case else prefix)
    if match.get("regexMatch") is not None:
        return _fullmatch(str(match["regexMatch"]), path)
    return False


def routes_websockets(matcher: Mapping[str, Any]) -> bool:
    """The path matcher names a WebSocket path in a path rule or a route rule: its hosts serve them."""
    for rule in items(matcher.get("pathRules")):
        if any(str(p).rstrip("*").rstrip("/") in WEBSOCKET_PATHS for p in items(rule.get("paths"))):
            return True
    for rule in items(matcher.get("routeRules")):
        for match in items(rule.get("matchRules")):
            for key in ("prefixMatch", "fullPathMatch"):
                if str(match.get(key) or "").rstrip("/") in WEBSOCKET_PATHS:
                    return True
    return False


def websocket_routes(url_map: Mapping[str, Any]) -> Iterator[tuple[str, str, Route]]:
    """(host pattern, path, route) for every host whose path matcher routes WebSockets and every
    path a WebSocket client opens there, as an upgrade request."""
    matchers = {m.get("name"): m for m in items(url_map.get("pathMatchers")) if isinstance(m, Mapping)}
    for host_rule in items(url_map.get("hostRules")):
        matcher = matchers.get(host_rule.get("pathMatcher"))
        if matcher is None or not routes_websockets(matcher):
            continue
        for host in map(str, items(host_rule.get("hosts"))):
            for path in WEBSOCKET_REQUEST_PATHS:
                yield host, path, route_in_matcher(matcher, Request(host, path, UPGRADE_HEADERS))


def websocket_services(url_map: Mapping[str, Any]) -> set[str]:
    """GCP names of the backend services WebSocket upgrades reach through the URL map."""
    return {service for _, _, found in websocket_routes(url_map) for service in found.services}


def _rule_services(rule: Mapping[str, Any]) -> tuple[str, ...]:
    found = {gcp_name(rule["service"])} if rule.get("service") else set()
    action = rule.get("routeAction")
    if isinstance(action, Mapping):
        found |= {gcp_name(w.get("backendService")) for w in items(action.get("weightedBackendServices"))
                  if isinstance(w, Mapping) and w.get("backendService")}
    return tuple(sorted(found))


def _services(reference: Any) -> tuple[str, ...]:
    return (gcp_name(reference),) if reference else ()


def _fullmatch(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return False
