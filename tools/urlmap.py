"""Which backend service a rendered GCP URL map sends a request to: a command line over the policy
pack's router (policies/aiwfe_policies/model/urlmap.py), the same code the rules use.

    python -m tools.urlmap build/prod/resources.json aiwfe.example.com /ws /user/ /
    python -m tools.urlmap build/prod/resources.json aiwfe.example.com /ws --upgrade
    python -m tools.urlmap build/prod/resources.json aiwfe.example.com /ws --header x-canary:1
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from policies.aiwfe_policies.model import urlmap as router
from policies.aiwfe_policies.rules.gcp import BACKEND_SERVICE, URL_MAP


def backends_by_name(resources: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(r["props"].get("name")): r for r in resources if r["type"] == BACKEND_SERVICE}


def describe(url_map: Mapping[str, Any], backends: Mapping[str, Mapping[str, Any]], request: router.Request) -> str:
    found = router.route(url_map, request)
    if not found.services:
        target = "no backend service (a redirect)"
    else:
        target = ", ".join(
            f"{name} (timeout {backends[name]['props'].get('timeoutSec', 30):g}s)" if name in backends
            else f"{name} (not declared in this render)" for name in found.services)
    return f"{url_map.get('name')}: {request.host}{request.path} -> {target} via {found.via}"


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:VALUE")
    return name.strip().lower(), value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("resources", type=Path, help="a render's resources.json")
    parser.add_argument("host")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--upgrade", action="store_true", help="send a browser's WebSocket handshake headers")
    parser.add_argument("--header", type=_header, action="append", default=[], metavar="NAME:VALUE")
    args = parser.parse_args(argv)
    try:
        resources = json.loads(args.resources.read_text())["resources"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"error: {args.resources}: not a render's resources.json ({error})", file=sys.stderr)
        return 2
    url_maps = [r["props"] for r in resources if r["type"] == URL_MAP and r["props"].get("hostRules")]
    if not url_maps:
        print("error: no URL map with host rules in this render", file=sys.stderr)
        return 2
    headers = {**(router.UPGRADE_HEADERS if args.upgrade else {}), **dict(args.header)}
    backends = backends_by_name(resources)
    for url_map in url_maps:
        for path in args.paths:
            print(describe(url_map, backends, router.Request(args.host, path, headers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
