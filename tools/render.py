"""Offline render: run the real program under the Pulumi SDK's mock engine, no cloud needed.

    python -m tools.render --stack staging --out build/staging

writes `resources.json` (every declared resource, inputs as the provider receives them),
`manifests/` (one YAML document per Kubernetes object; those carrying a masked secret go to
`masked/` so that applying `manifests/` can never overwrite a real secret) and the policy pack's verdicts
(`policy-report.json`, `policy-report.txt`) under the stack's pack config (`policy-config.json`, the
file `pulumi preview --policy-pack-config` takes). Secret values are replaced by `[secret]` in all of
them. Exit code 1 when a mandatory policy is violated, 2 when the stack's config is invalid.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from policies.aiwfe_policies.engine import RuleError
from stacks import policy_config, stack_yaml
from stacks import settings as stack_settings
from stacks.flows import FlowEndError
from stacks.mock_run import (  # noqa: F401 (the render's public names, used by the tests and benches)
    SECRET_MARKER,
    EchoMocks,
    ExportError,
    RecordingMonitor,
    Registration,
    mask_secrets,
    platform_program,
    reveal_secrets,
    run_program,
)
from stacks.stack_file import ROOT, StackConfig, load_stack_config, settings_of

FORMAT_VERSION = 1


class _ManifestDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter when PyYAML has it (the wheels do); multi-line strings as `|` blocks so
    rendered config files (nginx.conf, ...) read as files."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_ManifestDumper.add_representer(str, _represent_str)
def resources_document(config: StackConfig, registrations: list[Registration]) -> dict[str, Any]:
    return {
        "formatVersion": FORMAT_VERSION,
        "stack": config.stack,
        "project": config.project,
        # Registration order depends on async scheduling; URN order is stable across runs.
        "resources": [r.as_json() for r in sorted(registrations, key=lambda r: r.urn)],
    }


# kubectl applies a folder in file-name order: namespaces and config before what uses them.
KIND_ORDER = ("Namespace", "ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim", "Service",
              "StatefulSet", "Deployment", "Job", "CronJob", "HorizontalPodAutoscaler",
              "PodDisruptionBudget", "NetworkPolicy")


def kubernetes_manifest(resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Kubernetes object a pulumi-kubernetes resource declares (None for other resources).

    pulumi-kubernetes puts `apiVersion` and `kind` into every object's inputs."""
    props = resource["props"]
    if not resource["type"].startswith("kubernetes:") or not resource["custom"] or "kind" not in props:
        return None
    return _normalise_numbers(dict(props))


def _normalise_numbers(value: Any) -> Any:
    """The wire carries every number as a float; Kubernetes schemas want integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_numbers(v) for v in value]
    return value


# What a render writes into its output folder; nothing else there is ever deleted.
OUTPUT_ENTRIES = ("resources.json", "manifests", "masked", "policy-config.json", "policy-report.json",
                  "policy-report.txt")


class OutputFolderError(ValueError):
    """The --out folder holds something other than an earlier render."""


def prepare_output(out: Path) -> None:
    """Clear an earlier render in `out`; refuse a folder holding anything else."""
    if out.exists():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_ENTRIES)
        if foreign:
            raise OutputFolderError(f"{out} holds files a render did not write ({', '.join(foreign[:5])}); "
                                    "choose an empty or render-only folder")
        for name in OUTPUT_ENTRIES:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def carries_masked_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(carries_masked_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(carries_masked_secret(v) for v in value)
    return value == SECRET_MARKER


def write_outputs(document: dict[str, Any], out: Path) -> list[Path]:
    """Write resources.json, manifests/ and masked/; return every object file written.

    Objects that carry a masked secret go to masked/ instead of manifests/: applying them would
    overwrite the real value with the marker, so `kubectl apply -f manifests/` stays safe."""
    prepare_output(out)
    (out / "resources.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    paths = []
    for resource in document["resources"]:
        manifest = kubernetes_manifest(resource)
        if manifest is None:
            continue
        kind = manifest["kind"]
        order = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        meta = manifest.get("metadata", {})
        parts = [f"{order:02d}", kind.lower(), meta.get("namespace") or "cluster", meta.get("name", "")]
        folder = out / ("masked" if carries_masked_secret(manifest) else "manifests")
        folder.mkdir(exist_ok=True)
        path = folder / ("-".join(str(p) for p in parts if p) + ".yaml")
        if path.exists():
            raise ValueError(f"two Kubernetes objects render to {path.name}")
        path.write_text(yaml.dump(manifest, Dumper=_ManifestDumper, sort_keys=True))
        paths.append(path)
    return sorted(paths)


@dataclass
class RenderResult:
    document: dict[str, Any]
    manifests: list[Path]
    report: Any


def render(stack: str, out: Path, program: Callable[[], Any] = platform_program,
           config: StackConfig | None = None) -> RenderResult:
    """Render `stack` into `out` and evaluate the policy pack on it."""
    from policies.aiwfe_policies import offline

    config = config or load_stack_config(stack)
    registrations = run_program(program, config)
    flows = policy_config.PlatformFlows.from_exports()
    document = resources_document(config, registrations)
    paths = write_outputs(document, out)
    pack_config = policy_config.write(settings_of(config), flows, out / policy_config.FILE_NAME)
    report = offline.evaluate_document(document, config=offline.load_config(pack_config))
    (out / "policy-report.json").write_text(json.dumps(report.as_json(), indent=2) + "\n")
    (out / "policy-report.txt").write_text(report.as_text() + "\n")
    return RenderResult(document=document, manifests=paths, report=report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name (a Pulumi.<stack>.yaml must exist)")
    parser.add_argument("--out", type=Path, help="output folder (default build/<stack>)")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "build" / args.stack
    # Everything imported so far lives until exit: keep the collector from rescanning it (a short
    # CLI run otherwise spends a sixth of its time in GC; see bench/render.py).
    gc.freeze()
    try:
        result = render(args.stack, out)
    except stack_settings.SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, OutputFolderError, stack_yaml.StackFileError, RuleError,
            policy_config.MissingFlowsError, FlowEndError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"rendered stack {args.stack}: {len(result.document['resources'])} resources, "
          f"{len(result.manifests)} manifests in {out}")
    print(result.report.as_text())
    # Again for the SDK modules the program loaded lazily: exit then skips collecting them.
    gc.freeze()
    return 1 if result.report.mandatory_failures else 0


if __name__ == "__main__":
    sys.exit(main())
