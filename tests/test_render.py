"""The offline render: its files, their format, secrets masked, manifests valid, policies green."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from stacks import mock_run, stack_file
from stacks.settings import SECRET_KEYS, SettingsError
from stacks.stack_file import PLACEHOLDER_SECRET
from tests import istio_schemas, monitoring_schemas
from tests.conftest import STACKS
from tools import render as render_tool

RESOURCE_KEYS = {"urn", "type", "name", "parent", "custom", "props", "dependencies", "protect",
                 "retainOnDelete", "provider"}


def test_resources_json_format(rendered: dict, stack: str) -> None:
    result = rendered[stack]
    document = json.loads((Path(result.manifests[0]).parent.parent / "resources.json").read_text())
    assert document == result.document
    assert document["formatVersion"] == render_tool.FORMAT_VERSION
    assert (document["stack"], document["project"]) == (stack, "aiwfe-platform")
    urns = [r["urn"] for r in document["resources"]]
    assert urns == sorted(urns) and len(urns) == len(set(urns))
    for resource in document["resources"]:
        assert set(resource) == RESOURCE_KEYS
        assert resource["urn"].startswith(f"urn:pulumi:{stack}::aiwfe-platform::")
        assert resource["urn"].endswith(f"::{resource['name']}")
        assert isinstance(resource["props"], dict)
        assert resource["parent"].startswith(f"urn:pulumi:{stack}::aiwfe-platform::")
    # Components are recorded too, and the stack itself is not a declared resource.
    types = {r["type"] for r in document["resources"]}
    assert {"aiwfe:platform:Workloads", "aiwfe:platform:WebSocketService", "aiwfe:platform:Frontend"} <= types
    assert "pulumi:pulumi:Stack" not in types


def test_render_is_deterministic(tmp_path: Path) -> None:
    first = render_tool.render("prod", tmp_path / "a")
    second = render_tool.render("prod", tmp_path / "b")
    assert first.document == second.document
    for a, b in zip(first.manifests, second.manifests, strict=True):
        assert a.name == b.name and a.read_text() == b.read_text()


def test_every_kubernetes_resource_has_one_manifest(rendered: dict, stack: str) -> None:
    result = rendered[stack]
    kubernetes = [r for r in result.document["resources"] if r["type"].startswith("kubernetes:")]
    assert len(result.manifests) == len(kubernetes) > 0
    names = {(m["kind"], m["metadata"].get("namespace"), m["metadata"]["name"])
             for m in map(lambda p: yaml.safe_load(p.read_text()), result.manifests)}
    assert names == {(r["props"]["kind"], r["props"]["metadata"].get("namespace"), r["props"]["metadata"]["name"])
                     for r in kubernetes}
    first = yaml.safe_load(result.manifests[0].read_text())
    assert first["kind"] == "Namespace", "namespaces sort first so `kubectl apply -f` works in order"


def test_manifests_validate_strictly_against_the_stack_kubernetes_version(rendered: dict, stack: str) -> None:
    config = render_tool.load_stack_config(stack)
    version = config.values["aiwfe-platform:kubernetesVersion"]
    for path in rendered[stack].manifests:
        manifest = yaml.safe_load(path.read_text())
        if istio_schemas.is_istio(manifest):
            continue  # Istio kinds: test_istio_manifests_validate_strictly_against_istio_crds
        if monitoring_schemas.handles(manifest):  # monitoring CRDs: our own schemas (tests/monitoring_schemas.py)
            monitoring_schemas.validate(manifest)
            continue
        # strict=True rejects unknown fields; numbers must be integers where the schema says so.
        kubernetes_validate.validate(manifest, version, strict=True)


# ---- Istio custom resources: validated against Istio's own CRD schemas (tests/istio_schemas.py)

def test_istio_manifests_validate_strictly_against_istio_crds(rendered: dict, stack: str) -> None:
    manifests = [yaml.safe_load(p.read_text()) for p in rendered[stack].manifests]
    istio = [m for m in manifests if istio_schemas.is_istio(m)]
    assert {m["kind"] for m in istio} >= {"Gateway", "VirtualService", "DestinationRule", "PeerAuthentication",
                                          "RequestAuthentication", "AuthorizationPolicy", "Telemetry"}
    for manifest in istio:
        istio_schemas.validate(manifest)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda dr: dr["spec"]["trafficPolicy"]["outlierDetection"].update(consecutive5xxError=5),
     "'consecutive5xxError' was unexpected"),
    (lambda dr: dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"].update(maxConnections="many"),
     "'many' is not of type 'integer'"),
    (lambda dr: dr.update(apiVersion="networking.istio.io/v1alpha3"), "is not served by the schema file"),
    (lambda dr: dr["metadata"].update(uid="x"), "'uid' was unexpected"),
    (lambda dr: dr.update(specs={}), "'specs' was unexpected"),
])
def test_istio_validation_catches_unknown_fields_and_versions(rendered: dict, edit, message: str) -> None:
    """Guards the test above: what the API server would prune or refuse must not validate."""
    rule = next(yaml.safe_load(p.read_text()) for p in rendered["prod"].manifests
                if p.name.endswith("destinationrule-aiwfe-websocket.yaml"))
    istio_schemas.validate(rule)
    edit(rule)
    with pytest.raises(istio_schemas.IstioSchemaError, match=re.escape(message)):
        istio_schemas.validate(rule)


def test_strict_validation_catches_an_unknown_field(rendered: dict) -> None:
    """Guards the test above: a misspelt field must not validate."""
    deployment = next(yaml.safe_load(p.read_text()) for p in rendered["prod"].manifests if "-deployment-" in p.name)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.34", strict=True)


def test_no_secret_value_is_written_anywhere(rendered: dict, stack: str) -> None:
    out = rendered[stack].manifests[0].parent.parent
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        assert PLACEHOLDER_SECRET not in path.read_text(), f"secret value leaked into {path}"
    secrets = {r["name"]: r["props"].get("stringData") or r["props"].get("data")
               for r in rendered[stack].document["resources"] if r["type"] == "kubernetes:core/v1:Secret"}
    assert secrets["workloads-app-secrets"] == {"REDIS_PASSWORD": render_tool.SECRET_MARKER}
    assert secrets["redis-cluster-auth"] == {"password": render_tool.SECRET_MARKER,
                                             "auth.conf": render_tool.SECRET_MARKER}
    # The generated password itself (the mock's stand-in) is written nowhere either.
    generated = mock_run.computed_outputs("random:index/randomPassword:RandomPassword", "redis-cluster-password",
                                              {"length": 32})["result"]
    for path in files:
        assert generated not in path.read_text(), f"generated password leaked into {path}"
    for name, secret in secrets.items():  # every Secret of every component: keys kept, values masked
        assert secret and set(secret.values()) == {render_tool.SECRET_MARKER}, name


def test_mask_secrets_replaces_wrapped_values_only() -> None:
    wrapped = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "s3cret"}
    wrapped_map = {**wrapped, "value": {"KEY": "s3cret", "LIST": ["x", 1]}}
    masked = render_tool.mask_secrets({"a": [wrapped, "plain"], "b": {"c": wrapped}, "d": wrapped_map})
    assert masked == {"a": ["[secret]", "plain"], "b": {"c": "[secret]"},
                      "d": {"KEY": "[secret]", "LIST": ["[secret]", "[secret]"]}}


def test_policy_pack_passes_on_both_stacks(rendered: dict, stack: str) -> None:
    report = rendered[stack].report
    assert report.violations == [], report.as_text()
    assert report.not_evaluated == []
    assert len(report.policies) >= 20
    out = rendered[stack].manifests[0].parent.parent
    assert json.loads((out / "policy-report.json").read_text())["passed"] is True
    assert "PASSED" in (out / "policy-report.txt").read_text()


def test_render_cli_writes_the_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render_tool.main(["--stack", "staging", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "resources.json").exists()
    assert "rendered stack staging" in capsys.readouterr().out


def test_render_cli_rejects_an_unknown_stack(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert render_tool.main(["--stack", "qa", "--out", str(tmp_path)]) == 2
    assert "stacks here: prod, staging" in capsys.readouterr().err


def test_secure_values_become_secret_placeholders(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: aiwfe-platform\n")
    (tmp_path / "Pulumi.qa.yaml").write_text(
        "config:\n  aiwfe-platform:redisPassword:\n    secure: v1:abc\n  aiwfe-platform:domain: qa.example.com\n"
        "  aiwfe-platform:mesh:\n    token:\n      secure: v1:def\n")
    config = render_tool.load_stack_config("qa", tmp_path)
    assert config.values["aiwfe-platform:redisPassword"] == PLACEHOLDER_SECRET
    assert json.loads(config.values["aiwfe-platform:mesh"]) == {"token": PLACEHOLDER_SECRET}
    # Unset stack secrets (SECRET_KEYS) get the placeholder too.
    assert set(config.secret_keys) == {"aiwfe-platform:redisPassword", "aiwfe-platform:mesh"} | {
        f"aiwfe-platform:{key}" for key in SECRET_KEYS}
    assert config.values["aiwfe-platform:domain"] == "qa.example.com"


@pytest.mark.parametrize("stack_name", STACKS)
def test_bad_config_fails_before_any_resource_is_declared(stack_name: str) -> None:
    config = render_tool.load_stack_config(stack_name)
    websocket = json.loads(config.values["aiwfe-platform:websocket"])
    websocket["image"] = "ghcr.io/aiwfe/websocket-service:latest"
    config.values["aiwfe-platform:websocket"] = json.dumps(websocket)
    monitor = render_tool.RecordingMonitor(render_tool.EchoMocks())
    with pytest.raises(SettingsError, match=r"websocket\.image"):
        render_tool.run_program(render_tool.platform_program, config, monitor)
    assert monitor.registrations == []


def test_the_same_program_registers_resources_with_good_config() -> None:
    """Guards the test above: the monitor does record registrations when config is valid."""
    monitor = render_tool.RecordingMonitor(render_tool.EchoMocks())
    render_tool.run_program(render_tool.platform_program, render_tool.load_stack_config("prod"), monitor)
    assert len(monitor.registrations) > 20


def test_manifests_round_trip_to_the_declared_props(rendered: dict, stack: str) -> None:
    """What kubectl would apply is exactly what the provider receives (numbers as integers)."""
    def key(obj: dict) -> tuple:  # names repeat across namespaces (e.g. each namespace's `allow-nothing`)
        return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]

    by_key = {key(r["props"]): r for r in rendered[stack].document["resources"] if r["type"].startswith("kubernetes:")}
    for path in rendered[stack].manifests:
        manifest = yaml.safe_load(path.read_text())
        declared = by_key[key(manifest)]["props"]
        assert manifest == json.loads(json.dumps(declared), parse_float=lambda f: int(float(f))
                                      if float(f).is_integer() else float(f)), path.name
    config_map = next(p for p in rendered[stack].manifests if p.name.endswith("user-frontend-nginx.yaml"))
    assert "default.conf: |" in config_map.read_text(), "multi-line config renders as a readable block"


def test_policy_report_table_marks_the_failing_policy(rendered: dict) -> None:
    from policies.aiwfe_policies import offline

    document = copy.deepcopy(rendered["prod"].document)
    deployment = next(r for r in document["resources"] if r["name"] == "websocket-deployment")
    deployment["props"]["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/aiwfe/websocket-service"
    report = offline.evaluate_document(document)
    assert report.status("kubernetes-workload-require-pinned-image") == "FAIL"
    assert report.status("kubernetes-workload-require-probes") == "pass"
    text = report.as_text()
    assert re.search(r"^  FAIL +mandatory +kubernetes-workload-require-pinned-image +1$", text, re.MULTILINE)
    assert len(re.findall(r"^  pass ", text, re.MULTILINE)) == len(report.policies) - 1
    assert text.rstrip().endswith("FAILED: 1 mandatory violation(s), 0 advisory")


def test_objects_with_masked_secrets_never_land_in_manifests(rendered: dict, stack: str) -> None:
    out = rendered[stack].manifests[0].parent.parent
    applied = list((out / "manifests").glob("*.yaml"))
    assert applied and all(render_tool.SECRET_MARKER not in p.read_text() for p in applied)
    masked = [p.name for p in (out / "masked").glob("*.yaml")]
    secrets = [r["props"]["metadata"] for r in rendered[stack].document["resources"]
               if r["type"] == "kubernetes:core/v1:Secret"]
    assert sorted(masked) == sorted(f"02-secret-{m['namespace']}-{m['name']}.yaml" for m in secrets)
    assert "02-secret-aiwfe-app-secrets.yaml" in masked


def test_render_refuses_a_folder_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    assert render_tool.main(["--stack", "staging", "--out", str(tmp_path)]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "resources.json").exists()


def test_render_replaces_its_own_earlier_output(tmp_path: Path) -> None:
    render_tool.render("staging", tmp_path)
    stale = tmp_path / "manifests" / "99-stale.yaml"
    stale.write_text("kind: Stale\n")
    render_tool.render("staging", tmp_path)
    assert not stale.exists()


@pytest.mark.parametrize(("line", "key"), [
    ("    namespace: aiwfe-redis\n", "redis.namespace"),
    ("    namespace: keycloak\n", "keycloak.namespace"),
])
def test_a_shared_namespace_exits_2_naming_the_key(line: str, key: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two components in one namespace used to crash the render (two objects, one file name)."""
    text = (render_tool.ROOT / "Pulumi.staging.yaml").read_text()
    assert line in text
    (tmp_path / "Pulumi.yaml").write_text((render_tool.ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.staging.yaml").write_text(text.replace(line, "    namespace: aiwfe\n"))
    monkeypatch.setattr(stack_file, "ROOT", tmp_path)
    assert render_tool.main(["--stack", "staging", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"aiwfe-platform:{key} = 'aiwfe'" in err[0] and "must differ from" in err[0], err
    assert not (tmp_path / "out" / "resources.json").exists()
