"""Workloads, WebSocketService and Frontend components under the mock engine, for both stacks.

Assertions are on the props the Kubernetes provider would receive (wire form: floats for numbers).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.redis_cluster import client_url
from components.workloads import REDIS_PASSWORD_KEY
from policies.aiwfe_policies.contract import REDIS_PORT, SHUTDOWN_EXIT_SECONDS
from stacks.settings import parse_settings
from tests.conftest import STACKS, one, resources_of
from tools import render as render_tool

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
NAMESPACE = "kubernetes:core/v1:Namespace"


def settings_for(stack: str):
    config = render_tool.load_stack_config(stack)
    return parse_settings(config.values, stack=stack, secret_keys=config.secret_keys)


def container(deployment: dict) -> dict:
    containers = deployment["props"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_map(c: dict) -> dict[str, Any]:
    return {e["name"]: e for e in c["env"]}


# ---------------------------------------------------------------- WebSocket service

def test_websocket_ports_are_named_for_istio(rendered: dict, stack: str) -> None:
    c = container(one(rendered[stack], DEPLOYMENT, "websocket-deployment"))
    assert [(p["name"], p["containerPort"]) for p in c["ports"]] == [("http-ws", 8080.0), ("http-health", 8081.0)]
    service = one(rendered[stack], SERVICE, "websocket-service")["props"]["spec"]
    assert service["type"] == "ClusterIP"
    assert {(p["name"], p["port"], p["targetPort"], p["appProtocol"]) for p in service["ports"]} == {
        ("http-ws", 8080.0, "http-ws", "http"), ("http-health", 8081.0, "http-health", "http")}


def test_websocket_env_takes_config_and_secret_by_reference(rendered: dict, stack: str) -> None:
    env = env_map(container(one(rendered[stack], DEPLOYMENT, "websocket-deployment")))
    assert env["DEPLOYMENT_MODE"]["value"] == "kubernetes"
    assert env["PORT"]["value"] == "8080"
    assert env["REDIS_URL"]["valueFrom"] == {"configMapKeyRef": {"name": "app-config", "key": "REDIS_URL"}}
    assert "value" not in env["REDIS_URL"]
    assert env["REDIS_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "app-secrets", "key": "REDIS_PASSWORD"}}
    assert "value" not in env["REDIS_PASSWORD"]
    # Every config key the ConfigMap carries reaches the container.
    data = one(rendered[stack], CONFIG_MAP, "workloads-app-config")["props"]["data"]
    assert {k for k, v in env.items() if "configMapKeyRef" in v.get("valueFrom", {})} == set(data)


def test_app_config_carries_redis_and_session_facts(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    data = one(rendered[stack], CONFIG_MAP, "workloads-app-config")["props"]["data"]
    assert data["REDIS_URL"] == client_url(s.redis, s.gcp.zones)
    assert data["REDIS_URL"].startswith(f"redis://redis-cluster-b-0.redis-cluster-headless.{s.redis.namespace}.svc")
    assert data["REDIS_HEALTH_TIMEOUT_MS"] == "3000"
    assert (data["SESSION_KEY_PREFIX"], data["SESSION_TTL_SECONDS"]) == ("ws:session:", "3600")
    assert (data["CONNECTION_KEY_PREFIX"], data["CONNECTION_TTL_SECONDS"]) == ("connection:", "86400")
    assert data["MAX_CONNECTIONS_PER_POD"] == str(s.websocket.connections_per_pod)
    assert data["SHUTDOWN_DRAIN_SECONDS"] == str(s.websocket.drain_seconds)
    assert not any("PASSWORD" in key for key in data)


def test_app_secret_holds_the_password_as_a_secret(rendered: dict, stack: str) -> None:
    secret = one(rendered[stack], SECRET, "workloads-app-secrets")["props"]
    assert secret["metadata"]["name"] == "app-secrets"
    assert secret["stringData"] == {"REDIS_PASSWORD": render_tool.SECRET_MARKER}


def test_websocket_resources_probes_and_shutdown(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    deployment = one(rendered[stack], DEPLOYMENT, "websocket-deployment")["props"]
    c = container(one(rendered[stack], DEPLOYMENT, "websocket-deployment"))
    # Requests are the steady state under normal load (the HPA's base), limits REQUIREMENTS'.
    assert c["resources"] == {"requests": {"cpu": "200m", "memory": "256Mi"},
                              "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http-health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http-health"}
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] <= 30, "pod start budget is 30 s"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == s.websocket.termination_grace_seconds
    assert c["lifecycle"]["preStop"] == {"sleep": {"seconds": float(s.websocket.drain_seconds)}}
    assert s.websocket.drain_seconds < s.websocket.termination_grace_seconds
    # Scraped in plaintext by Prometheus: the health/metrics port must bypass the sidecar (STRICT mTLS).
    assert deployment["spec"]["template"]["metadata"]["annotations"][
        "traffic.sidecar.istio.io/excludeInboundPorts"] == "8081"
    proxy = json.loads(deployment["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/config"])
    # The agent waits for zero connections and ignores terminationDrainDuration: none is set.
    assert proxy["proxyMetadata"] == {"EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true"}
    assert "terminationDrainDuration" not in proxy
    # The grace period holds the preStop pause, the app's drain after SIGTERM, and its exit.
    config = one(rendered[stack], "kubernetes:core/v1:ConfigMap", "workloads-app-config")["props"]["data"]
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop + int(config["SHUTDOWN_DRAIN_SECONDS"]) + SHUTDOWN_EXIT_SECONDS \
        <= pod["terminationGracePeriodSeconds"]


def test_grace_period_follows_the_stack(rendered: dict) -> None:
    graces = {stack: one(rendered[stack], DEPLOYMENT, "websocket-deployment")["props"]["spec"]["template"]["spec"]
              ["terminationGracePeriodSeconds"] for stack in STACKS}
    assert graces == {"staging": 60.0, "prod": 120.0}


def test_websocket_rolls_without_downtime_and_spreads(rendered: dict, stack: str) -> None:
    spec = one(rendered[stack], DEPLOYMENT, "websocket-deployment")["props"]["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0.0, "maxSurge": "25%"}}
    assert "replicas" not in spec, "the HPA owns the replica count"
    keys = {c["topologyKey"] for c in spec["template"]["spec"]["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def replicas_after(seconds: int, start: float, behavior: dict, ceiling: float) -> float:
    """Replicas the HPA can reach in `seconds` under its scale-up policies (selectPolicy Max)."""
    assert behavior["stabilizationWindowSeconds"] == 0
    replicas = start
    period = min(p["periodSeconds"] for p in behavior["policies"])
    for _ in range(int(seconds // period)):
        steps = [replicas * p["value"] / 100 if p["type"] == "Percent" else p["value"] for p in behavior["policies"]]
        replicas = min(ceiling, replicas + max(steps))
    return replicas


def test_hpa_bounds_targets_and_fast_scale_up(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    spec = one(rendered[stack], HPA, "websocket-autoscaler")["props"]["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "websocket"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (s.websocket.min_replicas, s.websocket.max_replicas)
    # The app container's own usage: the sidecar's is not the service's load.
    assert {m["type"] for m in spec["metrics"]} == {"ContainerResource"}
    targets = {(m["containerResource"]["name"], m["containerResource"]["container"]):
               m["containerResource"]["target"]["averageUtilization"] for m in spec["metrics"]}
    assert targets == {("cpu", "websocket"): 70.0, ("memory", "websocket"): 80.0}
    up = spec["behavior"]["scaleUp"]
    assert replicas_after(60, spec["minReplicas"], up, spec["maxReplicas"]) == spec["maxReplicas"]


def test_prod_hpa_is_2_to_10(rendered: dict) -> None:
    spec = one(rendered["prod"], HPA, "websocket-autoscaler")["props"]["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2.0, 10.0)


# ---------------------------------------------------------------- frontends

@pytest.mark.parametrize("app", ["user-frontend", "admin-frontend"])
def test_frontend_serves_on_a_high_port_behind_service_port_80(rendered: dict, stack: str, app: str) -> None:
    s = settings_for(stack)
    fe = s.user_frontend if app == "user-frontend" else s.admin_frontend
    deployment = one(rendered[stack], DEPLOYMENT, f"{app}-deployment")
    c = container(deployment)
    assert c["image"] == fe.image
    assert deployment["props"]["spec"]["replicas"] == fe.replicas
    assert c["ports"] == [{"name": "http", "containerPort": 8080.0, "protocol": "TCP"}]
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                              "limits": {"cpu": "100m", "memory": "128Mi"}}
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["livenessProbe"]["tcpSocket"] == {"port": "http"}  # alive, whatever it can serve
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"/tmp", "/etc/nginx/conf.d"}
    port = one(rendered[stack], SERVICE, f"{app}-service")["props"]["spec"]["ports"][0]
    assert (port["port"], port["targetPort"]) == (80.0, "http")


# ---------------------------------------------------------------- every workload

@pytest.mark.parametrize("name", ["websocket", "user-frontend", "admin-frontend"])
def test_pods_are_hardened(rendered: dict, stack: str, name: str) -> None:
    pod = one(rendered[stack], DEPLOYMENT, f"{name}-deployment")["props"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == name
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


@pytest.mark.parametrize("name", ["websocket", "user-frontend", "admin-frontend"])
def test_each_workload_has_its_service_account_and_budget(rendered: dict, stack: str, name: str) -> None:
    account = one(rendered[stack], SERVICE_ACCOUNT, f"{name}-service-account")["props"]
    assert account["automountServiceAccountToken"] is False
    budget = one(rendered[stack], PDB, f"{name}-disruption-budget")["props"]["spec"]
    assert budget["maxUnavailable"] == 1.0
    labels = one(rendered[stack], DEPLOYMENT, f"{name}-deployment")["props"]["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()


def test_single_replica_frontend_gets_no_budget(tmp_path) -> None:
    """A PDB with maxUnavailable 1 on one replica is pointless; staging may run one replica."""
    config = render_tool.load_stack_config("staging")
    frontends = json.loads(config.values["aiwfe-platform:frontends"])
    frontends["admin"]["replicas"] = 1
    config.values["aiwfe-platform:frontends"] = json.dumps(frontends)
    result = render_tool.render("staging", tmp_path, config=config)
    assert not [r for r in resources_of(result, PDB) if r["name"] == "admin-frontend-disruption-budget"]
    assert one(result, PDB, "user-frontend-disruption-budget")


# ---------------------------------------------------------------- network policies and namespace

def test_namespace_is_default_deny(rendered: dict, stack: str) -> None:
    spec = one(rendered[stack], NETPOL, "workloads-default-deny")["props"]["spec"]
    assert spec == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_websocket_network_policy(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    spec = one(rendered[stack], NETPOL, "websocket-network-policy")["props"]["spec"]
    gateway, metrics = spec["ingress"]
    assert gateway["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": s.mesh.ingress_gateway_namespace}},
        "podSelector": {"matchLabels": dict(s.mesh.ingress_gateway_labels)}}]
    assert gateway["ports"] == [{"protocol": "TCP", "port": 8080.0}]
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": s.monitoring.namespace}
    assert {p["port"] for p in metrics["ports"]} == {8081.0, 15020.0}
    egress_targets = {(rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                       tuple(sorted(p["port"] for p in rule["ports"]))) for rule in spec["egress"]}
    assert egress_targets == {("kube-system", (53.0, 53.0)), (s.mesh.istiod_namespace, (15012.0,)),
                              (s.redis.namespace, (float(REDIS_PORT),))}


@pytest.mark.parametrize("app", ["user-frontend", "admin-frontend"])
def test_frontend_network_policy_admits_only_the_gateway_and_scraper(rendered: dict, stack: str, app: str) -> None:
    spec = one(rendered[stack], NETPOL, f"{app}-network-policy")["props"]["spec"]
    s = settings_for(stack)
    gateway, scraper = (rule["from"] for rule in spec["ingress"])
    assert gateway == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-ingress"}},
        "podSelector": {"matchLabels": dict(s.mesh.ingress_gateway_labels)}}]
    assert scraper == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    assert spec["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080.0}]
    assert spec["ingress"][1]["ports"] == [{"protocol": "TCP", "port": 15020.0}]
    assert len(spec["egress"]) == 2, "frontends need only DNS and istiod"
    dns_peers = spec["egress"][0]["to"]
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in dns_peers, "NodeLocal DNSCache"


def test_namespace_joins_the_mesh(rendered: dict, stack: str) -> None:
    labels = one(rendered[stack], NAMESPACE, "app-namespace")["props"]["metadata"]["labels"]
    assert labels["istio-injection"] == "enabled"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline", "stacks run Istio CNI"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.34"


def test_without_istio_cni_only_privileged_admits_istio_init(tmp_path) -> None:
    config = render_tool.load_stack_config("staging")
    mesh = json.loads(config.values["aiwfe-platform:mesh"])
    mesh["cni"] = False
    config.values["aiwfe-platform:mesh"] = json.dumps(mesh)
    labels = one(render_tool.render("staging", tmp_path, config=config), NAMESPACE,
                 "app-namespace")["props"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_istio_revision_switches_the_injection_label(tmp_path) -> None:
    config = render_tool.load_stack_config("prod")
    mesh = json.loads(config.values["aiwfe-platform:mesh"])
    mesh["istioRevision"] = "1-30-3"
    config.values["aiwfe-platform:mesh"] = json.dumps(mesh)
    result = render_tool.render("prod", tmp_path, config=config)
    labels = one(result, NAMESPACE, "app-namespace")["props"]["metadata"]["labels"]
    assert labels["istio.io/rev"] == "1-30-3"
    assert "istio-injection" not in labels


def test_every_namespaced_object_lands_in_the_app_namespace(rendered: dict, stack: str) -> None:
    namespace_urn = one(rendered[stack], NAMESPACE, "app-namespace")["urn"]
    for resource in rendered[stack].document["resources"]:
        # The Workloads' objects (other components own other namespaces).
        if resource["type"].startswith("kubernetes:") and "::aiwfe:platform:Workloads" in resource["urn"]:
            assert resource["props"]["metadata"]["namespace"] == "aiwfe", resource["urn"]
            assert namespace_urn in resource["dependencies"], f"{resource['urn']} must wait for its namespace"


def test_children_are_parented_to_their_component(rendered: dict, stack: str) -> None:
    for resource in rendered[stack].document["resources"]:
        if resource["name"] == "app-namespace":
            assert resource["parent"].endswith("pulumi:pulumi:Stack::aiwfe-platform-" + stack)
        elif resource["type"].startswith("kubernetes:"):
            assert "aiwfe:platform:" in resource["parent"].split("::")[-2], resource["urn"]


def test_resource_overrides_reach_the_containers(tmp_path) -> None:
    config = render_tool.load_stack_config("staging")
    websocket = json.loads(config.values["aiwfe-platform:websocket"])
    websocket["resources"] = {"requests": {"cpu": "300m"}, "limits": {"memory": "1Gi"}}
    config.values["aiwfe-platform:websocket"] = json.dumps(websocket)
    frontends = json.loads(config.values["aiwfe-platform:frontends"])
    frontends["admin"]["resources"] = {"limits": {"cpu": "250m"}}
    config.values["aiwfe-platform:frontends"] = json.dumps(frontends)
    result = render_tool.render("staging", tmp_path, config=config)
    assert container(one(result, DEPLOYMENT, "websocket-deployment"))["resources"] == {
        "requests": {"cpu": "300m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}
    assert container(one(result, DEPLOYMENT, "admin-frontend-deployment"))["resources"]["limits"] == {
        "cpu": "250m", "memory": "128Mi"}
    assert container(one(result, DEPLOYMENT, "user-frontend-deployment"))["resources"]["limits"] == {
        "cpu": "100m", "memory": "128Mi"}


# ---------------------------------------------------------------- rotation rolls the pods

class RotatedRedisPassword(render_tool.EchoMocks):
    """The offline engine, with the Redis password generated anew (what replacing it does)."""

    def new_resource(self, args):
        resource_id, outputs = super().new_resource(args)
        if args.typ == "random:index/randomPassword:RandomPassword" and "redis" in args.name:
            outputs = {**outputs, "result": "Rotated0" + outputs["result"][8:]}
        return resource_id, outputs


def websocket_template(registrations: list) -> dict:
    [deployment] = [render_tool.reveal_secrets(r.props) for r in registrations if r.name == "websocket-deployment"]
    return deployment["spec"]["template"]


def app_secret(registrations: list) -> str:
    [secret] = [render_tool.reveal_secrets(r.props) for r in registrations if r.name == "workloads-app-secrets"]
    return secret["stringData"][REDIS_PASSWORD_KEY]


@pytest.mark.parametrize("stack", STACKS)
def test_a_rotated_redis_password_rolls_the_websocket_pods(stack: str) -> None:
    config = render_tool.load_stack_config(stack)
    before = render_tool.run_program(render_tool.platform_program, config)
    after = render_tool.run_program(render_tool.platform_program, config,
                                    monitor=render_tool.RecordingMonitor(RotatedRedisPassword()))
    assert app_secret(before) != app_secret(after)
    old, new = websocket_template(before), websocket_template(after)
    version = "aiwfe.io/app-secrets-version"
    assert old["metadata"]["annotations"][version] != new["metadata"]["annotations"][version]
    # Nothing else of the template changes: the password is read from the Secret by reference.
    del old["metadata"]["annotations"][version], new["metadata"]["annotations"][version]
    assert old == new


def test_the_secret_version_tells_nothing_about_the_secret() -> None:
    import hashlib

    from components.workloads import secret_version
    salt, password = "s" * 32, "correct-horse-battery-staple-42"
    version = secret_version(salt, {"redis-password": password})
    assert version != secret_version(salt, {"redis-password": password + "x"})
    assert version != secret_version("t" * 32, {"redis-password": password}), "keyed by the salt"
    assert version == secret_version(salt, {"redis-password": password}), "stable while nothing changes"
    unsalted = [hashlib.sha256(v.encode()).hexdigest() for v in
                (password, json.dumps({"redis-password": password}, sort_keys=True))]
    assert password not in version and not any(h.startswith(version) for h in unsalted)
