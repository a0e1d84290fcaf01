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
import hashlib
import json
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from policies.aiwfe_policies.engine import RuleError
from stacks import policy_config, stack_yaml
from stacks import settings as stack_settings
from stacks.stack_file import ROOT, StackConfig, load_stack_config, settings_of

FORMAT_VERSION = 1


class _ManifestDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter when PyYAML has it (the wheels do); multi-line strings as `|` blocks so
    rendered config files (nginx.conf, ...) read as files."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_ManifestDumper.add_representer(str, _represent_str)
SECRET_MARKER = "[secret]"  # noqa: S105 (the mask, not a secret)
# Pulumi's wire signature of a secret value (sdk/go/common/resource/properties.go).
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105


@dataclass(frozen=True)
class Registration:
    """One RegisterResource call, as the engine would receive it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    props: dict[str, Any]
    """Wire form: camelCase, numbers as floats, secrets still wrapped in their signature object."""
    dependencies: list[str]
    protect: bool
    retain_on_delete: bool
    provider: str

    def as_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "custom": self.custom,
            "props": mask_secrets(self.props),
            "dependencies": self.dependencies,
            "protect": self.protect,
            "retainOnDelete": self.retain_on_delete,
            "provider": self.provider,
        }


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also recording each request with its resource options
    (`Mocks.new_resource` never sees protect, dependencies or the parent)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent,
                custom=bool(request.custom),
                props=json_format.MessageToDict(request.object),
                dependencies=sorted(request.dependencies),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                provider=request.provider,
            ))
        return response


# Offline stand-ins for what a provider computes, per resource type (documentation addresses).
_MOCK_IPV4 = "203.0.113.10"  # TEST-NET-3 (RFC 5737)


def _computed_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What the real provider would add to a resource's state, shaped like it, never a real value."""
    if type_.startswith("random:index/random"):
        length = int(inputs.get("length", 32))
        digest = hashlib.sha256(f"{type_}/{name}".encode()).hexdigest()
        value = (digest * (length // len(digest) + 1))[:length]
        return {"result": value, "hex": value, "b64Std": value, "b64Url": value}
    if type_.startswith("gcp:"):
        resource_name = str(inputs.get("name") or f"{name}-mock")
        outputs: dict[str, Any] = {
            "name": resource_name,
            "selfLink": f"https://www.googleapis.com/mock/{type_.split(':')[1]}/{resource_name}",
        }
        if type_ in ("gcp:compute/globalAddress:GlobalAddress", "gcp:compute/address:Address"):
            outputs["address"] = inputs.get("address") or _MOCK_IPV4
        if type_ == "gcp:serviceaccount/account:Account":
            outputs["email"] = f"{inputs.get('accountId')}@mock-project.iam.gserviceaccount.com"
            outputs["name"] = f"projects/mock-project/serviceAccounts/{outputs['email']}"
        if type_ == "gcp:sql/databaseInstance:DatabaseInstance":
            outputs["connectionName"] = f"mock-project:mock-region:{resource_name}"
            outputs["privateIpAddress"] = "10.0.0.5"
        return outputs
    return {}


class EchoMocks(pulumi.runtime.Mocks):
    """Every resource's state is its inputs, plus stand-ins for what providers compute
    (generated passwords, self links, addresses): names given in metadata resolve as they would."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        return f"{args.name}-id", {**_computed_outputs(args.typ, args.name, args.inputs), **dict(args.inputs)}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        return {}, []


def _replace_secrets(value: Any, replace: Callable[[Any], Any]) -> Any:
    """Wire-form props with each secret's wrapper replaced by `replace(its value)`."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return replace(value.get("value"))
        return {k: _replace_secrets(v, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_secrets(v, replace) for v in value]
    return value


def mask_secrets(value: Any) -> Any:
    """Replace every value inside a secret by the marker (nothing secret is ever written out).

    The shape of a secret map or list is kept (its keys are not secret), so a masked Kubernetes
    Secret still validates and shows which keys it carries."""
    return _replace_secrets(value, _mask_leaves)


def reveal_secrets(value: Any) -> Any:
    """Wire-form props with each secret replaced by its value (for tests that start real servers
    with what the cluster's Secrets would hold; never written out)."""
    return _replace_secrets(value, reveal_secrets)


def _mask_leaves(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_leaves(v) for k, v in value.items() if k != _SECRET_SIG_KEY}
    if isinstance(value, list):
        return [_mask_leaves(v) for v in value]
    return SECRET_MARKER


def run_program(program: Callable[[], Any], config: StackConfig,
                monitor: RecordingMonitor | None = None) -> list[Registration]:
    """Run `program` under the mock engine with `config`; return what it registered.

    Mirrors `pulumi.runtime.test`: the same runtime entry (`run_pulumi_func`) the SDK uses, so
    errors raised by the program, or inside an `apply`, propagate here. Pass a `monitor` to
    inspect what was registered even when the program fails.
    """
    pulumi.runtime.reset_options(project=config.project, stack=config.stack)
    pulumi.runtime.set_all_config(config.values, config.secret_keys)
    monitor = monitor or RecordingMonitor(EchoMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project=config.project, stack=config.stack,
                             preview=False, monitor=monitor)
    _sync_await(run_pulumi_func(program))
    return monitor.registrations


def platform_program() -> None:
    from stacks.platform import main

    main()


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
    document = resources_document(config, registrations)
    paths = write_outputs(document, out)
    pack_config = policy_config.write(settings_of(config), out / policy_config.FILE_NAME)
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
    except (FileNotFoundError, OutputFolderError, stack_yaml.StackFileError, RuleError) as error:
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
