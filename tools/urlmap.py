"""Which backend service a GCP URL map sends a request to, computed from the declared props.

    python -m tools.urlmap build/prod/resources.json aiwfe.example.com /ws /user/ /

Applies GCP's matching for `hostRules` + `pathMatchers[].pathRules`: the host picks a path matcher
(exact host first, then the longest `*`-wildcard); within it the longest matching path wins, where
`/a/*` matches everything under `/a/` (not `/a` itself) and any other path matches only exactly;
no match gives the path matcher's `defaultService`, an unknown host the URL map's. The query string
is not part of the path. Route rules (`routeRules`) are not modelled: a URL map with them is refused
rather than resolved wrongly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

URL_MAP = "gcp:compute/uRLMap:URLMap"
BACKEND_SERVICE = "gcp:compute/backendService:BackendService"


class UnsupportedUrlMapError(ValueError):
    """The URL map uses features this resolver does not model (route rules, redirects per path)."""


def _host_rule_matcher(host_rules: Sequence[Mapping[str, Any]], host: str) -> str | None:
    host = host.lower().split(":", 1)[0]
    best: tuple[int, str] | None = None
    for rule in host_rules:
        for pattern in rule.get("hosts") or ():
            pattern = pattern.lower()
            if pattern == host:
                return rule["pathMatcher"]
            wildcard = pattern == "*" or (pattern.startswith("*") and host.endswith(pattern[1:]))
            # Of the wildcards that match, the longest (most specific) wins.
            if wildcard and (best is None or len(pattern) > best[0]):
                best = (len(pattern), rule["pathMatcher"])
    return best[1] if best else None


def path_rule_matches(pattern: str, path: str) -> bool:
    """GCP path-rule semantics: `*` only at the end after `/` (a prefix), else an exact path."""
    if pattern.endswith("/*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def resolve(url_map: Mapping[str, Any], host: str, path: str) -> str:
    """The service reference (self link) the URL map sends `host` + `path` to."""
    path = path.split("?", 1)[0].split("#", 1)[0] or "/"
    matcher_name = _host_rule_matcher(url_map.get("hostRules") or (), host)
    if matcher_name is None:
        return _service(url_map, "the URL map")
    matchers = {m["name"]: m for m in url_map.get("pathMatchers") or ()}
    if matcher_name not in matchers:
        raise UnsupportedUrlMapError(f"host rule names path matcher {matcher_name!r}, which does not exist")
    matcher = matchers[matcher_name]
    if matcher.get("routeRules"):
        raise UnsupportedUrlMapError(f"path matcher {matcher_name!r} uses routeRules (not modelled here)")
    best: tuple[tuple[int, bool], Mapping[str, Any]] | None = None
    for rule in matcher.get("pathRules") or ():
        for pattern in rule.get("paths") or ():
            if path_rule_matches(pattern, path):
                # Longest match wins; at equal length an exact path beats a prefix.
                rank = (len(pattern.rstrip("*")), not pattern.endswith("*"))
                if best is None or rank > best[0]:
                    best = (rank, rule)
    if best is not None:
        return _service(best[1], f"the path rule for {path}")
    return _service(matcher, f"path matcher {matcher_name!r}")


def _service(node: Mapping[str, Any], where: str) -> str:
    for key in ("service", "defaultService"):
        if node.get(key):
            return str(node[key])
    raise UnsupportedUrlMapError(f"{where} routes to no service (redirects and route actions are not modelled)")


def backend_by_reference(resources: Sequence[Mapping[str, Any]], reference: str) -> Mapping[str, Any]:
    """The declared backend service a self link (or relative path, or bare name) refers to."""
    name = reference.rstrip("/").rsplit("/", 1)[-1]
    found = [r for r in resources if r["type"] == BACKEND_SERVICE and r["props"].get("name") == name]
    if len(found) != 1:
        raise LookupError(f"{reference} names {len(found)} declared backend services")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("resources", type=Path, help="a render's resources.json")
    parser.add_argument("host")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    resources = json.loads(args.resources.read_text())["resources"]
    url_maps = [r for r in resources if r["type"] == URL_MAP and (r["props"].get("hostRules"))]
    if not url_maps:
        print("no URL map with host rules in this render", file=sys.stderr)
        return 2
    for url_map in url_maps:
        for path in args.paths:
            backend = backend_by_reference(resources, resolve(url_map["props"], args.host, path))
            print(f"{url_map['props'].get('name')}: {args.host}{path} -> {backend['props']['name']} "
                  f"(timeout {backend['props'].get('timeoutSec', 30):g}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
