"""The engine's floor for bench/preview.py: a Pulumi program with no components and no logic that
registers the custom resources of a rendered `resources.json` with the same types, names, inputs
and providers. `pulumi preview` of it costs what the engine, the language host and the providers
cost for that stack, and nothing of ours."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pulumi


def main() -> None:
    document = json.loads(Path(os.environ["AIWFE_FLAT_RESOURCES"]).read_text())
    resources = [r for r in document["resources"] if r["custom"]]
    providers: dict[str, pulumi.ProviderResource] = {}
    for r in resources:
        if r["type"].startswith("pulumi:providers:"):
            providers[r["urn"]] = pulumi.ProviderResource(r["type"].split(":")[2], r["name"], r["props"])
    for r in resources:
        if r["type"].startswith("pulumi:providers:"):
            continue
        # A provider reference is "<urn>::<id>".
        provider = providers.get(r["provider"].rsplit("::", 1)[0]) if r["provider"] else None
        pulumi.CustomResource(r["type"], r["name"], r["props"], opts=pulumi.ResourceOptions(provider=provider))


main()
