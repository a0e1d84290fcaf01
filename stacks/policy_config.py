"""The policy pack's config for one stack, from its settings: enforcement levels (`policy.advisory`),
the capacity rules' targets (`targets`, `keycloak.sizing`) and the mesh's root namespace. The file is what

    pulumi preview --policy-pack policies --policy-pack-config build/<stack>/policy-config.json

takes; `tools.render` and `tools.deploy` write it, and the offline runner reads the same file.

    python -m stacks.policy_config --stack prod [--out build/prod/policy-config.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from policies.aiwfe_policies.catalog import all_rules
from policies.aiwfe_policies.engine import ADVISORY, MANDATORY, PackConfig
from policies.aiwfe_policies.rules import baseline, capacity, reachability
from stacks.flows import data_stores, intended_flows
from stacks.settings import Settings, SettingsError
from stacks.stack_file import ROOT, load_stack_config, settings_of
from stacks.stack_yaml import StackFileError

FILE_NAME = "policy-config.json"
STRICT_NAMESPACES = "istio-security-v1-peerauthentication-require-strict-namespaces"


def pack_config(settings: Settings) -> PackConfig:
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
        reachability.FLOWS: {"flows": intended_flows(settings), "trustDomain": settings.mesh.trust_domain},
        reachability.ALLOW_ALL: {"dataStores": data_stores(settings)},
        baseline.GATEWAY_PORTS: {"gatewayTargetPort": settings.load_balancer.gateway_http_port},
    }
    for name, values in options.items():
        entry = document.get(name)
        document[name] = {**values, **({"enforcementLevel": entry} if isinstance(entry, str) else {})}
    return PackConfig.parse(document, {rule.name: rule for rule in all_rules()})


def write(settings: Settings, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pack_config(settings).as_json(), indent=2, sort_keys=True) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the policy pack config of a stack.")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", type=Path, help=f"default build/<stack>/{FILE_NAME}")
    args = parser.parse_args(argv)
    try:
        settings = settings_of(load_stack_config(args.stack))
    except (SettingsError, FileNotFoundError, StackFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(write(settings, args.out or ROOT / "build" / args.stack / FILE_NAME))
    return 0


if __name__ == "__main__":
    sys.exit(main())
