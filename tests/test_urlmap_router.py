"""The pack's one URL-map router (policies/aiwfe_policies/model/urlmap.py), which the GCP rules,
the cross-layer tracer and `tools/urlmap.py` all ask.

The cases the three earlier copies answered differently come first: a prefix rule `/a/*` and an
exact rule `/a/b` for a request to `/a/b` (GCP: the exact path, the longer match), whichever is
listed first; and a host rule `*-x.example.com` (GCP allows `*` followed by `.` or `-`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from policies.aiwfe_policies.model import urlmap
from policies.aiwfe_policies.model.props import dig
from policies.aiwfe_policies.model.urlmap import Request, route
from policies.aiwfe_policies.rules import gcp, paths
from tests.policy_fixtures import to_resource
from tests.rendered_stacks import rendered_wires


def path_map(*rules: tuple[list[str], str]) -> dict:
    return {"defaultService": "map-default", "hostRules": [{"hosts": ["a.example.com"], "pathMatcher": "m"}],
            "pathMatchers": [{"name": "m", "defaultService": "m-default",
                              "pathRules": [{"paths": paths, "service": f"projects/p/global/backendServices/{s}"}
                                            for paths, s in rules]}]}


@pytest.mark.parametrize("order", ["prefix-first", "exact-first"])
def test_an_exact_path_beats_a_prefix_of_the_same_length(order: str) -> None:
    rules = [(["/a/*"], "prefix"), (["/a/b"], "exact")]
    url_map = path_map(*(rules if order == "prefix-first" else reversed(rules)))
    assert route(url_map, Request("a.example.com", "/a/b")).services == ("exact",)
    assert route(url_map, Request("a.example.com", "/a/c")).services == ("prefix",)
    assert route(url_map, Request("a.example.com", "/a")).services == ("m-default",)  # `/a/*` is below /a/ only


MAP = {
    "defaultService": "x/map-default",
    "hostRules": [{"hosts": ["a.example.com"], "pathMatcher": "a"}, {"hosts": ["*.example.com"], "pathMatcher": "w"},
                  {"hosts": ["*-x.example.com"], "pathMatcher": "dash"}, {"hosts": ["*"], "pathMatcher": "any"}],
    "pathMatchers": [
        {"name": "a", "defaultService": "x/a-default", "pathRules": [
            {"paths": ["/p/*"], "service": "x/prefix"},
            {"paths": ["/p/q", "/p/q/*"], "service": "x/longer"},
            {"paths": ["/p"], "service": "x/exact"}]},
        {"name": "w", "defaultService": "x/wildcard"},
        {"name": "dash", "defaultService": "x/dash"},
        {"name": "any", "defaultService": "x/any"},
    ],
}


@pytest.mark.parametrize(("host", "path", "service"), [
    ("a.example.com", "/p", "exact"),
    ("a.example.com", "/p/", "prefix"),
    ("a.example.com", "/p/q", "longer"),
    ("a.example.com", "/p/q/r", "longer"),
    ("a.example.com", "/p/qr", "prefix"),
    ("a.example.com", "/p?x=/p/q", "exact"),  # the query string is not part of the path
    ("a.example.com", "/other", "a-default"),
    ("A.Example.com:443", "/p", "exact"),
    ("b.example.com", "/p", "wildcard"),
    ("shop-x.example.com", "/", "dash"),  # `*-x.example.com` is longer than `*.example.com`
    ("shopx.example.com", "/", "wildcard"),
    ("example.org", "/", "any"),
])
def test_gcp_host_and_path_matching(host: str, path: str, service: str) -> None:
    assert route(MAP, Request(host, path)).services == (service,)


def test_an_unknown_host_without_a_catch_all_goes_to_the_url_maps_default() -> None:
    url_map = {**MAP, "hostRules": MAP["hostRules"][:1]}
    found = route(url_map, Request("example.org", "/"))
    assert (found.services, found.matcher, found.via) == (("map-default",), None, "defaultService")


@pytest.mark.parametrize(("pattern", "host", "matches"), [
    ("*.example.com", "a.example.com", True), ("*.example.com", "example.com", False),
    ("*-x.example.com", "a-x.example.com", True), ("*-x.example.com", "ax.example.com", False),
    ("*x.example.com", "ax.example.com", False),  # `*` must be followed by `.` or `-`
    ("*", "anything", True), ("a.example.com", "A.EXAMPLE.COM:8443", True),
])
def test_host_patterns(pattern: str, host: str, matches: bool) -> None:
    assert urlmap.host_matches(pattern, host) is matches


def route_map(*rules: dict) -> dict:
    return {"hostRules": [{"hosts": ["a.example.com"], "pathMatcher": "m"}],
            "pathMatchers": [{"name": "m", "defaultService": "fallback", "routeRules": list(rules)}]}


def test_route_rules_go_by_priority_and_headers() -> None:
    url_map = route_map(
        {"priority": 20, "matchRules": [{"prefixMatch": "/"}], "service": "web"},
        {"priority": 10, "matchRules": [{"prefixMatch": "/ws", "headerMatches": [
            {"headerName": "Upgrade", "exactMatch": "websocket"}]}], "service": "websocket"},
        {"priority": 5, "matchRules": [{"fullPathMatch": "/ws/canary", "headerMatches": [
            {"headerName": "x-canary", "presentMatch": True}]}],
         "routeAction": {"weightedBackendServices": [{"backendService": "a/ws-v1", "weight": 90},
                                                     {"backendService": "a/ws-v2", "weight": 10}]}},
    )
    upgrade = urlmap.UPGRADE_HEADERS
    assert route(url_map, Request("a.example.com", "/ws", upgrade)).services == ("websocket",)
    assert route(url_map, Request("a.example.com", "/ws")).services == ("web",)  # no Upgrade header
    canary = Request("a.example.com", "/ws/canary", {**upgrade, "x-canary": "1"})
    found = route(url_map, canary)
    assert (found.services, found.via) == (("ws-v1", "ws-v2"), "routeRules[priority 5]")


def test_unmodelled_criteria_never_match_and_a_redirect_has_no_service() -> None:
    url_map = route_map({"priority": 1, "matchRules": [{"prefixMatch": "/", "queryParameterMatches": [
        {"name": "v", "exactMatch": "2"}]}], "service": "v2"})
    assert route(url_map, Request("a.example.com", "/")).services == ("fallback",)
    redirect = {"hostRules": [{"hosts": ["*"], "pathMatcher": "r"}],
                "pathMatchers": [{"name": "r", "defaultUrlRedirect": {"httpsRedirect": True}}]}
    assert route(redirect, Request("a.example.com", "/")).services == ()


def test_websocket_services_follow_the_upgrade_on_hosts_that_route_websockets() -> None:
    url_map = {"defaultService": "web", "hostRules": [{"hosts": ["a.example.com"], "pathMatcher": "m"},
                                                      {"hosts": ["auth.example.com"], "pathMatcher": "auth"}],
               "pathMatchers": [
                   {"name": "m", "defaultService": "web", "pathRules": [{"paths": ["/ws", "/ws/*"], "service": "ws"}]},
                   {"name": "auth", "defaultService": "keycloak"}]}
    # `/websocket` is not routed on a.example.com: an upgrade there reaches `web`; the auth host routes none.
    assert urlmap.websocket_services(url_map) == {"ws", "web"}


def plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(v) for v in value]
    return value


def name(resource: Any) -> Any:
    return None if resource is None else (dig(resource.props, "metadata", "name") or resource.props.get("name")
                                          or resource.name)


def traced(stack: str) -> dict:
    resources = [to_resource(w, stack) for w in rendered_wires(stack)]
    maps = [r for r in resources if r.type == gcp.URL_MAP]
    return {
        "websocket_services": {m.name: sorted(gcp.websocket_services(m)) for m in maps},
        "traces": sorted([
            [t.path, t.host, name(t.url_map), name(t.backend), name(t.gateway), name(t.virtual_service),
             name(t.destination_rule),
             json.dumps(plain(t.traffic_policy), sort_keys=True) if t.traffic_policy else None,
             name(t.service), [name(d) for d in t.deployments], t.broken.message(t.path) if t.broken else None]
            for t in paths.trace_websocket_paths(resources)], key=json.dumps),
    }


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_router_traces_both_stacks_as_the_three_old_copies_did(stack: str) -> None:
    # Recorded from the code before the router replaced gcp.websocket_services, paths' matcher and
    # tools/urlmap's resolver (each stack's WebSocket services, and every traced path hop by hop).
    before = json.loads((Path(__file__).parent / "fixtures" / "websocket_routes_before_the_router.json").read_text())
    assert traced(stack) == before[stack]
