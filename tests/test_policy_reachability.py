"""Cases for the reachability rules (policies/aiwfe_policies/rules/reachability.py): each starts from a
stack as the program renders it, judged with that stack's own pack config (its intended flows from
stacks/flows.py), and breaks one allowance or opens one thing to everyone."""

from __future__ import annotations

import pytest

from policies.aiwfe_policies.rules.reachability import ALLOW_ALL, FLOWS
from tests.policy_cases import Case, bad, ok, run
from tests.rendered_stacks import rendered_wires, stack_pack_config

PROD = stack_pack_config("prod")
STAGING = stack_pack_config("staging")
WS_NETPOL, REDIS_NETPOL = "websocket-network-policy", "redis-cluster-network-policy"
REDIS_AUTHZ, WS_AUTHZ = "mesh-redis-authorization", "mesh-websocket-authorization"
WS_PRINCIPAL = "cluster.local/ns/aiwfe/sa/websocket"


def prod(edits: dict | None = None) -> list:
    return rendered_wires("prod", edits)


CASES: list[Case] = [
    ok(FLOWS, "prod-as-rendered", prod(), config=PROD),
    ok(FLOWS, "staging-as-rendered", rendered_wires("staging"), stack="staging", config=STAGING),
    bad(FLOWS, "websocket-egress-to-redis-on-the-wrong-port", prod({WS_NETPOL: {
        "spec.egress.2.ports": [{"port": 6380.0, "protocol": "TCP"}]}}), config=PROD),
    bad(FLOWS, "redis-admits-websocket-from-another-namespace", prod({REDIS_NETPOL: {
        "spec.ingress.0.from.0.namespaceSelector.matchLabels": {"kubernetes.io/metadata.name": "aiwfe-x"}}}),
        config=PROD),
    bad(FLOWS, "dns-over-udp-no-longer-allowed", prod({WS_NETPOL: {
        "spec.egress.0.ports": [{"port": 53.0, "protocol": "TCP"}]}}), config=PROD),
    bad(FLOWS, "redis-authorization-names-another-service-account", prod({REDIS_AUTHZ: {
        "spec.rules.0.from.0.source.principals.0": "cluster.local/ns/aiwfe/sa/websocket-v2"}}), config=PROD),
    bad(FLOWS, "redis-authorization-for-another-port", prod({REDIS_AUTHZ: {
        "spec.rules.0.to.0.operation.ports": ["6380"]}}), config=PROD),
    bad(FLOWS, "plaintext-to-the-strict-websocket-pods", prod({"mesh-websocket-destination": {
        "spec.trafficPolicy.tls": {"mode": "DISABLE"}}}), config=PROD),
    # The bus port bypasses the sidecar (excludeInboundPorts): no AuthorizationPolicy needs to name it.
    ok(FLOWS, "redis-authorization-names-6379-only", prod({REDIS_AUTHZ: {
        "spec.rules.0.to.0.operation.ports": ["6379"]}}), config=PROD),
    ok(ALLOW_ALL, "prod-as-rendered", prod(), config=PROD),
    ok(ALLOW_ALL, "staging-as-rendered", rendered_wires("staging"), stack="staging", config=STAGING),
    bad(ALLOW_ALL, "any-principal-into-redis", prod({REDIS_AUTHZ: {
        "spec.rules.0.from.0.source.principals": ["*"]}}), config=PROD),
    bad(ALLOW_ALL, "an-empty-rule-on-the-websocket-pods", prod({WS_AUTHZ: {"spec.rules": [{}]}}), config=PROD),
    bad(ALLOW_ALL, "a-whole-namespace-into-redis", prod({REDIS_NETPOL: {
        "spec.ingress.0.from.0": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "aiwfe"}}}}}),
        config=PROD),
    bad(ALLOW_ALL, "every-pod-into-redis", prod({REDIS_NETPOL: {"spec.ingress.1.from": []}}), config=PROD),
]


@pytest.mark.parametrize("case", [c for c in CASES if not c.passes], ids=lambda c: c.why)
def test_each_break_is_named_by_its_flow_and_object(case: Case) -> None:
    messages = [v.message for v in run(case).violations if v.policy == case.rule]
    assert messages
    if case.rule == FLOWS:
        assert all(m.startswith("flow ") and (" NetworkPolicy " in m or " AuthorizationPolicy " in m
                                              or " DestinationRule " in m) for m in messages), messages


def test_the_worked_example_names_flow_port_and_policy() -> None:
    case = next(c for c in CASES if c.why == "websocket-egress-to-redis-on-the-wrong-port")
    assert [v.message for v in run(case).violations if v.policy == FLOWS] == [
        "flow websocket -> redis-cluster:6379: NetworkPolicy aiwfe/websocket allows no egress to "
        "aiwfe-redis/redis-cluster on port 6379 (nor does any other policy selecting it)"]


def test_the_stacks_declare_their_flows() -> None:
    flows = PROD[FLOWS]["flows"]
    names = {f["name"] for f in flows}
    assert {"ingress-gateway -> websocket", "websocket -> redis-cluster", "redis-cluster -> redis-cluster",
            "keycloak -> keycloak", "scraper -> redis-cluster", "websocket -> kube-dns"} <= names
    # Staging keeps Keycloak's database in the cluster; prod's is Cloud SQL, outside the mesh.
    assert "keycloak -> keycloak-postgres" in {f["name"] for f in STAGING[FLOWS]["flows"]}
    assert "keycloak -> keycloak-postgres" not in names
