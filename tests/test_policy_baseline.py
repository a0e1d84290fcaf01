"""Cases for the baseline rules (policies/aiwfe_policies/rules/baseline.py): GCP exposure, the
identity service's production hardening, and a grace period that holds the shutdown. Each starts
from a stack as the program renders it and changes one thing."""

from __future__ import annotations

import json
from typing import Any

from tests.policy_cases import Case, bad, ok
from tests.rendered_stacks import rendered_document, rendered_wires, stack_pack_config

FIREWALL = "gcp-compute-firewall-require-google-lb-sources"
GATEWAY_PORTS = "gcp-compute-firewall-require-gateway-ports"
SQL_PRIVATE = "gcp-sql-databaseinstance-require-private-ip"
SQL_REGIONAL = "gcp-sql-databaseinstance-require-regional-availability"
REALM = "keycloak-realm-require-production-hardening"
CACHE = "keycloak-workload-require-clustered-cache"
GRACE = "kubernetes-workload-require-grace-covers-shutdown"
PROD, STAGING = stack_pack_config("prod"), stack_pack_config("staging")
FW, SQL = "load-balancer-allow-google-lb", "keycloak-sql-instance"
KC, WS = "keycloak-deployment", "websocket-deployment"
POD = "spec.template.spec."


def prod(edits: dict | None = None) -> list:
    return rendered_wires("prod", edits)


def realm_with(**changes: Any) -> dict[str, Any]:
    """The prod realm ConfigMap's data with the realm's top-level fields changed."""
    data = next(r for r in rendered_document("prod")["resources"] if r["name"] == "keycloak-realm")["props"]["data"]
    (key,) = data
    return {"data": {key: json.dumps({**json.loads(data[key]), **changes})}}


def keycloak_env_index(name: str) -> int:
    deployment = next(r for r in rendered_document("prod")["resources"] if r["name"] == KC)
    env = deployment["props"]["spec"]["template"]["spec"]["containers"][0]["env"]
    return next(i for i, e in enumerate(env) if e["name"] == name)


CASES: list[Case] = [
    *(ok(rule, "prod-as-rendered", prod(), config=PROD) for rule in (FIREWALL, GATEWAY_PORTS, SQL_PRIVATE,
                                                                      SQL_REGIONAL, REALM, CACHE, GRACE)),
    *(ok(rule, "staging-as-rendered", rendered_wires("staging"), stack="staging", config=STAGING)
      for rule in (FIREWALL, GATEWAY_PORTS, REALM, CACHE, GRACE)),
    # The issue this rule exists for: the legacy gateway's 8080 opened while the Helm gateway serves on 80.
    bad(GATEWAY_PORTS, "legacy-port-opened-for-the-helm-gateway",
        prod({FW: {"allows": [{"protocol": "tcp", "ports": ["8080", "15021"]}]}}), config=PROD),
    bad(GATEWAY_PORTS, "health-port-closed", prod({FW: {"allows": [{"protocol": "tcp", "ports": ["80"]}]}}),
        config=PROD),
    bad(GATEWAY_PORTS, "open-to-one-google-range-only", prod({FW: {"sourceRanges": ["35.191.0.0/16"]}}),
        config=PROD),
    bad(GATEWAY_PORTS, "firewall-disabled", prod({FW: {"disabled": True}}), config=PROD),
    ok(GATEWAY_PORTS, "a-port-range-and-the-legacy-port", prod({FW: {"allows": [
        {"protocol": "tcp", "ports": ["80-8080"]}, {"protocol": "tcp", "ports": ["15021"]}]}}),
        config={**PROD, GATEWAY_PORTS: {"gatewayTargetPort": 8080}}),
    bad(GATEWAY_PORTS, "a-malformed-port-range-opens-nothing", prod({FW: {"allows": [
        {"protocol": "tcp", "ports": ["80-http", "15021"]}]}}), config=PROD),
    ok(GATEWAY_PORTS, "all-tcp-ports", prod({FW: {"allows": [{"protocol": "tcp"}]}}), config=PROD),
    bad(GATEWAY_PORTS, "udp-only", prod({FW: {"allows": [{"protocol": "udp", "ports": ["80", "15021"]}]}}),
        config=PROD),
    ok(FIREWALL, "google-ranges-in-smaller-blocks", prod({FW: {"sourceRanges": [
        "35.191.0.0/17", "35.191.128.0/17", "130.211.0.0/22"]}}), config=PROD),
    bad(FIREWALL, "open-to-the-internet", prod({FW: {"sourceRanges": ["0.0.0.0/0"]}}), config=PROD),
    bad(FIREWALL, "a-wider-google-range", prod({FW: {"sourceRanges": ["130.211.0.0/16"]}}),
        also=(GATEWAY_PORTS,), config=PROD),
    bad(FIREWALL, "tags-next-to-the-ranges", prod({FW: {"sourceTags": ["bastion"]}}), config=PROD),
    bad(SQL_PRIVATE, "a-public-ip", prod({SQL: {"settings.ipConfiguration.ipv4Enabled": True}}), config=PROD),
    bad(SQL_REGIONAL, "zonal", prod({SQL: {"settings.availabilityType": "ZONAL"}}), config=PROD),
    bad(REALM, "no-brute-force-detection", prod({"keycloak-realm": realm_with(bruteForceProtected=False)}),
        config=PROD),
    bad(REALM, "tls-not-required", prod({"keycloak-realm": realm_with(sslRequired="none")}), config=PROD),
    bad(REALM, "self-registration", prod({"keycloak-realm": realm_with(registrationAllowed=True)}), config=PROD),
    bad(CACHE, "local-caches-on-three-replicas", prod({KC: {
        f"{POD}containers.0.env.{keycloak_env_index('KC_CACHE')}.value": "local"}}), config=PROD),
    bad(GRACE, "grace-shorter-than-pause-and-drain", prod({WS: {f"{POD}terminationGracePeriodSeconds": 30.0}}),
        config=PROD),
]
