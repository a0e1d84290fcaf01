"""Mutation test of the whole pack on the rendered prod stack.

Take `resources.json` as the render writes it, apply one targeted breaking change per rule, and run
the pack under prod's own pack config: each mutation must fail with the rule it targets (others may
fail too: the cross-layer rules see the same break on the request's path), and the unmutated stack
must pass. A rule without a mutation here fails `test_every_rule_has_a_mutation`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policies.aiwfe_policies import offline
from policies.aiwfe_policies.catalog import all_rules
from policies.aiwfe_policies.engine import MANDATORY, PackConfig

Doc = dict[str, Any]


def find(doc: Doc, name: str) -> dict[str, Any]:
    return next(r for r in doc["resources"] if r["name"] == name)


def props(doc: Doc, name: str) -> dict[str, Any]:
    return find(doc, name)["props"]


def pod(doc: Doc, name: str) -> dict[str, Any]:
    return props(doc, name)["spec"]["template"]["spec"]


def container(doc: Doc, name: str, index: int = 0) -> dict[str, Any]:
    return pod(doc, name)["containers"][index]


def drop(doc: Doc, *names: str) -> None:
    doc["resources"] = [r for r in doc["resources"] if r["name"] not in names]


def edit_conf(doc: Doc, old: str, new: str) -> None:
    data = props(doc, "redis-cluster-config")["data"]
    assert old in data["redis.conf"], old
    data["redis.conf"] = data["redis.conf"].replace(old, new)


def edit_realm(doc: Doc, change: Callable[[dict[str, Any]], None]) -> None:
    data = props(doc, "keycloak-realm")["data"]
    (key,) = data
    realm = json.loads(data[key])
    change(realm)
    data[key] = json.dumps(realm)


def client(realm: dict[str, Any], client_id: str) -> dict[str, Any]:
    return next(c for c in realm["clients"] if c["clientId"] == client_id)


def sc(doc: Doc, name: str) -> dict[str, Any]:
    return container(doc, name)["securityContext"]


WS, USER, KC = "websocket-deployment", "user-frontend-deployment", "keycloak-deployment"
REDIS_STATEFULSETS = ("redis-cluster-statefulset-b", "redis-cluster-statefulset-c", "redis-cluster-statefulset-d")

MUTATIONS: dict[str, tuple[str, Callable[[Doc], None]]] = {
    "kubernetes-workload-require-run-as-non-root": (
        "websocket container may run as root", lambda d: sc(d, WS).update(runAsNonRoot=False, runAsUser=0.0)),
    "kubernetes-workload-disallow-privilege-escalation": (
        "privilege escalation allowed", lambda d: sc(d, WS).update(allowPrivilegeEscalation=True)),
    "kubernetes-workload-disallow-privileged": ("privileged container", lambda d: sc(d, WS).update(privileged=True)),
    "kubernetes-workload-require-read-only-root-filesystem": (
        "writable root filesystem", lambda d: sc(d, USER).update(readOnlyRootFilesystem=False)),
    "kubernetes-workload-require-drop-all-capabilities": (
        "NET_ADMIN added", lambda d: sc(d, WS).update(capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]})),
    "kubernetes-workload-require-seccomp-runtime-default": (
        "seccomp unconfined", lambda d: sc(d, WS).update(seccompProfile={"type": "Unconfined"})),
    "kubernetes-workload-disallow-host-namespaces": ("hostNetwork", lambda d: pod(d, WS).update(hostNetwork=True)),
    "kubernetes-workload-disallow-host-path": (
        "hostPath volume", lambda d: pod(d, USER)["volumes"].append({"name": "node", "hostPath": {"path": "/"}})),
    "kubernetes-workload-disallow-host-port": (
        "hostPort", lambda d: container(d, USER)["ports"][0].update(hostPort=8080.0)),
    "kubernetes-workload-disallow-service-account-token-automount": (
        "token automounted", lambda d: pod(d, USER).update(automountServiceAccountToken=True)),
    "kubernetes-workload-require-resources": (
        "no limits", lambda d: container(d, USER)["resources"].pop("limits")),
    "kubernetes-workload-require-probes": ("no liveness probe", lambda d: container(d, USER).pop("livenessProbe")),
    "kubernetes-workload-require-pinned-image": (
        "image :latest", lambda d: container(d, USER).update(image="ghcr.io/aiwfe/user-frontend:latest")),
    "kubernetes-workload-disallow-literal-secret-env": (
        "literal password env", lambda d: container(d, WS)["env"].append({"name": "DB_PASSWORD", "value": "hunter2"})),
    "kubernetes-workload-require-selector-match": (
        "selector misses the pods", lambda d: props(d, USER)["spec"]["selector"]["matchLabels"].update(app="other")),
    "kubernetes-workload-require-spread": (
        "no topology spread", lambda d: pod(d, USER).pop("topologySpreadConstraints")),
    "kubernetes-resource-require-explicit-namespace": (
        "ConfigMap in default", lambda d: props(d, "workloads-app-config")["metadata"].update(namespace="default")),
    "kubernetes-core-v1-service-disallow-external-exposure": (
        "Service type LoadBalancer", lambda d: props(d, "user-frontend-service")["spec"].update(type="LoadBalancer")),
    "kubernetes-autoscaling-v2-horizontalpodautoscaler-require-min-replicas": (
        "HPA min 1", lambda d: props(d, "websocket-autoscaler")["spec"].update(minReplicas=1.0)),
    "kubernetes-workload-require-disruption-budget": (
        "websocket PDB removed", lambda d: drop(d, "websocket-disruption-budget")),
    "kubernetes-workload-require-replicas": (
        "admin frontend at 1 replica", lambda d: props(d, "admin-frontend-deployment")["spec"].update(replicas=1.0)),
    "kubernetes-workload-require-network-policy": (
        "Redis NetworkPolicies removed", lambda d: drop(d, "redis-cluster-default-deny", "redis-cluster-network-policy",
                                                        "redis-cluster-bootstrap-network-policy")),
    "gcp-compute-websocket-backend-require-long-timeout": (
        "WebSocket backend timeout 30 s",
        lambda d: props(d, "load-balancer-websocket-backend").update(timeoutSec=30.0)),
    "gcp-compute-websocket-backend-disallow-iap-and-http2": (
        "HTTP2 backend", lambda d: props(d, "load-balancer-websocket-backend").update(protocol="HTTP2")),
    "gcp-compute-disallow-auth-header-rewrite": (
        "URL map removes Authorization", lambda d: props(d, "load-balancer-url-map")["pathMatchers"][0].update(
            headerAction={"requestHeadersToRemoves": ["Authorization"]})),
    "gcp-compute-disallow-unexpanded-header-placeholders": (
        "nginx variable in a custom header", lambda d: props(d, "load-balancer-web-backend").setdefault(
            "customRequestHeaders", []).append("X-User: $http_x_user")),
    "gcp-compute-require-tls-1-2": (
        "TLS 1.0", lambda d: props(d, "load-balancer-ssl-policy").update(minTlsVersion="TLS_1_0")),
    "gcp-compute-require-https-redirect": (
        "port 80 serves without redirect",
        lambda d: props(d, "load-balancer-http-redirect")["defaultUrlRedirect"].update(httpsRedirect=False)),
    "gcp-compute-backendservice-require-logging": (
        "logging off", lambda d: props(d, "load-balancer-web-backend")["logConfig"].update(enable=False)),
    "gcp-compute-backendservice-require-cloud-armor": (
        "no Cloud Armor", lambda d: props(d, "load-balancer-websocket-backend").pop("securityPolicy")),
    "gcp-compute-backendservice-require-health-check": (
        "no health check", lambda d: props(d, "load-balancer-web-backend").pop("healthChecks")),
    "istio-security-v1-peerauthentication-require-strict-mtls": (
        "STRICT -> PERMISSIVE", lambda d: props(d, "mesh-app-peer-authentication")["spec"]["mtls"].update(
            mode="PERMISSIVE")),
    "istio-security-v1-peerauthentication-require-strict-namespaces": (
        "app namespace's PeerAuthentication deleted", lambda d: drop(d, "mesh-app-peer-authentication")),
    "istio-security-v1-authorizationpolicy-require-per-namespace": (
        "Keycloak namespace's AuthorizationPolicies deleted",
        lambda d: drop(d, "mesh-keycloak-allow-nothing", "mesh-keycloak-authorization")),
    "istio-workload-disallow-sidecar-injection-disabled": (
        "Keycloak pods opt out of the sidecar",
        lambda d: props(d, KC)["spec"]["template"]["metadata"].setdefault("annotations", {}).update(
            {"sidecar.istio.io/inject": "false"})),
    "istio-networking-v1-virtualservice-require-websocket-route-without-timeout-and-retries": (
        "a retry on the WebSocket route", lambda d: props(d, "mesh-product-routes")["spec"]["http"][0].update(
            retries={"attempts": 2.0})),
    "istio-networking-v1-destinationrule-require-websocket-long-lived-connections": (
        "idle timeout 60 s", lambda d: props(d, "mesh-websocket-destination")["spec"]["trafficPolicy"][
            "connectionPool"]["tcp"].update(idleTimeout="60s")),
    "istio-networking-v1-destinationrule-require-outlier-detection": (
        "no outlier detection", lambda d: props(d, "mesh-keycloak-destination")["spec"]["trafficPolicy"].pop(
            "outlierDetection")),
    "istio-resource-disallow-deprecated-fields": (
        "consecutiveErrors", lambda d: props(d, "mesh-user-frontend-destination")["spec"]["trafficPolicy"][
            "outlierDetection"].update(consecutiveErrors=5.0)),
    "istio-networking-v1-disallow-wildcard-hosts": (
        "VirtualService host *", lambda d: props(d, "mesh-product-routes")["spec"].update(hosts=["*"])),
    "istio-security-v1-authorizationpolicy-require-jwt-on-public-routes": (
        "gateway DENY rule removed", lambda d: drop(d, "mesh-edge-require-jwt")),
    "istio-resource-disallow-auth-header-changes": (
        "Authorization set with a literal", lambda d: props(d, "mesh-product-routes")["spec"]["http"][0].update(
            headers={"request": {"set": {"Authorization": "Bearer static"}}})),
    "platform-flows-require-allowed-paths": (
        "WebSocket pods may reach Redis on 6380 only",
        lambda d: props(d, "websocket-network-policy")["spec"]["egress"][2].update(
            ports=[{"port": 6380.0, "protocol": "TCP"}])),
    "platform-network-disallow-allow-all": (
        "any principal into Redis", lambda d: props(d, "mesh-redis-authorization")["spec"]["rules"][0]["from"][0][
            "source"].update(principals=["*"])),
    "gcp-compute-firewall-require-google-lb-sources": (
        "the gateway firewall open to the internet",
        lambda d: props(d, "load-balancer-allow-google-lb").update(sourceRanges=["0.0.0.0/0"])),
    "gcp-compute-firewall-require-gateway-ports": (
        "the firewall opens the legacy gateway's 8080, the pods serve on 80",
        lambda d: props(d, "load-balancer-allow-google-lb").update(allows=[{"protocol": "tcp",
                                                                             "ports": ["8080", "15021"]}])),
    "gcp-sql-databaseinstance-require-private-ip": (
        "Cloud SQL with a public IP",
        lambda d: props(d, "keycloak-sql-instance")["settings"]["ipConfiguration"].update(ipv4Enabled=True)),
    "gcp-sql-databaseinstance-require-regional-availability": (
        "Cloud SQL zonal", lambda d: props(d, "keycloak-sql-instance")["settings"].update(availabilityType="ZONAL")),
    "keycloak-realm-require-production-hardening": (
        "brute-force detection off", lambda d: edit_realm(d, lambda r: r.update(bruteForceProtected=False))),
    "keycloak-workload-require-clustered-cache": (
        "local caches on three replicas", lambda d: next(e for e in container(d, KC)["env"]
                                                         if e["name"] == "KC_CACHE").update(value="local")),
    "kubernetes-workload-require-grace-covers-shutdown": (
        "grace period shorter than pause + drain", lambda d: pod(d, WS).update(terminationGracePeriodSeconds=30.0)),
    "redis-cluster-require-ha-topology": (
        "no replica per master", lambda d: [props(d, n)["metadata"]["annotations"].update(
            {"aiwfe.io/redis-replicas-per-master": "0"}) for n in REDIS_STATEFULSETS]),
    "redis-cluster-require-zone-separation": (
        "zone b not pinned", lambda d: pod(d, REDIS_STATEFULSETS[0]).pop("affinity")),
    "redis-config-require-persistence": ("AOF off", lambda d: edit_conf(d, "appendonly yes", "appendonly no")),
    "redis-config-require-eviction-policy": (
        "noeviction", lambda d: edit_conf(d, "maxmemory-policy allkeys-lru", "maxmemory-policy noeviction")),
    "redis-workload-require-memory-headroom": (
        "memory limit = maxmemory", lambda d: container(d, REDIS_STATEFULSETS[0])["resources"]["limits"].update(
            memory="8Gi")),
    "redis-workload-require-fast-probes": (
        "30 s liveness timeout", lambda d: container(d, REDIS_STATEFULSETS[0])["livenessProbe"].update(
            timeoutSeconds=30.0)),
    "redis-service-disallow-external-exposure": (
        "Redis behind a NEG", lambda d: props(d, "redis-cluster-client-service")["metadata"].setdefault(
            "annotations", {}).update({"cloud.google.com/neg": '{"ingress": true}'})),
    "redis-config-require-password": (
        "password in the ConfigMap",
        lambda d: edit_conf(d, "maxmemory-policy", "requirepass hunter2\nmaxmemory-policy")),
    "keycloak-workload-require-ha-replicas": (
        "Keycloak replicas 1", lambda d: props(d, KC)["spec"].update(replicas=1.0)),
    "keycloak-realm-require-token-lifespans-within-bounds": (
        "access tokens for an hour", lambda d: edit_realm(d, lambda r: r.update(accessTokenLifespan=3600))),
    "keycloak-realm-public-client-require-pkce": (
        "no PKCE", lambda d: edit_realm(d, lambda r: client(r, "aiwfe-webapp")["attributes"].pop(
            "pkce.code.challenge.method"))),
    "keycloak-realm-disallow-literal-client-secret": (
        "literal client secret", lambda d: edit_realm(d, lambda r: client(r, "aiwfe-services").update(
            secret="s3cr3t-literal"))),
    "gcp-sql-databaseinstance-require-deletion-protection-and-backups": (
        "deletion protection off", lambda d: props(d, "keycloak-sql-instance").update(deletionProtection=False)),
    "keycloak-admin-console-disallow-public-route": (
        "/admin forwarded to Keycloak", lambda d: props(d, "mesh-keycloak-routes")["spec"]["http"][0].update(
            directResponse=None, route=[{"destination": {"host": "keycloak.keycloak.svc.cluster.local",
                                                         "port": {"number": 8080.0}}}])),
    "platform-websocket-path-require-long-lived-end-to-end": (
        "Service port opaque TCP", lambda d: props(d, "websocket-service")["spec"]["ports"][0].update(
            appProtocol="tcp")),
    "platform-auth-path-require-keycloak-jwt-and-untouched-headers": (
        "issuer of another realm", lambda d: props(d, "mesh-websocket-jwt")["spec"]["jwtRules"][0].update(
            issuer="https://auth.aiwfe.example.com/realms/other")),
    "platform-websocket-capacity-require-target-connections": (
        "HPA max 5", lambda d: props(d, "websocket-autoscaler")["spec"].update(maxReplicas=5.0)),
    "platform-keycloak-capacity-require-target-authentications": (
        "Keycloak CPU limit 3", lambda d: container(d, KC)["resources"]["limits"].update(cpu="3")),
    "platform-redis-capacity-require-target-session-data": (
        "maxmemory 4 GiB", lambda d: edit_conf(d, f"maxmemory {8 * 2**30}\n", f"maxmemory {4 * 2**30}\n")),
    "platform-stateful-resources-require-protect": (
        "Redis StatefulSet unprotected", lambda d: find(d, REDIS_STATEFULSETS[1]).update(protect=False)),
}


@pytest.fixture(scope="module")
def prod_render(rendered: dict) -> tuple[Doc, PackConfig]:
    """prod's resources.json and policy-config.json as the render wrote them."""
    folder = rendered["prod"].manifests[0].parent.parent
    document = json.loads((folder / "resources.json").read_text())
    return document, offline.load_config(folder / "policy-config.json")


def test_every_rule_has_a_mutation() -> None:
    assert set(MUTATIONS) == {rule.name for rule in all_rules()}


def test_the_unmutated_prod_stack_passes(prod_render: tuple[Doc, PackConfig]) -> None:
    document, config = prod_render
    report = offline.evaluate_document(document, config=config)
    assert report.violations == [] and report.not_evaluated == []
    assert set(report.levels.values()) == {MANDATORY}


@pytest.mark.parametrize("rule", list(MUTATIONS))
def test_the_pack_fails_the_mutation_with_its_rule(rule: str, prod_render: tuple[Doc, PackConfig]) -> None:
    document, config = prod_render
    why, mutate = MUTATIONS[rule]
    mutated = copy.deepcopy(document)
    mutate(mutated)
    report = offline.evaluate_document(mutated, config=config)
    assert rule in report.failed_policies(), f"{why}: {report.as_text()}"
    assert any(v.policy == rule and v.enforcement == MANDATORY for v in report.mandatory_failures)
    assert report.not_evaluated == []


def test_the_render_folder_holds_what_the_mutation_test_reads(rendered: dict) -> None:
    folder: Path = rendered["prod"].manifests[0].parent.parent
    assert {"resources.json", "policy-config.json"} <= {p.name for p in folder.iterdir()}
