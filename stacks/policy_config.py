"""The policy pack's config for one stack, from its settings: enforcement levels (`policy.advisory`),
the capacity rules' targets (`targets`, `keycloak.sizing`) and the mesh's root namespace; and from
what the program exports: the flows the platform needs and its data stores (`stacks/flows.py`, built
from the components' outputs, so this module runs the program under the mock engine). The file is what

    pulumi preview --policy-pack policies --policy-pack-config build/<stack>/policy-config.json

takes; `tools.render` and `tools.deploy` write it, and the offline runner reads the same file.

    python -m stacks.policy_config --stack prod [--out build/prod/policy-config.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.aiwfe_policies.catalog import all_rules
from policies.aiwfe_policies.engine import ADVISORY, MANDATORY, PackConfig
from policies.aiwfe_policies.rules import baseline, capacity, reachability
from stacks import mock_run
from stacks.flows import DATA_STORES_OUTPUT, FLOWS_OUTPUT, FlowEndError
from stacks.settings import Settings, SettingsError
from stacks.stack_file import ROOT, StackConfig, load_stack_config, settings_of
from stacks.stack_yaml import StackFileError

FILE_NAME = "policy-config.json"
STRICT_NAMESPACES = "istio-security-v1-peerauthentication-require-strict-namespaces"


class MissingFlowsError(ValueError):
    """The program exported no flows (it is not the platform program, or it failed early)."""


@dataclass(frozen=True)
class PlatformFlows:
    """What the program exports for the reachability rules."""

    flows: list[dict[str, Any]]
    data_stores: list[dict[str, Any]]

    @classmethod
    def from_exports(cls) -> PlatformFlows:
        """From the program the mock engine just ran."""
        exports = mock_run.stack_exports(FLOWS_OUTPUT, DATA_STORES_OUTPUT)
        try:
            return cls.from_outputs(exports)
        except MissingFlowsError as error:
            raise MissingFlowsError(f"{error} (it exported: {', '.join(mock_run.exported_names()) or 'nothing'})") \
                from None

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> PlatformFlows:
        missing = [name for name in (FLOWS_OUTPUT, DATA_STORES_OUTPUT) if not isinstance(outputs.get(name), list)]
        if missing:
            raise MissingFlowsError(f"the program exported no {', '.join(missing)}")
        return cls(flows=outputs[FLOWS_OUTPUT], data_stores=outputs[DATA_STORES_OUTPUT])


def program_flows(config: StackConfig, program: Callable[[], None] = mock_run.platform_program) -> PlatformFlows:
    """Run the program offline (mock engine) and read the flows it exports."""
    mock_run.run_program(program, config)
    return PlatformFlows.from_exports()


def pack_config(settings: Settings, platform: PlatformFlows) -> PackConfig:
    """Validated against the pack's rules and options, like a hand-written config would be."""
    targets, mix = settings.targets, settings.keycloak.sizing
    document: dict[str, object] = {"all": MANDATORY}
    document.update({name: ADVISORY for name in settings.policy.advisory})
    options = {
        capacity.WEBSOCKET_CAPACITY: {"targetConcurrentConnections": targets.concurrent_connections},
        capacity.KEYCLOAK_CAPACITY: {
            "targetAuthenticationsPerMinute": targets.authentications_per_minute,
            "passwordLoginPercent": mix.password_login_percent,
            "clientCredentialsPercent": mix.client_credentials_percent,
            "refreshPercent": mix.refresh_percent,
        },
        capacity.REDIS_CAPACITY: {"targetSessionDataBytes": targets.session_data_bytes},
        STRICT_NAMESPACES: {"meshRootNamespace": settings.mesh.istiod_namespace},
        reachability.FLOWS: {"flows": platform.flows, "trustDomain": settings.mesh.trust_domain},
        reachability.ALLOW_ALL: {"dataStores": platform.data_stores},
        baseline.GATEWAY_PORTS: {"gatewayTargetPort": settings.load_balancer.gateway_http_port},
    }
    for name, values in options.items():
        entry = document.get(name)
        document[name] = {**values, **({"enforcementLevel": entry} if isinstance(entry, str) else {})}
    return PackConfig.parse(document, {rule.name: rule for rule in all_rules()})


def write(settings: Settings, platform: PlatformFlows, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pack_config(settings, platform).as_json(), indent=2, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the policy pack config of a stack.")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", type=Path, help=f"default build/<stack>/{FILE_NAME}")
    args = parser.parse_args(argv)
    try:
        config = load_stack_config(args.stack)
        settings = settings_of(config)
        platform = program_flows(config)
    except (SettingsError, FileNotFoundError, StackFileError, MissingFlowsError, FlowEndError,
            mock_run.ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(write(settings, platform, args.out or ROOT / "build" / args.stack / FILE_NAME))
    return 0


if __name__ == "__main__":
    sys.exit(main())
