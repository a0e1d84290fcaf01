"""The Keycloak component under the mock engine: both stacks, both database modes, realm facts,
option names of the pinned release, sizing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components import keycloak as kc
from components import podspec
from components.keycloak_options import REMOVED_OPTIONS, SUPPORTED_LINES, build_options, runtime_options
from components.keycloak_realm import RealmSpec, realm_file_name, realm_representation
from stacks.settings import parse_settings
from stacks.stack_file import PLACEHOLDER_SECRET
from tests.conftest import STACKS, one, resources_of
from tools import render as render_tool

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"


def settings_for(stack: str, config: render_tool.StackConfig | None = None):
    config = config or render_tool.load_stack_config(stack)
    return parse_settings(config.values, stack=stack, secret_keys=config.secret_keys)


def with_database(stack: str, database: dict[str, Any]) -> render_tool.StackConfig:
    config = render_tool.load_stack_config(stack)
    keycloak = json.loads(config.values["aiwfe-platform:keycloak"])
    keycloak["database"] = database
    config.values["aiwfe-platform:keycloak"] = json.dumps(keycloak)
    return config


IN_CLUSTER = {"mode": "in-cluster", "image": "postgres:15.15", "storageSize": "20Gi"}
CLOUDSQL = {"mode": "cloudsql", "tier": "db-custom-1-3840", "privateServicesRange": "10.64.0.0/20",
            "proxyImage": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.18.3"}


@pytest.fixture(scope="module")
def every_mode(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], render_tool.RenderResult]:
    """Each stack rendered with each database mode: {(stack, mode): result}."""
    out = tmp_path_factory.mktemp("modes")
    results = {}
    for stack in STACKS:
        for mode, database in (("in-cluster", IN_CLUSTER), ("cloudsql", CLOUDSQL)):
            results[(stack, mode)] = render_tool.render(stack, out / f"{stack}-{mode}",
                                                        config=with_database(stack, database))
    return results


MODES = [(stack, mode) for stack in STACKS for mode in ("in-cluster", "cloudsql")]


def pod(result: render_tool.RenderResult) -> dict[str, Any]:
    return one(result, DEPLOYMENT, "keycloak-deployment")["props"]["spec"]["template"]


def containers_by_name(result: render_tool.RenderResult) -> dict[str, dict[str, Any]]:
    spec = pod(result)["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# ---------------------------------------------------------------- the committed stacks

def test_committed_stacks_pick_their_database_mode(rendered: dict) -> None:
    assert settings_for("staging").keycloak.database.mode == "in-cluster"
    assert settings_for("prod").keycloak.database.mode == "cloudsql"
    assert resources_of(rendered["staging"], SQL_INSTANCE) == []
    assert [r for r in resources_of(rendered["prod"], STATEFUL_SET)
            if r["props"]["metadata"]["namespace"] == "keycloak"] == []  # no in-cluster PostgreSQL


def test_namespace_is_meshed_and_owned_by_the_component(rendered: dict, stack: str) -> None:
    namespace = one(rendered[stack], NAMESPACE, "keycloak-namespace")
    labels = namespace["props"]["metadata"]["labels"]
    assert namespace["props"]["metadata"]["name"] == "keycloak"
    assert labels["istio-injection"] == "enabled"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert "aiwfe:platform:Keycloak" in namespace["parent"]
    assert namespace["protect"] is (stack == "prod")
    for resource in rendered[stack].document["resources"]:
        if "aiwfe:platform:Keycloak" in resource["urn"] and resource["type"].startswith("kubernetes:") \
                and resource["type"] != NAMESPACE:
            assert resource["props"]["metadata"]["namespace"] == "keycloak", resource["urn"]


def test_replicas_pdb_and_spread(rendered: dict, stack: str) -> None:
    s = settings_for(stack).keycloak
    spec = one(rendered[stack], DEPLOYMENT, "keycloak-deployment")["props"]["spec"]
    assert spec["replicas"] == s.replicas == (3 if stack == "prod" else 2)
    budget = one(rendered[stack], PDB, "keycloak-disruption-budget")["props"]["spec"]
    assert budget["minAvailable"] == s.replicas - 1
    if stack == "prod":
        assert budget["minAvailable"] >= 2
    keys = {c["topologyKey"] for c in spec["template"]["spec"]["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_service_exposes_only_http(rendered: dict, stack: str) -> None:
    service = one(rendered[stack], SERVICE, "keycloak-service")["props"]
    assert service["metadata"]["name"] == "keycloak"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080.0, "targetPort": "http", "protocol": "TCP",
                                         "appProtocol": "http"}]
    assert service["spec"]["selector"]["app.kubernetes.io/name"] == "keycloak"


def test_production_start_from_the_official_image(rendered: dict, stack: str) -> None:
    s = settings_for(stack).keycloak
    by_name = containers_by_name(rendered[stack])
    build, server = by_name["keycloak-build"], by_name["keycloak"]
    assert build["image"] == server["image"] == f"quay.io/keycloak/keycloak:{s.version}"
    assert build["command"][-1].endswith("/opt/kc/bin/kc.sh build")
    assert server["command"] == ["/opt/kc/bin/kc.sh"]
    assert server["args"] == ["start", "--optimized", "--import-realm"]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert mounts["/opt/kc/data/import"]["readOnly"] is True


def test_every_rendered_option_exists_in_the_pinned_release(rendered: dict, stack: str) -> None:
    s = settings_for(stack).keycloak
    by_name = containers_by_name(rendered[stack])
    build = {n for n in env_of(by_name["keycloak-build"]) if n.startswith("KC_")}
    runtime = {n for n in env_of(by_name["keycloak"]) if n.startswith("KC_")}
    assert build and build <= build_options(s.version), build - build_options(s.version)
    assert runtime and runtime <= runtime_options(s.version), runtime - runtime_options(s.version)
    # `start --optimized` must not be handed build options, nor the build runtime ones.
    assert not runtime & build_options(s.version)
    everything = {n for c in by_name.values() for n in env_of(c)}
    assert not everything & REMOVED_OPTIONS
    assert not {n for n in everything if n.startswith("KEYCLOAK_")}


def test_option_table_guards_the_check() -> None:
    """The table knows the 26.x names and not the removed ones (else the test above proves nothing)."""
    for line in SUPPORTED_LINES:
        version = f"{line}.0"
        assert {"KC_PROXY_HEADERS", "KC_PROXY_TRUSTED_ADDRESSES", "KC_HOSTNAME", "KC_HTTP_MANAGEMENT_PORT",
                "KC_BOOTSTRAP_ADMIN_PASSWORD", "KC_CACHE_STACK", "KC_HTTP_METRICS_HISTOGRAMS_ENABLED"} \
            <= runtime_options(version)
        assert {"KC_HEALTH_ENABLED", "KC_METRICS_ENABLED", "KC_EVENT_METRICS_USER_ENABLED", "KC_DB"} \
            <= build_options(version)
        assert not (build_options(version) | runtime_options(version)) & REMOVED_OPTIONS


def test_runtime_options_have_the_values_the_requirements_ask(rendered: dict, stack: str) -> None:
    s = settings_for(stack)
    build = env_of(containers_by_name(rendered[stack])["keycloak-build"])
    env = env_of(containers_by_name(rendered[stack])["keycloak"])
    assert env["KC_HOSTNAME"]["value"] == f"https://auth.{s.domain}"
    assert env["KC_PROXY_HEADERS"]["value"] == "xforwarded"
    assert env["KC_PROXY_TRUSTED_ADDRESSES"]["value"] == "127.0.0.6/32"
    assert env["KC_HTTP_ENABLED"]["value"] == "true"
    assert env["KC_HTTP_MANAGEMENT_PORT"]["value"] == "9000"
    assert env["KC_CACHE_EMBEDDED_MTLS_ENABLED"]["value"] == "true"
    assert {k: build[k]["value"] for k in ("KC_DB", "KC_HEALTH_ENABLED", "KC_METRICS_ENABLED")} \
        == {"KC_DB": "postgres", "KC_HEALTH_ENABLED": "true", "KC_METRICS_ENABLED": "true"}
    assert (env["KC_CACHE"]["value"], env["KC_CACHE_STACK"]["value"]) == ("ispn", "jdbc-ping")
    # The metrics the auth dashboard and the auth-failure alert query exist only with these options.
    queried = json.dumps(resources_of(rendered[stack], "kubernetes:monitoring.coreos.com/v1:PrometheusRule"))
    if "keycloak_user_events_total" in queried:
        assert build["KC_EVENT_METRICS_USER_ENABLED"]["value"] == "true"
    assert env["KC_HTTP_METRICS_HISTOGRAMS_ENABLED"]["value"] == "true"
    for name in ("KC_DB_URL", "KC_DB_USERNAME", "KC_DB_PASSWORD", "KC_BOOTSTRAP_ADMIN_USERNAME",
                 "KC_BOOTSTRAP_ADMIN_PASSWORD", "AIWFE_SERVICES_CLIENT_SECRET", "AIWFE_GOOGLE_CLIENT_SECRET",
                 "AIWFE_GITHUB_CLIENT_SECRET"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"], name


def test_probes_on_the_management_port(rendered: dict, stack: str) -> None:
    server = containers_by_name(rendered[stack])["keycloak"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": 8080.0, "http-management": 9000.0, "tcp-jgroups": 7800.0, "tcp-jgroups-fd": 57800.0}
    assert server["startupProbe"]["httpGet"] == {"path": "/health/started", "port": "http-management"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http-management"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http-management"}


def test_jgroups_and_management_bypass_the_sidecar(every_mode: dict) -> None:
    for (_, mode), result in every_mode.items():
        annotations = pod(result)["metadata"]["annotations"]
        inbound = set(annotations["traffic.sidecar.istio.io/excludeInboundPorts"].split(","))
        outbound = set(annotations["traffic.sidecar.istio.io/excludeOutboundPorts"].split(","))
        assert {"7800", "57800", "9000"} <= inbound and {"7800", "57800"} <= outbound
        assert ("3307" in outbound) is (mode == "cloudsql")


def test_secrets_are_generated_and_only_in_secrets(rendered: dict, stack: str) -> None:
    secrets = {r["props"]["metadata"]["name"]: r["props"]["stringData"] for r in resources_of(rendered[stack], SECRET)
               if r["props"]["metadata"]["namespace"] == "keycloak"}
    assert secrets["keycloak-admin"]["password"] == render_tool.SECRET_MARKER
    assert secrets["keycloak-client-secrets"] == {"aiwfe-services": render_tool.SECRET_MARKER,
                                                  "google": render_tool.SECRET_MARKER,
                                                  "github": render_tool.SECRET_MARKER}
    assert secrets["keycloak-db"]["password"] == render_tool.SECRET_MARKER
    passwords = [r for r in resources_of(rendered[stack], "random:index/randomPassword:RandomPassword")
                 if "keycloak" in r["name"]]
    assert {r["name"] for r in passwords} >= {"keycloak-admin-password", "keycloak-services-client-secret",
                                               "keycloak-db-password"}
    for config_map in resources_of(rendered[stack], CONFIG_MAP):
        text = json.dumps(config_map["props"])
        assert PLACEHOLDER_SECRET not in text and render_tool.SECRET_MARKER not in text


def test_realm_config_map_is_the_realm_function(rendered: dict, stack: str) -> None:
    s = settings_for(stack).keycloak
    data = one(rendered[stack], CONFIG_MAP, "keycloak-realm")["props"]["data"]
    assert list(data) == [realm_file_name(s.realm)]
    assert json.loads(data[realm_file_name(s.realm)]) == realm_representation(kc.realm_spec(s))


# ---------------------------------------------------------------- the realm (REQUIREMENTS facts)

SPEC = RealmSpec(name="aiwfe-production", access_token_lifespan=300, sso_session_idle=1800, sso_session_max=36000,
                 client_session_idle=1800, redirect_uris=["https://aiwfe.example.com/user/callback"],
                 web_origins=["https://aiwfe.example.com"], google_client_id="g-id", github_client_id="gh-id")


def test_realm_carries_the_requirements_facts() -> None:
    realm = realm_representation(SPEC)
    assert realm["realm"] == "aiwfe-production" and realm["enabled"] is True
    assert (realm["accessTokenLifespan"], realm["ssoSessionIdleTimeout"]) == (300, 1800)
    assert realm["clientSessionIdleTimeout"] <= realm["ssoSessionIdleTimeout"]
    assert realm["ssoSessionIdleTimeout"] < realm["ssoSessionMaxLifespan"] == 36000
    assert realm["bruteForceProtected"] is True
    clients = {c["clientId"]: c for c in realm["clients"]}
    webapp = clients["aiwfe-webapp"]
    assert webapp["publicClient"] is True and webapp["standardFlowEnabled"] is True
    assert webapp["implicitFlowEnabled"] is False and webapp["directAccessGrantsEnabled"] is False
    assert webapp["attributes"]["pkce.code.challenge.method"] == "S256"
    assert webapp["redirectUris"] == ["https://aiwfe.example.com/user/callback"]
    assert webapp["webOrigins"] == ["https://aiwfe.example.com"]
    services = clients["aiwfe-services"]
    assert services["publicClient"] is False and services["serviceAccountsEnabled"] is True
    assert services["standardFlowEnabled"] is False
    assert services["secret"] == "${AIWFE_SERVICES_CLIENT_SECRET}"
    idps = {i["alias"]: i for i in realm["identityProviders"]}
    assert {a: i["providerId"] for a, i in idps.items()} == {"google": "google", "github": "github"}
    assert idps["google"]["config"]["clientId"] == "g-id"
    assert idps["github"]["config"]["clientSecret"] == "${AIWFE_GITHUB_CLIENT_SECRET}"
    assert "*" not in json.dumps(realm)


@pytest.mark.parametrize("edit", [{"redirect_uris": ["https://aiwfe.example.com/*"]}, {"web_origins": ["*"]},
                                  {"redirect_uris": ["http://aiwfe.example.com/cb"]}, {"client_session_idle": 3600}])
def test_realm_function_refuses_unsafe_input(edit: dict[str, Any]) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError):
        realm_representation(replace(SPEC, **edit))


def test_realm_follows_the_stack_settings(stack: str) -> None:
    s = settings_for(stack)
    realm = realm_representation(kc.realm_spec(s.keycloak))
    assert realm["realm"] == ("aiwfe-production" if stack == "prod" else "aiwfe-staging")
    webapp = next(c for c in realm["clients"] if c["clientId"] == "aiwfe-webapp")
    assert all(u.startswith(f"https://{s.domain}/") for u in webapp["redirectUris"])


# ---------------------------------------------------------------- database modes, both stacks

@pytest.mark.parametrize(("stack", "mode"), MODES)
def test_database_mode(every_mode: dict, stack: str, mode: str) -> None:
    result = every_mode[(stack, mode)]
    db_secret = next(r for r in resources_of(result, SECRET) if r["props"]["metadata"]["name"] == "keycloak-db")
    by_name = containers_by_name(result)
    # The whole of stringData is a secret once one value is: only its keys show.
    assert set(db_secret["props"]["stringData"]) == {"url", "username", "password"}
    if mode == "in-cluster":
        assert kc.database_url(settings_for(stack, with_database(stack, IN_CLUSTER)).keycloak) == \
            "jdbc:postgresql://keycloak-postgres.keycloak.svc.cluster.local:5432/keycloak"
        sts = one(result, STATEFUL_SET, "keycloak-postgres-stateful-set")
        assert sts["protect"] is (stack == "prod")
        assert sts["props"]["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                                                "whenScaled": "Retain"}
        assert resources_of(result, SQL_INSTANCE) == [] and "cloud-sql-proxy" not in by_name
    else:
        assert kc.database_url(settings_for(stack, with_database(stack, CLOUDSQL)).keycloak) == \
            "jdbc:postgresql://127.0.0.1:5432/keycloak"
        assert [r for r in resources_of(result, STATEFUL_SET)
                if r["props"]["metadata"]["namespace"] == "keycloak"] == []
        proxy = by_name["cloud-sql-proxy"]
        assert proxy["restartPolicy"] == "Always"  # native sidecar
        assert "--private-ip" in proxy["args"] and proxy["args"][-1].startswith("mock-project:mock-region:")
        assert pod(result)["spec"]["initContainers"][-1]["name"] == "cloud-sql-proxy", "starts right before Keycloak"
        account = one(result, SERVICE_ACCOUNT, "keycloak-service-account")["props"]["metadata"]
        assert account["annotations"]["iam.gke.io/gcp-service-account"] == \
            f"keycloak-sql-{stack}@mock-project.iam.gserviceaccount.com"


@pytest.mark.parametrize("stack", STACKS)
def test_cloud_sql_instance(every_mode: dict, stack: str) -> None:
    result = every_mode[(stack, "cloudsql")]
    instance = one(result, SQL_INSTANCE, "keycloak-sql-instance")
    props, settings = instance["props"], instance["props"]["settings"]
    assert props["databaseVersion"] == "POSTGRES_15" and props["deletionProtection"] is True
    assert settings["availabilityType"] == "REGIONAL" and settings["deletionProtectionEnabled"] is True
    ip = settings["ipConfiguration"]
    assert ip["ipv4Enabled"] is False
    assert ip["privateNetwork"] == f"projects/aiwfe-{stack}/global/networks/{stack}-vpc"
    backups = settings["backupConfiguration"]
    assert backups["enabled"] is True and backups["pointInTimeRecoveryEnabled"] is True
    assert settings["insightsConfig"]["queryInsightsEnabled"] is True
    assert instance["protect"] is (stack == "prod")
    assert one(result, "gcp:sql/database:Database", "keycloak-sql-database")["protect"] is (stack == "prod")
    assert instance["provider"].endswith("::gcp::gcp-id"), "the explicit gcp provider of the platform"
    role = one(result, "gcp:projects/iAMMember:IAMMember", "keycloak-sql-client-role")["props"]
    assert role["role"] == "roles/cloudsql.client"
    binding = one(result, "gcp:serviceaccount/iAMMember:IAMMember", "keycloak-workload-identity")["props"]
    assert binding["member"] == f"serviceAccount:aiwfe-{stack}.svc.id.goog[keycloak/keycloak]"


def test_postgres_pod_is_hardened_and_only_keycloak_reaches_it(every_mode: dict) -> None:
    result = every_mode[("staging", "in-cluster")]
    spec = one(result, STATEFUL_SET, "keycloak-postgres-stateful-set")["props"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] >= 10000 and spec["securityContext"]["fsGroup"] >= 10000
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/var/run/postgresql", "/tmp",
                                                                    "/var/lib/postgresql/data"}
    assert env_of(container)["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    policy = one(result, NETPOL, "keycloak-postgres-network-policy")["props"]["spec"]
    assert policy["ingress"] == [{"from": [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "keycloak", "app.kubernetes.io/part-of": "aiwfe"}}}],
        "ports": [{"protocol": "TCP", "port": 5432.0}]}]
    service = one(result, SERVICE, "keycloak-postgres-service")["props"]
    assert service["metadata"]["name"] == "keycloak-postgres"
    assert service["spec"]["ports"][0]["name"] == "tcp-postgres"


def test_every_mode_passes_the_policy_pack_where_it_is_meant_to_run(every_mode: dict) -> None:
    for key in (("staging", "in-cluster"), ("staging", "cloudsql"), ("prod", "cloudsql")):
        assert every_mode[key].report.violations == [], every_mode[key].report.as_text()
    # One PostgreSQL pod is not HA: the pack says so if prod ever chose in-cluster.
    assert "kubernetes-workload-require-replicas" in every_mode[("prod", "in-cluster")].report.failed_policies()


def test_keycloak_network_policy(rendered: dict, stack: str) -> None:
    spec = one(rendered[stack], NETPOL, "keycloak-network-policy")["props"]["spec"]
    ingress = {tuple(p["port"] for p in rule["ports"]): rule["from"] for rule in spec["ingress"]}
    assert set(ingress) == {(8080.0,), (9000.0, 15020.0), (7800.0, 57800.0)}
    # The gateway and the realm reconcile Job only, as the mesh's AuthorizationPolicy admits.
    [gateway, job] = ingress[(8080.0,)]
    assert gateway["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "istio-ingress"}
    assert job == {"podSelector": {"matchLabels": podspec.selector_labels(kc.RECONCILE)}}
    mesh_allow = one(rendered[stack], "kubernetes:security.istio.io/v1:AuthorizationPolicy",
                     "mesh-keycloak-authorization")["props"]["spec"]["rules"]
    assert [f["source"]["principals"] for rule in mesh_allow for f in rule["from"]] == \
        [["cluster.local/ns/istio-ingress/sa/istio-ingressgateway",
          "cluster.local/ns/keycloak/sa/keycloak-realm-reconcile"]]
    assert ingress[(7800.0, 57800.0)] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "keycloak", "app.kubernetes.io/part-of": "aiwfe"}}}]
    egress_ports = {p["port"] for rule in spec["egress"] for p in rule["ports"]}
    assert {53.0, 15012.0, 7800.0, 443.0} <= egress_ports
    assert (5432.0 in egress_ports) is (stack == "staging") and (3307.0 in egress_ports) is (stack == "prod")


def test_outputs_follow_the_contract(tmp_path: Path) -> None:
    monitor = render_tool.RecordingMonitor(render_tool.EchoMocks())
    render_tool.run_program(render_tool.platform_program, render_tool.load_stack_config("prod"), monitor)
    component = next(r for r in monitor.registrations if r.type == "aiwfe:platform:Keycloak")
    assert component.name == "keycloak"
    from stacks.platform import keycloak_args

    args = keycloak_args(settings_for("prod"))
    assert args.public_host == "auth.aiwfe.example.com"
    issuer = "https://auth.aiwfe.example.com/realms/aiwfe-production"
    assert f"{issuer}/protocol/openid-connect/certs".startswith(issuer)




# ---------------------------------------------------------------- realm reconcile Job

JOB = "kubernetes:batch/v1:Job"


def reconcile_job(result: render_tool.RenderResult) -> dict:
    return one(result, JOB, "keycloak-realm-reconcile")["props"]


def test_reconcile_job_applies_the_rendered_realm(rendered: dict, stack: str) -> None:
    from components import keycloak_reconcile as reconcile

    s = settings_for(stack).keycloak
    job = reconcile_job(rendered[stack])
    files = one(rendered[stack], CONFIG_MAP, "keycloak-realm-reconcile-files")["props"]["data"]
    assert files == {**reconcile.reconcile_files(kc.realm_spec(s)), reconcile.SCRIPT_NAME: reconcile.SCRIPT}
    # The split files carry exactly what the import file does.
    [imported] = one(rendered[stack], CONFIG_MAP, "keycloak-realm")["props"]["data"].values()
    realm = json.loads(imported)
    assert json.loads(files[reconcile.REALM_FILE]) == {k: v for k, v in realm.items()
                                                        if k not in ("clients", "identityProviders")}
    assert [json.loads(files[f"client-{c['clientId']}.json"]) for c in realm["clients"]] == realm["clients"]
    assert [json.loads(files[f"idp-{p['alias']}.json"]) for p in realm["identityProviders"]] \
        == realm["identityProviders"]

    pod = job["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["image"] == s.image and pod["spec"]["restartPolicy"] == "Never"
    assert container["command"] == ["/bin/bash", f"{kc.RECONCILE_DIR}/{reconcile.SCRIPT_NAME}"]
    env = {e["name"]: e for e in container["env"]}
    assert env[reconcile.URL_ENV]["value"] == f"http://keycloak.{s.namespace}.svc.cluster.local:8080"
    assert env[reconcile.REALM_ENV]["value"] == s.realm
    for name in (reconcile.ADMIN_PASSWORD_ENV, *reconcile.SECRET_ENVS):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"], name
    annotations = pod["metadata"]["annotations"]
    assert annotations["aiwfe.io/realm-sha256"] == reconcile.files_digest(reconcile.reconcile_files(kc.realm_spec(s)))
    assert "aiwfe.io/client-secrets-version" in annotations
    assert annotations["sidecar.istio.io/nativeSidecar"] == "true"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # A failed run is replaced by the next `pulumi up`; Pulumi waits longer than the Job may run.
    assert job["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"
    assert job["spec"]["activeDeadlineSeconds"] == kc.RECONCILE_DEADLINE_SECONDS
    assert int(kc.JOB_AWAIT.removesuffix("m")) * 60 > kc.RECONCILE_DEADLINE_SECONDS
    assert reconcile.WAIT_SECONDS < kc.RECONCILE_DEADLINE_SECONDS


def test_a_changed_script_reruns_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    from components import keycloak_reconcile as reconcile

    files = reconcile.reconcile_files(kc.realm_spec(settings_for("prod").keycloak))
    before = reconcile.files_digest(files)
    monkeypatch.setattr(reconcile, "SCRIPT", reconcile.SCRIPT + "# a fix\n")
    assert reconcile.files_digest(files) != before


def test_reconcile_job_changes_when_the_realm_does(rendered: dict, stack: str) -> None:
    """A different realm means a different pod template, so Pulumi replaces the Job and it runs again."""
    config = render_tool.load_stack_config(stack)
    keycloak = json.loads(config.values["aiwfe-platform:keycloak"])
    keycloak["tokens"]["accessTokenLifespan"] = "4m"
    config.values["aiwfe-platform:keycloak"] = json.dumps(keycloak)
    registrations = render_tool.run_program(render_tool.platform_program, config)
    [changed] = [r.props for r in registrations if r.name == "keycloak-realm-reconcile"]
    before = reconcile_job(rendered[stack])["spec"]["template"]["metadata"]["annotations"]["aiwfe.io/realm-sha256"]
    assert changed["spec"]["template"]["metadata"]["annotations"]["aiwfe.io/realm-sha256"] != before


def test_reconcile_script_is_valid_bash() -> None:
    import subprocess

    from components.keycloak_reconcile import SCRIPT
    result = subprocess.run(["bash", "-n"], input=SCRIPT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_only_the_reconcile_job_reaches_keycloak_besides_the_gateway(rendered: dict, stack: str) -> None:
    policy = one(rendered[stack], NETPOL, "keycloak-network-policy")["props"]["spec"]
    http_from = [rule["from"] for rule in policy["ingress"] if {"protocol": "TCP", "port": 8080.0} in rule["ports"]]
    assert {"podSelector": {"matchLabels": podspec.selector_labels(kc.RECONCILE)}} in \
        [peer for peers in http_from for peer in peers]
    job_policy = one(rendered[stack], NETPOL, "keycloak-realm-reconcile-network-policy")["props"]["spec"]
    assert job_policy["ingress"] == [] and set(job_policy["policyTypes"]) == {"Ingress", "Egress"}
    to_keycloak = [rule for rule in job_policy["egress"]
                   if rule.get("to") == [{"podSelector": {"matchLabels": podspec.selector_labels(kc.APP)}}]]
    assert [rule["ports"] for rule in to_keycloak] == [[{"protocol": "TCP", "port": 8080.0}]]
