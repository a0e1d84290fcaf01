"""The flows the platform needs, declared once, for the reachability rules of the policy pack.

Each end is a declared workload (its namespace and `app.kubernetes.io/name`, as the components
name them) or a peer outside the stack (the ingress gateway, the scraper, kube-dns, istiod, as the
settings and the components' NetworkPolicies name them). The pack checks that every NetworkPolicy,
AuthorizationPolicy and mTLS setting lets each flow through (`policies/aiwfe_policies/rules/
reachability.py`); stacks/policy_config.py writes them into the pack config.
"""

from __future__ import annotations

from typing import Any

from components import keycloak, podspec, postgres, redis_cluster
from components.workloads import ADMIN_FRONTEND_APP, USER_FRONTEND_APP, WEBSOCKET_APP
from policies.aiwfe_policies.contract import (
    FRONTEND_CONTAINER_PORT,
    HEALTH_PORT,
    REDIS_BUS_PORT,
    REDIS_EXPORTER_PORT,
    REDIS_PORT,
    WEBSOCKET_PORT,
)
from stacks.settings import Settings


def _workload(namespace: str, app: str) -> dict[str, Any]:
    return {"namespace": namespace, "workload": app}


def _flow(source: dict[str, Any], destination: dict[str, Any], *ports: int | str) -> dict[str, Any]:
    def name(end: dict[str, Any]) -> str:
        return str(end.get("workload") or end.get("name"))
    return {"name": f"{name(source)} -> {name(destination)}", "from": source, "to": destination,
            "ports": [str(port) for port in ports]}


def intended_flows(settings: Settings) -> list[dict[str, Any]]:
    mesh, monitoring = settings.mesh, settings.monitoring
    app_ns, redis_ns, keycloak_ns = settings.app_namespace, settings.redis.namespace, settings.keycloak.namespace
    gateway = {"name": "ingress-gateway", "namespace": mesh.ingress_gateway_namespace,
               "labels": dict(mesh.ingress_gateway_labels), "serviceAccount": mesh.ingress_gateway_service_account}
    scraper = {"name": "scraper", "namespace": monitoring.namespace, "labels": dict(monitoring.scraper_labels or {})}
    kube_dns = {"name": "kube-dns", "namespace": podspec.KUBE_DNS_NAMESPACE, "labels": dict(podspec.KUBE_DNS_LABELS)}
    istiod = {"name": "istiod", "namespace": mesh.istiod_namespace, "labels": dict(podspec.ISTIOD_LABELS)}

    websocket = _workload(app_ns, WEBSOCKET_APP)
    frontends = [_workload(app_ns, USER_FRONTEND_APP), _workload(app_ns, ADMIN_FRONTEND_APP)]
    redis = _workload(redis_ns, redis_cluster.APP)
    bootstrap = _workload(redis_ns, redis_cluster.BOOTSTRAP)
    identity = _workload(keycloak_ns, keycloak.APP)
    reconcile = _workload(keycloak_ns, keycloak.RECONCILE)
    database = [_workload(keycloak_ns, postgres.APP)] if settings.keycloak.database.in_cluster else []
    metrics = podspec.SIDECAR_METRICS_PORT

    flows = [
        _flow(gateway, websocket, WEBSOCKET_PORT),
        *(_flow(gateway, frontend, FRONTEND_CONTAINER_PORT) for frontend in frontends),
        _flow(gateway, identity, keycloak.HTTP_PORT),
        _flow(websocket, redis, REDIS_PORT),
        _flow(redis, redis, REDIS_PORT, REDIS_BUS_PORT),
        _flow(bootstrap, redis, REDIS_PORT),
        *(_flow(identity, store, postgres.POSTGRES_PORT) for store in database),
        _flow(identity, identity, keycloak.JGROUPS_PORT, keycloak.JGROUPS_FD_PORT),
        _flow(reconcile, identity, keycloak.HTTP_PORT),
        _flow(scraper, websocket, HEALTH_PORT, metrics),
        *(_flow(scraper, frontend, metrics) for frontend in frontends),
        _flow(scraper, redis, REDIS_EXPORTER_PORT, metrics),
        _flow(scraper, identity, keycloak.MANAGEMENT_PORT, metrics),
    ]
    every_workload = [websocket, *frontends, redis, bootstrap, identity, reconcile, *database]
    for workload in every_workload:
        flows.append(_flow(workload, kube_dns, f"{podspec.DNS_PORT}/UDP", podspec.DNS_PORT))
        flows.append(_flow(workload, istiod, podspec.ISTIOD_XDS_PORT))
    return flows


def data_stores(settings: Settings) -> list[dict[str, Any]]:
    """Workloads that hold data: no NetworkPolicy may admit every pod, or a whole namespace, into them."""
    stores = [_workload(settings.redis.namespace, redis_cluster.APP)]
    if settings.keycloak.database.in_cluster:
        stores.append(_workload(settings.keycloak.namespace, postgres.APP))
    return stores
