"""Run the policy pack offline over a rendered stack:

    python -m policies.offline build/<stack>/resources.json [--json]

Exit code 0 when no mandatory policy is violated, 1 when one is, 2 when the file is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from policies.catalog import all_rules
from policies.engine import DEFAULT_PRODUCTION_STACKS, Context, Report, Resource, analyzer_props, evaluate

SUPPORTED_FORMATS = (1,)


def load_resources(document: Mapping[str, Any]) -> list[Resource]:
    """resources.json entries -> Resources, props deserialized the way the analyzer does."""
    if document.get("formatVersion") not in SUPPORTED_FORMATS:
        raise ValueError(f"unsupported formatVersion {document.get('formatVersion')!r}; "
                         f"this runner reads {SUPPORTED_FORMATS}")
    return [
        Resource(type=r["type"], name=r["name"], urn=r["urn"], props=analyzer_props(r.get("props") or {}),
                 protect=bool(r.get("protect")), parent=r.get("parent") or "")
        for r in document["resources"]
    ]


def evaluate_document(document: Mapping[str, Any],
                      production_stacks: Sequence[str] = DEFAULT_PRODUCTION_STACKS) -> Report:
    context = Context(stack=document["stack"], production_stacks=tuple(production_stacks))
    return evaluate(load_resources(document), context, all_rules())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the AIWFE policy pack over a rendered resources.json.")
    parser.add_argument("resources", type=Path, help="build/<stack>/resources.json from tools.render")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    parser.add_argument("--production-stack", action="append", dest="production_stacks",
                        help=f"stack names judged as production (default: {', '.join(DEFAULT_PRODUCTION_STACKS)})")
    args = parser.parse_args(argv)
    try:
        document = json.loads(args.resources.read_text())
        report = evaluate_document(document, args.production_stacks or DEFAULT_PRODUCTION_STACKS)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"error: cannot evaluate {args.resources}: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_json(), indent=2) if args.json else report.as_text())
    return 1 if report.mandatory_failures else 0


if __name__ == "__main__":
    sys.exit(main())
