"""The engine's floor for bench/preview.py: a Pulumi program with no components and no logic that
registers the custom resources of a rendered `resources.json` with the same types, names, inputs
and providers. `pulumi preview` of it costs what the engine, the language host and the providers
cost for that stack, and nothing of ours.

With AIWFE_FLAT_SDK_IMPORTS=1 it first imports the provider SDK modules the program's resource types
live in (pulumi_gcp.compute, pulumi_kubernetes.apps.v1, ...): the floor of any program written
with those SDKs, which load each module on first use."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pulumi


def sdk_module(type_token: str) -> str:
    """`kubernetes:apps/v1:Deployment` -> `pulumi_kubernetes.apps.v1`; CRDs -> apiextensions."""
    package, module, _ = type_token.split(":")
    if package == "kubernetes":
        group, _, version = module.rpartition("/")
        group = group.removesuffix(".k8s.io") if group else "core"
        return f"pulumi_kubernetes.{group}.{version}" if "." not in group else "pulumi_kubernetes.apiextensions"
    first = module.split("/")[0]
    return f"pulumi_{package}" if first == "index" else f"pulumi_{package}.{first}"


def main() -> None:
    document = json.loads(Path(os.environ["AIWFE_FLAT_RESOURCES"]).read_text())
    resources = [r for r in document["resources"] if r["custom"]]
    if os.environ.get("AIWFE_FLAT_SDK_IMPORTS") == "1":
        for name in sorted({sdk_module(r["type"]) for r in resources if not r["type"].startswith("pulumi:")}):
            importlib.import_module(name)
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


if __name__ == "__main__":  # the CLI runs a program as __main__
    main()
