"""Identity rules (policies/aiwfe_policies/rules/keycloak.py) on known-good resources and one-change mutations."""

from __future__ import annotations

import copy
import json
from typing import Any

from components.keycloak_realm import RealmSpec, realm_representation
from policies.aiwfe_policies.rules.keycloak import CONFIG_MAP, SQL_INSTANCE, VIRTUAL_SERVICE
from policies.aiwfe_policies.rules.kubernetes import DEPLOYMENT, NETWORK_POLICY, PDB, SERVICE
from tests.policy_cases import Case, bad, ok
from tests.policy_fixtures import DELETE, Wire, change, deployment, network_policy, pdb, service

REPLICAS = "keycloak-workload-require-ha-replicas"
KEYCLOAK_CAPACITY = "platform-keycloak-capacity-require-target-authentications"
STATEFUL = "platform-stateful-resources-require-protect"
# Staging's own target (Pulumi.staging.yaml): 2 replicas x 5 vCPU with one down cover 2,000/min.
STAGING_TARGETS = {KEYCLOAK_CAPACITY: {"targetAuthenticationsPerMinute": 2000}}
LIFESPANS = "keycloak-realm-require-token-lifespans-within-bounds"
PKCE = "keycloak-realm-public-client-require-pkce"
LITERAL_SECRET = "keycloak-realm-disallow-literal-client-secret"
SQL = "gcp-sql-databaseinstance-require-deletion-protection-and-backups"
ADMIN_ROUTE = "keycloak-admin-console-disallow-public-route"

SPEC = RealmSpec(name="aiwfe-production", access_token_lifespan=300, sso_session_idle=1800, sso_session_max=36000,
                 client_session_idle=1800, redirect_uris=["https://aiwfe.example.com/user/callback"],
                 web_origins=["https://aiwfe.example.com"], google_client_id="google-id", github_client_id="github-id")


# ---------------------------------------------------------------- fixtures

def reconcile_map(edits: dict[str, dict[str, Any]] | None = None) -> list[Wire]:
    """The reconcile Job's ConfigMap as the component renders it, with dotted-path edits per file."""
    from components.keycloak_reconcile import SCRIPT, reconcile_files

    pieces = {name: change(json.loads(text), (edits or {}).get(name, {}))
              for name, text in reconcile_files(SPEC).items()}
    props = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "keycloak-realm-reconcile", "namespace": "keycloak"},
             "data": {**{name: json.dumps(doc) for name, doc in pieces.items()}, "reconcile.sh": SCRIPT}}
    return [Wire(CONFIG_MAP, "keycloak-realm-reconcile-files", props)]


def realm_map(edits: dict[str, Any] | None = None) -> list[Wire]:
    """The realm ConfigMap as the component renders it, with dotted-path edits to the realm."""
    realm = change(realm_representation(SPEC), edits or {})
    props = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "keycloak-realm", "namespace": "keycloak"},
             "data": {"aiwfe-production-realm.json": json.dumps(realm)}}
    return [Wire(CONFIG_MAP, "keycloak-realm", props)]


WEBAPP = "clients.0."
SERVICES = "clients.1."


def keycloak(replicas: float = 3.0) -> list[Wire]:
    """A hardened Keycloak Deployment with its Service, PDB and NetworkPolicy."""
    def ns(props: dict[str, Any]) -> dict[str, Any]:
        return change(props, {"metadata.namespace": "keycloak"})
    return [
        # CPU limit as prod's: 2 of 3 replicas x 5 vCPU cover the default authentication target.
        Wire(DEPLOYMENT, "keycloak-deployment", ns(change(deployment("keycloak"), {
            "spec.replicas": replicas, "spec.template.spec.containers.0.resources.limits.cpu": "5"}))),
        Wire(SERVICE, "keycloak-service", ns(service("keycloak"))),
        Wire(PDB, "keycloak-disruption-budget", ns(pdb("keycloak"))),
        Wire(NETWORK_POLICY, "keycloak-network-policy", ns(network_policy("keycloak"))),
    ]


def sql_instance(edits: dict[str, Any] | None = None, *, protect: bool = True) -> list[Wire]:
    props = {
        "name": "aiwfe-keycloak-prod", "databaseVersion": "POSTGRES_15", "region": "europe-west1",
        "deletionProtection": True,
        "settings": {
            "tier": "db-custom-2-7680", "availabilityType": "REGIONAL", "deletionProtectionEnabled": True,
            "backupConfiguration": {"enabled": True, "pointInTimeRecoveryEnabled": True, "startTime": "02:00"},
            "insightsConfig": {"queryInsightsEnabled": True},
            "ipConfiguration": {"ipv4Enabled": False, "privateNetwork": "projects/aiwfe-prod/global/networks/prod-vpc"},
        },
    }
    return [Wire(SQL_INSTANCE, "keycloak-sql-instance", change(props, edits or {}), protect=protect)]


GATEWAY = "kubernetes:networking.istio.io/v1:Gateway"
AUTHORIZATION_POLICY = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
DENY = {"directResponse": {"status": 404.0}}
TO_KEYCLOAK = [{"destination": {"host": "keycloak.keycloak.svc.cluster.local", "port": {"number": 8080.0}}}]


def route(match: list[dict[str, Any]] | None, *, deny: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(DENY) if deny else {"route": copy.deepcopy(TO_KEYCLOAK)}
    return {**({"match": match} if match is not None else {}), **body}


def auth_vs(*routes: dict[str, Any], gateways: list[str] | None = None) -> list[Wire]:
    """The auth host's VirtualService (Istio v1) plus the Keycloak Service it routes to."""
    props = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "keycloak", "namespace": "istio-ingress"},
             "spec": {"hosts": ["auth.aiwfe.example.com"],
                      "gateways": gateways if gateways is not None else ["istio-ingress/aiwfe-gateway"],
                      "http": list(routes)}}
    return [Wire(VIRTUAL_SERVICE, "keycloak-virtual-service", props), *edge(), *keycloak()]


def edge() -> list[Wire]:
    """The gateway the routes bind to, and a DENY on token-less requests to the auth host, so the
    mesh's JWT-coverage rule is satisfied and only the admin-console rule judges the routes."""
    gateway = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
               "metadata": {"name": "aiwfe-gateway", "namespace": "istio-ingress"},
               "spec": {"selector": {"istio": "ingressgateway"},
                        "servers": [{"port": {"number": 80.0, "name": "http", "protocol": "HTTP"},
                                     "hosts": ["keycloak/auth.aiwfe.example.com"]}]}}
    deny = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "edge-require-jwt", "namespace": "istio-ingress"},
            "spec": {"selector": {"matchLabels": {"istio": "ingressgateway"}}, "action": "DENY", "rules": [{
                "from": [{"source": {"notRequestPrincipals": ["https://auth.aiwfe.example.com/realms/x/*"]}}],
                "to": [{"operation": {"hosts": ["auth.aiwfe.example.com", "auth.aiwfe.example.com:*"]}}]}]}}
    return [Wire(GATEWAY, "mesh-gateway", gateway), Wire(AUTHORIZATION_POLICY, "mesh-edge-require-jwt", deny)]


PREFIX = lambda p: {"uri": {"prefix": p}}  # noqa: E731
GUARDED = [route([PREFIX("/admin"), PREFIX("/realms/master"), PREFIX("/metrics"), PREFIX("/health")], deny=True),
           route([PREFIX("/")])]

CASES: list[Case] = [
    ok(REPLICAS, "three-replicas", keycloak(3.0)),
    ok(REPLICAS, "staging-may-run-two", keycloak(2.0), stack="staging", config=STAGING_TARGETS),
    bad(REPLICAS, "two-replicas-in-prod", keycloak(2.0), also=(KEYCLOAK_CAPACITY,)),

    ok(LIFESPANS, "requirements-lifespans", realm_map()),
    bad(LIFESPANS, "access-token-one-hour", realm_map({"accessTokenLifespan": 3600})),
    bad(LIFESPANS, "sso-idle-missing", realm_map({"ssoSessionIdleTimeout": DELETE})),
    bad(LIFESPANS, "client-idle-outlives-sso-idle", realm_map({"clientSessionIdleTimeout": 2400,
                                                               "ssoSessionIdleTimeout": 1200})),

    ok(PKCE, "webapp-s256-exact-uris", realm_map()),
    bad(PKCE, "no-pkce", realm_map({WEBAPP + "attributes": {}})),
    bad(PKCE, "plain-pkce", realm_map({WEBAPP + "attributes": {"pkce.code.challenge.method": "plain"}})),
    bad(PKCE, "wildcard-redirect", realm_map({WEBAPP + "redirectUris": ["https://aiwfe.example.com/*"]})),
    bad(PKCE, "wildcard-origin", realm_map({WEBAPP + "webOrigins": ["*"]})),
    bad(PKCE, "password-grant-by-default", realm_map({WEBAPP + "directAccessGrantsEnabled": DELETE})),
    bad(PKCE, "implicit-flow", realm_map({WEBAPP + "implicitFlowEnabled": True})),

    ok(LITERAL_SECRET, "placeholders", realm_map()),
    bad(LITERAL_SECRET, "literal-services-secret", realm_map({SERVICES + "secret": "s3cr3t-value"})),
    bad(LITERAL_SECRET, "literal-google-secret", realm_map({"identityProviders.0.config.clientSecret": "GOCSPX-x"})),
    bad(LITERAL_SECRET, "placeholder-with-trailing-text", realm_map({SERVICES + "secret": "${SECRET}x"})),
    ok(LITERAL_SECRET, "reconcile-pieces-with-placeholders", reconcile_map()),
    bad(LITERAL_SECRET, "literal-secret-in-a-reconcile-piece",
        reconcile_map({"client-aiwfe-services.json": {"secret": "s3cr3t-value"}})),
    bad(LITERAL_SECRET, "literal-idp-secret-in-a-reconcile-piece",
        reconcile_map({"idp-github.json": {"config.clientSecret": "ghs_x"}})),

    ok(SQL, "protected-with-pitr", sql_instance()),
    ok(SQL, "staging-need-not", sql_instance({"deletionProtection": False, "settings.backupConfiguration": {}},
                                             protect=False), stack="staging"),
    bad(SQL, "no-deletion-protection", sql_instance({"settings.deletionProtectionEnabled": False})),
    bad(SQL, "provider-may-delete", sql_instance({"deletionProtection": False})),
    bad(SQL, "no-backups", sql_instance({"settings.backupConfiguration.enabled": False})),
    bad(SQL, "no-pitr", sql_instance({"settings.backupConfiguration.pointInTimeRecoveryEnabled": DELETE})),
    bad(SQL, "not-protected", sql_instance(protect=False), also=(STATEFUL,)),

    ok(ADMIN_ROUTE, "deny-first-then-catch-all", auth_vs(*GUARDED)),
    ok(ADMIN_ROUTE, "only-the-product-realm",
       auth_vs(route([PREFIX("/realms/aiwfe-production"), PREFIX("/resources")]))),
    ok(ADMIN_ROUTE, "mesh-internal-route", auth_vs(route(None), gateways=["mesh"])),
    bad(ADMIN_ROUTE, "catch-all-without-match", auth_vs(route(None))),
    bad(ADMIN_ROUTE, "prefix-slash", auth_vs(route([PREFIX("/")]))),
    bad(ADMIN_ROUTE, "deny-after-catch-all", auth_vs(*reversed(GUARDED))),
    bad(ADMIN_ROUTE, "master-realm-left-open",
        auth_vs(route([PREFIX("/admin")], deny=True), route([PREFIX("/realms")]))),
    # The mesh's JWT-coverage rule cannot judge a regex path either.
    bad(ADMIN_ROUTE, "regex-admin", auth_vs(route([{"uri": {"regex": "/(admin|realms)/.*"}}])),
        also=("istio-security-v1-authorizationpolicy-require-jwt-on-public-routes",)),
    bad(ADMIN_ROUTE, "case-insensitive-prefix",
        auth_vs(route([{"uri": {"prefix": "/ADMIN"}, "ignoreUriCase": True}]))),
    bad(ADMIN_ROUTE, "conditional-deny-does-not-absorb",
        auth_vs(route([{"uri": {"prefix": "/admin"}, "headers": {"x-internal": {"exact": "1"}}}], deny=True),
                route([PREFIX("/")]))),
    bad(ADMIN_ROUTE, "management-port", auth_vs(
        {"match": [PREFIX("/realms/aiwfe-production")],
         "route": [{"destination": {"host": "keycloak.keycloak.svc.cluster.local", "port": {"number": 9000.0}}}]})),
    bad(ADMIN_ROUTE, "short-host-in-keycloak-namespace", [
        Wire(VIRTUAL_SERVICE, "keycloak-virtual-service", {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "keycloak", "namespace": "keycloak"},
            "spec": {"hosts": ["auth.aiwfe.example.com"], "gateways": ["istio-ingress/aiwfe-gateway"],
                     "http": [{"route": [{"destination": {"host": "keycloak"}}]}]}}),
        *edge(), *keycloak()]),
]
