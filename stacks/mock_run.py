"""Run the program under the Pulumi SDK's mock engine, no cloud needed: what it registers (with
the resource options a provider never sees) and what it exports.

`tools.render` writes the render from it; `stacks.policy_config` reads the flows the program exports.
Secrets stay in their wire wrapper here; `mask_secrets` is what anything written out goes through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.output import contains_unknowns
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from stacks.stack_file import StackConfig

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


_STACK_TYPE = "pulumi:pulumi:Stack"


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also recording each request with its resource options
    (`Mocks.new_resource` never sees protect, dependencies or the parent)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != _STACK_TYPE:
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


def computed_outputs(type_: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
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
        return f"{args.name}-id", {**computed_outputs(args.typ, args.name, args.inputs), **dict(args.inputs)}

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


class ExportError(ValueError):
    """An export the caller reads is secret or not known after the run."""


def exported_names() -> list[str]:
    """What the program just run exported."""
    return sorted(_root_outputs())


def stack_exports(*names: str) -> dict[str, Any]:
    """The plain values the program just run exported under `names` (those it exported).

    Raises ExportError for a secret (its value would end up in a file) or a value still unknown."""
    exported = _root_outputs()
    values = {}
    for name in names:
        if name not in exported:
            continue
        output = pulumi.Output.from_input(exported[name])
        if _sync_await(output.is_secret()):
            raise ExportError(f"stack output {name} is secret; only plain values are read from the program")
        value = _sync_await(output.future(with_unknowns=True))
        if contains_unknowns(value):
            raise ExportError(f"stack output {name} is not known after the offline run")
        values[name] = value
    return values


def _root_outputs() -> dict[str, Any]:
    # The root stack resource's `outputs` (what `pulumi.export` adds): under the mock engine they are
    # never registered (the SDK's mock setup registers the stack before the program runs).
    return dict(getattr(pulumi.runtime.get_root_resource(), "outputs", None) or {})


def platform_program() -> None:
    """The stack's program, imported on run (a measuring child charges the imports to the run)."""
    from stacks.platform import main

    main()
