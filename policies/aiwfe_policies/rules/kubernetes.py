"""Kubernetes rules: the union of what kube-score, Polaris, kube-linter and checkov check on
workloads, written as plain functions over the props pulumi-kubernetes receives."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..engine import Context, Resource, resource_rule, stack_rule
from ..model.index import index_of
from ..model.props import dig, items, number, selector_matches

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
REPLICA_SET = "kubernetes:apps/v1:ReplicaSet"
JOB = "kubernetes:batch/v1:Job"
CRON_JOB = "kubernetes:batch/v1:CronJob"
POD = "kubernetes:core/v1:Pod"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

# Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    DEPLOYMENT: ("spec", "template", "spec"),
    STATEFUL_SET: ("spec", "template", "spec"),
    DAEMON_SET: ("spec", "template", "spec"),
    REPLICA_SET: ("spec", "template", "spec"),
    JOB: ("spec", "template", "spec"),
    CRON_JOB: ("spec", "jobTemplate", "spec", "template", "spec"),
    POD: ("spec",),
}
WORKLOADS = tuple(POD_SPEC_PATHS)
CONTROLLERS = (DEPLOYMENT, STATEFUL_SET, DAEMON_SET, REPLICA_SET)
BATCH = (JOB, CRON_JOB)
# Kinds that live outside namespaces.
CLUSTER_SCOPED = re.compile(
    r"^kubernetes:(core/v1:(Namespace|Node|PersistentVolume)"
    r"|rbac\.authorization\.k8s\.io/v1:ClusterRole(Binding)?"
    r"|storage\.k8s\.io/v1:(StorageClass|CSIDriver|CSINode|VolumeAttachment)"
    r"|apiextensions\.k8s\.io/v1:CustomResourceDefinition|apiregistration\.k8s\.io/v1:APIService"
    r"|admissionregistration\.k8s\.io/v1:(\w+WebhookConfiguration|ValidatingAdmissionPolicy(Binding)?)"
    r"|scheduling\.k8s\.io/v1:PriorityClass|networking\.k8s\.io/v1:IngressClass|node\.k8s\.io/v1:RuntimeClass"
    r"|certificates\.k8s\.io/v1:CertificateSigningRequest"
    r"|flowcontrol\.apiserver\.k8s\.io/v1:(FlowSchema|PriorityLevelConfiguration)"
    # Google Managed Prometheus' cluster-wide kinds (components/observability.py uses ClusterRules).
    r"|monitoring\.googleapis\.com/v1:(ClusterRules|GlobalRules|ClusterPodMonitoring|ClusterNodeMonitoring))$"
)
MIN_UID = 10000
ALLOWED_ADDED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SECRET_ENV_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE)


# ---------------------------------------------------------------- helpers over props

def pod_spec(resource: Resource) -> Mapping[str, Any] | None:
    path = POD_SPEC_PATHS.get(resource.type)
    spec = dig(resource.props, *path) if path else None
    return spec if isinstance(spec, Mapping) else None


def pod_template_labels(resource: Resource) -> Mapping[str, Any]:
    template_path = POD_SPEC_PATHS[resource.type][:-1]
    labels = dig(resource.props, *template_path, "metadata", "labels") if resource.type != POD \
        else dig(resource.props, "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


def containers(spec: Mapping[str, Any], *, init: bool = True) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, container) for every container, and init containers unless `init` is False."""
    for c in items(spec.get("containers")):
        yield f"container {c.get('name')}", c
    if init:
        for c in items(spec.get("initContainers")):
            yield f"init container {c.get('name')}", c


def effective(spec: Mapping[str, Any], container: Mapping[str, Any], key: str) -> Any:
    """A container securityContext field, falling back to the pod's."""
    value = dig(container, "securityContext", key)
    return value if value is not None else dig(spec, "securityContext", key)


def namespace_of(resource: Resource) -> Any:
    return dig(resource.props, "metadata", "namespace")


def pod_checks(resource: Resource) -> Iterator[tuple[Mapping[str, Any], str, Mapping[str, Any]]]:
    spec = pod_spec(resource)
    if spec is None:
        return
    for where, container in containers(spec):
        yield spec, where, container


# ---------------------------------------------------------------- hardened pods

@resource_rule("kubernetes-workload-require-run-as-non-root", types=WORKLOADS, severity="high",
               description=f"Containers must run as a non-root uid >= {MIN_UID}: root in a container is "
                           "one kernel bug away from root on the node.")
def run_as_non_root(resource: Resource, _: Context) -> Iterable[str]:
    """Every container and init container, by its own securityContext or else the pod's: runAsNonRoot is true and
    runAsUser is set to a uid of 10000 or more (MIN_UID). Each failing field is reported per container."""
    for spec, where, container in pod_checks(resource):
        if effective(spec, container, "runAsNonRoot") is not True:
            yield f"{where}: runAsNonRoot is not true"
        uid = number(effective(spec, container, "runAsUser"))
        if uid is None or uid < MIN_UID:
            yield f"{where}: runAsUser must be set to {MIN_UID} or more (is {uid})"


@resource_rule("kubernetes-workload-disallow-privilege-escalation", types=WORKLOADS, severity="high",
               description="allowPrivilegeEscalation must be false: setuid binaries must not regain privileges.")
def no_privilege_escalation(resource: Resource, _: Context) -> Iterable[str]:
    """Every container and init container sets securityContext.allowPrivilegeEscalation to false explicitly; unset
    fails (the pod-level securityContext has no such field)."""
    for _spec, where, container in pod_checks(resource):
        if dig(container, "securityContext", "allowPrivilegeEscalation") is not False:
            yield f"{where}: securityContext.allowPrivilegeEscalation must be false"


@resource_rule("kubernetes-workload-disallow-privileged", types=WORKLOADS, severity="critical",
               description="Privileged containers can do anything the node can.")
def not_privileged(resource: Resource, _: Context) -> Iterable[str]:
    """No container or init container sets securityContext.privileged to true; unset or false passes."""
    for _spec, where, container in pod_checks(resource):
        if dig(container, "securityContext", "privileged") is True:
            yield f"{where}: privileged is true"


@resource_rule("kubernetes-workload-require-read-only-root-filesystem", types=WORKLOADS, severity="medium",
               description="A read-only root filesystem stops an intruder from changing the image's binaries.")
def read_only_root(resource: Resource, _: Context) -> Iterable[str]:
    """Every container and init container sets securityContext.readOnlyRootFilesystem to true explicitly; unset or
    false fails."""
    for _spec, where, container in pod_checks(resource):
        if dig(container, "securityContext", "readOnlyRootFilesystem") is not True:
            yield f"{where}: readOnlyRootFilesystem must be true (mount an emptyDir where it writes)"


@resource_rule("kubernetes-workload-require-drop-all-capabilities", types=WORKLOADS, severity="high",
               description="Containers drop ALL Linux capabilities and add back none but NET_BIND_SERVICE.")
def drop_all_capabilities(resource: Resource, _: Context) -> Iterable[str]:
    """Every container and init container lists ALL in securityContext.capabilities.drop, and capabilities.add holds
    nothing but NET_BIND_SERVICE; any other added capability is reported by name."""
    for _spec, where, container in pod_checks(resource):
        caps = dig(container, "securityContext", "capabilities") or {}
        if "ALL" not in items(caps.get("drop")):
            yield f"{where}: capabilities.drop must contain ALL"
        added = set(items(caps.get("add"))) - ALLOWED_ADDED_CAPABILITIES
        if added:
            yield f"{where}: adds capabilities {sorted(added)}"


@resource_rule("kubernetes-workload-require-seccomp-runtime-default", types=WORKLOADS, severity="medium",
               description="A seccomp profile (RuntimeDefault) blocks syscalls containers never need.")
def seccomp(resource: Resource, _: Context) -> Iterable[str]:
    """Every container and init container has seccompProfile.type RuntimeDefault or Localhost, from its own
    securityContext or else the pod's; unset or Unconfined fails."""
    for spec, where, container in pod_checks(resource):
        profile = effective(spec, container, "seccompProfile") or {}
        if profile.get("type") not in ("RuntimeDefault", "Localhost"):
            yield f"{where}: seccompProfile.type must be RuntimeDefault (is {profile.get('type')})"


@resource_rule("kubernetes-workload-disallow-host-namespaces", types=WORKLOADS, severity="critical",
               description="hostNetwork, hostPID and hostIPC expose the node's network and processes to the pod.")
def no_host_namespaces(resource: Resource, _: Context) -> Iterable[str]:
    """The pod spec sets none of hostNetwork, hostPID and hostIPC to true; each one that is true is reported."""
    spec = pod_spec(resource) or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            yield f"pod spec: {key} is true"


@resource_rule("kubernetes-workload-disallow-host-path", types=WORKLOADS, severity="high",
               description="hostPath volumes give the pod the node's filesystem.")
def no_host_path(resource: Resource, _: Context) -> Iterable[str]:
    """No volume of the pod spec is a hostPath volume; each one is reported by name."""
    spec = pod_spec(resource) or {}
    for volume in items(spec.get("volumes")):
        if volume.get("hostPath") is not None:
            yield f"volume {volume.get('name')}: hostPath is not allowed"


@resource_rule("kubernetes-workload-disallow-host-port", types=WORKLOADS, severity="medium",
               description="hostPort binds the node's port, bypassing Services and NetworkPolicies.")
def no_host_port(resource: Resource, _: Context) -> Iterable[str]:
    """No port of any container or init container sets a hostPort (unset or 0 passes); each is reported with its
    number."""
    for _spec, where, container in pod_checks(resource):
        for port in items(container.get("ports")):
            if port.get("hostPort"):
                yield f"{where}: hostPort {port.get('hostPort')} is not allowed"


@resource_rule("kubernetes-workload-disallow-service-account-token-automount", types=WORKLOADS,
               severity="medium",
               description="Pods that do not call the Kubernetes API must not carry an API token.")
def no_token_automount(resource: Resource, _: Context) -> Iterable[str]:
    """The pod spec sets automountServiceAccountToken to false explicitly; unset (Kubernetes then mounts the token)
    fails. The ServiceAccount's own setting is not consulted."""
    spec = pod_spec(resource)
    if spec is not None and spec.get("automountServiceAccountToken") is not False:
        yield "pod spec: automountServiceAccountToken must be false"


# ---------------------------------------------------------------- resources, probes, images, env

@resource_rule("kubernetes-workload-require-resources", types=WORKLOADS, severity="high",
               description="Every container sets cpu and memory requests and limits, so scheduling and "
                           "eviction are predictable and one pod cannot starve a node.")
def require_resources(resource: Resource, _: Context) -> Iterable[str]:
    """Every container and init container sets resources.requests.cpu, requests.memory, limits.cpu and limits.memory
    to a non-empty value; each missing one is reported. Their sizes are not judged."""
    for _spec, where, container in pod_checks(resource):
        for section in ("requests", "limits"):
            for kind in ("cpu", "memory"):
                if dig(container, "resources", section, kind) in (None, ""):
                    yield f"{where}: resources.{section}.{kind} is not set"


@resource_rule("kubernetes-workload-require-probes", types=WORKLOADS, severity="high",
               description="Long-running containers need readiness and liveness probes, or traffic reaches "
                           "pods that are not ready and hung pods are never restarted.")
def require_probes(resource: Resource, _: Context) -> Iterable[str]:
    """Every container (init containers excepted) of a Deployment, StatefulSet, DaemonSet, ReplicaSet or Pod has a
    readinessProbe and a livenessProbe; Jobs and CronJobs are skipped. A startupProbe is not required."""
    if resource.type in BATCH:
        return
    spec = pod_spec(resource) or {}
    for where, container in containers(spec, init=False):
        for probe in ("readinessProbe", "livenessProbe"):
            if not isinstance(container.get(probe), Mapping):
                yield f"{where}: {probe} is not set"


def image_problem(image: Any) -> str | None:
    if not isinstance(image, str) or not image:
        return "has no image"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image} has no tag (it means :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image} uses the mutable tag latest"
    return None


@resource_rule("kubernetes-workload-require-pinned-image", types=WORKLOADS, severity="high",
               description="Images are pinned by a tag other than latest, or by digest, so a rollback "
                           "really runs the earlier code.")
def pinned_image(resource: Resource, _: Context) -> Iterable[str]:
    """Every container and init container names an image pinned by digest (`@sha256:`) or by a tag other than
    `latest`; a missing image, an untagged one (implicitly :latest) and :latest are reported."""
    for _spec, where, container in pod_checks(resource):
        problem = image_problem(container.get("image"))
        if problem:
            yield f"{where}: {problem}"


@resource_rule("kubernetes-workload-disallow-literal-secret-env", types=WORKLOADS, severity="critical",
               description="Secret-looking environment variables must come from a Secret (secretKeyRef), "
                           "never a literal in the manifest.")
def no_literal_secret_env(resource: Resource, _: Context) -> Iterable[str]:
    """Every env var whose name looks secret (PASSWORD, SECRET, TOKEN, API_KEY, ...) has no literal
    value, except a `*_FILE` variable naming a file inside a mounted Secret volume (the `_FILE`
    convention of the official images: the value is a path, the secret stays in the file)."""
    for spec, where, container in pod_checks(resource):
        secret_dirs = _secret_mount_paths(spec, container)
        for env in items(container.get("env")):
            name, value = str(env.get("name", "")), env.get("value")
            if not SECRET_ENV_NAME.search(name) or value in (None, ""):
                continue
            if name.endswith("_FILE") and any(str(value).startswith(f"{d.rstrip('/')}/") for d in secret_dirs):
                continue
            yield f"{where}: env {name} has a literal value; use valueFrom.secretKeyRef"


def _secret_mount_paths(spec: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    """Where the container mounts volumes made only of Secrets (secret, or projected secrets)."""
    secret_volumes = set()
    for volume in items(spec.get("volumes")):
        sources = items(dig(volume, "projected", "sources"))
        if "secret" in volume or (sources and all("secret" in source for source in sources)):
            secret_volumes.add(volume.get("name"))
    return [str(m.get("mountPath")) for m in items(container.get("volumeMounts"))
            if m.get("name") in secret_volumes and m.get("mountPath")]


@resource_rule("kubernetes-workload-require-selector-match", types=CONTROLLERS, severity="high",
               description="A controller's selector must match its pod template's labels, or it manages no pods.")
def selector_match(resource: Resource, _: Context) -> Iterable[str]:
    """A Deployment's, StatefulSet's, DaemonSet's or ReplicaSet's spec.selector (matchLabels, and matchExpressions
    In, NotIn, Exists, DoesNotExist) selects its spec.template.metadata.labels; a missing selector fails too."""
    selector = dig(resource.props, "spec", "selector")
    if not selector_matches(selector, pod_template_labels(resource)):
        yield "spec.selector does not match spec.template.metadata.labels"


@resource_rule("kubernetes-workload-require-spread", types=(DEPLOYMENT, STATEFUL_SET), severity="medium",
               description="Replicated workloads spread over nodes and zones (topology spread or "
                           "anti-affinity), so one node or zone failure does not take every replica.")
def require_spread(resource: Resource, _: Context) -> Iterable[str]:
    """A Deployment or StatefulSet with spec.replicas of 2 or more, or unset (an HPA may own the count), has a
    topologySpreadConstraints entry or an affinity.podAntiAffinity in its pod spec; either suffices, and their
    topology keys and strength are not examined. spec.replicas 0 or 1 is skipped."""
    replicas = number(dig(resource.props, "spec", "replicas"))
    if replicas is not None and replicas < 2:
        return
    spec = pod_spec(resource) or {}
    if not items(spec.get("topologySpreadConstraints")) and not dig(spec, "affinity", "podAntiAffinity"):
        yield "no topologySpreadConstraints or podAntiAffinity on a replicated workload"


# ---------------------------------------------------------------- namespaces and services

def namespaced(resource_type: str) -> bool:
    return resource_type.startswith("kubernetes:") and not CLUSTER_SCOPED.match(resource_type) \
        and not resource_type.startswith(("kubernetes:helm", "kubernetes:yaml", "kubernetes:kustomize"))


@resource_rule("kubernetes-resource-require-explicit-namespace", types=namespaced, severity="medium",
               description="Namespaced objects name their namespace, and never `default`: otherwise they "
                           "land wherever the kubeconfig points.")
def explicit_namespace(resource: Resource, _: Context) -> Iterable[str]:
    """Every namespaced Kubernetes object sets metadata.namespace to something other than empty or `default`.
    Cluster-scoped kinds (Namespace, Node, PersistentVolume, ClusterRole(Binding), StorageClass, CRDs, webhook
    configurations, PriorityClass, GMP's Cluster*/Global* kinds, ...) and helm/yaml/kustomize wrappers are
    skipped."""
    namespace = namespace_of(resource)
    if namespace in (None, "", "default"):
        yield f"metadata.namespace is {namespace!r}; set an explicit, non-default namespace"


@resource_rule("kubernetes-core-v1-service-disallow-external-exposure", types=(SERVICE,), severity="high",
               description="Services stay ClusterIP: the only way in is the HTTPS load balancer and the "
                           "mesh gateway (LoadBalancer/NodePort bypass TLS, Cloud Armor and JWT checks).")
def no_external_service(resource: Resource, _: Context) -> Iterable[str]:
    """A Service's spec.type is neither LoadBalancer nor NodePort (ClusterIP, unset and ExternalName pass)."""
    service_type = dig(resource.props, "spec", "type")
    if service_type in ("LoadBalancer", "NodePort"):
        yield f"spec.type is {service_type}"


@resource_rule("kubernetes-autoscaling-v2-horizontalpodautoscaler-require-min-replicas", types=(HPA,),
               severity="high",
               description="HPAs keep at least 2 replicas in prod and a max above the min, so one pod "
                           "restart is never an outage and scaling is possible.")
def hpa_replicas(resource: Resource, context: Context) -> Iterable[str]:
    """Every HorizontalPodAutoscaler has spec.maxReplicas set and greater than spec.minReplicas (unset counts as 1);
    on prod stacks only, minReplicas must also be at least 2."""
    # Kubernetes defaults an unset minReplicas to 1.
    low = number(dig(resource.props, "spec", "minReplicas")) or 1.0
    high = number(dig(resource.props, "spec", "maxReplicas"))
    if context.is_prod and low < 2:
        yield f"spec.minReplicas is {low}; prod needs at least 2"
    if high is None or high <= low:
        yield f"spec.maxReplicas ({high}) must be greater than spec.minReplicas ({low})"


# ---------------------------------------------------------------- stack-level rules

def _of_type(resources: list[Resource], *types: str) -> list[Resource]:
    return index_of(resources).of_type(*types)


def expected_replicas(workload: Resource, resources: list[Resource]) -> float:
    """Declared replicas, or the HPA's minimum when an HPA owns the count (replicas unset = 1)."""
    name = dig(workload.props, "metadata", "name")
    kind = workload.type.rsplit(":", 1)[-1]
    hpa = index_of(resources).hpa_for(HPA, namespace_of(workload), kind, name)
    if hpa is not None:
        return number(dig(hpa.props, "spec", "minReplicas")) or 1.0
    replicas = number(dig(workload.props, "spec", "replicas"))
    return 1.0 if replicas is None else replicas


def allowed_disruptions(pdb: Resource, replicas: float) -> float:
    spec = dig(pdb.props, "spec") or {}
    for key in ("maxUnavailable", "minAvailable"):
        value = spec.get(key)
        if value is None:
            continue
        if isinstance(value, str) and value.endswith("%"):
            # Kubernetes rounds a PDB percentage up, for either field.
            count = float(math.ceil(replicas * float(value[:-1]) / 100))
        else:
            count = float(value)
        return count if key == "maxUnavailable" else replicas - count
    return 0.0


@stack_rule("kubernetes-workload-require-disruption-budget", severity="high",
            description="Every multi-replica workload has a PodDisruptionBudget that allows at least one "
                        "disruption (never more than the HPA minimum), so node drains neither kill all "
                        "replicas nor block forever.")
def disruption_budget(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """For each Deployment and StatefulSet expecting 2 or more replicas (spec.replicas, or the minReplicas of the
    HPA targeting it; unset = 1): a PodDisruptionBudget in its namespace selects its pod labels, and every such PDB
    allows from 1 to replicas - 1 disruptions at that count (maxUnavailable, else replicas - minAvailable;
    percentages rounded up; neither set allows 0)."""
    index = index_of(resources)
    for workload in _of_type(resources, DEPLOYMENT, STATEFUL_SET):
        replicas = expected_replicas(workload, resources)
        if replicas < 2:
            continue
        labels = pod_template_labels(workload)
        candidates = index.selector_candidates(PDB, ("spec", "selector"), namespace_of(workload), labels)
        matching = [p for p in candidates if selector_matches(dig(p.props, "spec", "selector"), labels)]
        if not matching:
            yield workload, f"{replicas:.0f} replicas but no PodDisruptionBudget selects its pods"
        name = dig(workload.props, "metadata", "name")
        for pdb in matching:
            allowed = allowed_disruptions(pdb, replicas)
            if allowed < 1:
                yield pdb, f"allows no disruption of {name} at {replicas:.0f} replicas: node drains would block"
            elif allowed >= replicas:
                yield pdb, f"allows {allowed:.0f} disruptions of {name} at {replicas:.0f} replicas: " \
                           "a drain could take every replica down"


@stack_rule("kubernetes-workload-require-replicas", severity="high",
            description="In prod every Deployment and StatefulSet runs at least 2 replicas (directly or through "
                        "its HPA); StatefulSets sharing a governing Service (one per zone of one cluster) count "
                        "together.", prod_only=True)
def require_replicas(resources: list[Resource], context: Context) -> Iterable[tuple[Resource, str]]:
    """On prod stacks, each Deployment and StatefulSet expects at least 2 replicas (spec.replicas, or the
    minReplicas of the HPA targeting it; unset = 1). StatefulSets with the same namespace and spec.serviceName are
    summed, so per-zone StatefulSets of one cluster may each run 1."""
    governed: dict[tuple[str | None, Any], float] = {}
    for sts in _of_type(resources, STATEFUL_SET):
        key = (namespace_of(sts), dig(sts.props, "spec", "serviceName"))
        governed[key] = governed.get(key, 0.0) + expected_replicas(sts, resources)
    for workload in _of_type(resources, DEPLOYMENT, STATEFUL_SET):
        replicas = expected_replicas(workload, resources)
        service = dig(workload.props, "spec", "serviceName")
        if workload.type == STATEFUL_SET and service:
            replicas = governed[(namespace_of(workload), service)]
        if replicas < 2:
            yield workload, f"runs {replicas:.0f} replica(s); prod needs at least 2"


@stack_rule("kubernetes-workload-require-network-policy", severity="high",
            description="Every pod is selected by a NetworkPolicy in its namespace, so pod-to-pod traffic "
                        "is denied unless allowed.")
def require_network_policy(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """Every workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod) has its pod labels
    selected by the podSelector of some NetworkPolicy in its namespace (an empty podSelector selects all). What the
    policy allows is not examined."""
    index = index_of(resources)
    for workload in _of_type(resources, *WORKLOADS):
        labels = pod_template_labels(workload)
        candidates = index.selector_candidates(NETWORK_POLICY, ("spec", "podSelector"), namespace_of(workload),
                                               labels)
        if not any(selector_matches(dig(p.props, "spec", "podSelector") or {}, labels) for p in candidates):
            yield workload, "no NetworkPolicy in its namespace selects its pods"
