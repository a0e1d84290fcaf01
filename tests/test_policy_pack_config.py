"""Per-stack enforcement and targets: the pack config (the file `pulumi preview --policy-pack-config`
takes), written from settings, read by the offline runner and by the CrossGuard adapters; and the
runner's `--explain`, `--list` and `--json` output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, StackValidationArgs

from policies.aiwfe_policies import offline
from policies.aiwfe_policies.catalog import all_rules
from policies.aiwfe_policies.crossguard import build_policies
from policies.aiwfe_policies.engine import (
    ADVISORY,
    MANDATORY,
    REGISTRY,
    Context,
    PackConfig,
    PackConfigError,
    analyzer_props,
    evaluate,
)
from policies.aiwfe_policies.rules import capacity
from stacks import policy_config
from tests.policy_fixtures import UNKNOWN
from tests.rendered_stacks import rendered_document, stack_pack_config
from tools import render

RULES = {rule.name: rule for rule in all_rules()}


# ---------------------------------------------------------------- parsing a pack config

@pytest.mark.parametrize(("document", "message"), [
    ({"no-such-policy": "advisory"}, "no-such-policy: no such policy in this pack"),
    ({"all": "disabled"}, "all: level 'disabled' is not one of mandatory, advisory"),
    ({capacity.REDIS_CAPACITY: {"enforcementLevel": "remediate"}}, "enforcementLevel: 'remediate'"),
    ({capacity.REDIS_CAPACITY: {"targetSessionData": 1}}, "not an option of this policy (options: "
                                                           "targetSessionDataBytes)"),
    ({capacity.WEBSOCKET_CAPACITY: {"targetConcurrentConnections": "10k"}}, "must be a JSON integer"),
    ({capacity.WEBSOCKET_CAPACITY: {"targetConcurrentConnections": 0}}, "must be at least 1"),
    ({capacity.WEBSOCKET_CAPACITY: {"targetConcurrentConnections": True}}, "must be a JSON integer"),
    ({capacity.KEYCLOAK_CAPACITY: {"passwordLoginPercent": -1}}, "must be at least 0"),
    (["mandatory"], "JSON object"),
])
def test_bad_pack_config_names_the_key(document: Any, message: str) -> None:
    with pytest.raises(PackConfigError) as error:
        PackConfig.parse(document, RULES)
    assert message in str(error.value)


def test_levels_and_options_resolve_over_the_defaults() -> None:
    config = PackConfig.parse({"all": "mandatory", capacity.WEBSOCKET_CAPACITY: {
        "enforcementLevel": "advisory", "targetConcurrentConnections": 3000.0}}, RULES)
    assert config.level(RULES[capacity.WEBSOCKET_CAPACITY]) == ADVISORY
    assert config.level(RULES[capacity.REDIS_CAPACITY]) == MANDATORY
    assert config.options_for(RULES[capacity.WEBSOCKET_CAPACITY]) == {"targetConcurrentConnections": 3000.0}
    assert config.options_for(RULES[capacity.REDIS_CAPACITY]) == {"targetSessionDataBytes": 16 * 2**30}
    assert PackConfig.parse(config.as_json(), RULES) == config


def test_a_production_stack_refuses_advisory_levels() -> None:
    config = PackConfig.parse({capacity.REDIS_CAPACITY: "advisory"}, RULES)
    with pytest.raises(PackConfigError, match="production stack, where every policy is mandatory"):
        evaluate([], Context(stack="prod"), all_rules(), config)
    assert evaluate([], Context(stack="staging"), all_rules(), config).levels[capacity.REDIS_CAPACITY] == ADVISORY


# ---------------------------------------------------------------- written from settings

def test_each_stack_config_carries_its_settings() -> None:
    prod, staging = stack_pack_config("prod"), stack_pack_config("staging")
    assert prod[capacity.WEBSOCKET_CAPACITY] == {"targetConcurrentConnections": 10_000}
    assert prod[capacity.REDIS_CAPACITY] == {"targetSessionDataBytes": 16 * 2**30}
    assert prod[capacity.KEYCLOAK_CAPACITY] == {"targetAuthenticationsPerMinute": 10_000, "passwordLoginPercent": 20,
                                                "clientCredentialsPercent": 30, "refreshPercent": 50}
    assert staging[capacity.WEBSOCKET_CAPACITY] == {"targetConcurrentConnections": 2000,
                                                    "enforcementLevel": ADVISORY}
    assert staging[capacity.REDIS_CAPACITY]["targetSessionDataBytes"] == 512 * 2**20
    assert prod[policy_config.STRICT_NAMESPACES] == {"meshRootNamespace": "istio-system"}


def test_policy_config_cli_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "prod.json"
    assert policy_config.main(["--stack", "prod", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == stack_pack_config("prod")
    assert policy_config.main(["--stack", "nope", "--out", str(out)]) == 2
    assert "no stack config Pulumi.nope.yaml" in capsys.readouterr().err


def test_render_writes_the_config_it_judged_with(rendered: dict) -> None:
    for stack, result in rendered.items():
        folder = result.manifests[0].parent.parent
        assert json.loads((folder / "policy-config.json").read_text()) == stack_pack_config(stack)
        assert result.report.levels == {r.name: PackConfig.parse(stack_pack_config(stack), RULES).level(r)
                                        for r in all_rules()}


# ---------------------------------------------------------------- the offline runner

def write_render(tmp_path: Path, stack: str, config: dict[str, Any] | None) -> Path:
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(rendered_document(stack)))
    if config is not None:
        (tmp_path / "policy-config.json").write_text(json.dumps(config))
    return path


def test_runner_picks_up_the_config_next_to_resources_json(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    staging = json.loads(json.dumps(stack_pack_config("staging")))
    staging[capacity.WEBSOCKET_CAPACITY]["targetConcurrentConnections"] = 1_000_000
    path = write_render(tmp_path, "staging", staging)
    assert offline.main([str(path), "--json"]) == 0  # advisory in staging: a warning, not a failure
    report = json.loads(capsys.readouterr().out)
    assert report["config"] == str(tmp_path / "policy-config.json")
    assert report["levels"][capacity.WEBSOCKET_CAPACITY] == ADVISORY
    warnings = [v for v in report["violations"] if v["policy"] == capacity.WEBSOCKET_CAPACITY]
    assert warnings and all(w["enforcement"] == ADVISORY and "1000000" in w["message"] for w in warnings)
    assert "platform-stateful-resources-require-protect" in report["notApplicable"]


def test_runner_with_an_explicit_mandatory_config_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_render(tmp_path, "staging", None)
    config = tmp_path / "strict.json"
    config.write_text(json.dumps({"all": "mandatory", capacity.WEBSOCKET_CAPACITY: {
        "targetConcurrentConnections": 1_000_000}}))
    assert offline.main([str(path), "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"pack config: {config}" in out
    assert f"MANDATORY {capacity.WEBSOCKET_CAPACITY}" in out


def test_runner_refuses_advisory_levels_on_prod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_render(tmp_path, "prod", {capacity.REDIS_CAPACITY: "advisory"})
    assert offline.main([str(path)]) == 2
    assert "every policy is mandatory" in capsys.readouterr().err


def test_explain_tells_what_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert offline.main(["--explain", capacity.KEYCLOAK_CAPACITY]) == 0
    out = capsys.readouterr().out
    rule = REGISTRY[capacity.KEYCLOAK_CAPACITY]
    assert out.startswith(capacity.KEYCLOAK_CAPACITY + "\n")
    assert "Why (what it prevents):" in out and "What it checks:" in out
    assert "one replica down" in out and "15 password logins/s" in out
    assert "targetAuthenticationsPerMinute (integer, default 10000)" in out
    assert f"severity {rule.severity}" in out


def test_explain_marks_prod_only_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert offline.main(["--explain", "istio-security-v1-peerauthentication-require-strict-mtls"]) == 0
    assert "judged on production stacks only" in capsys.readouterr().out


def test_explain_an_unknown_name_suggests_close_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert offline.main(["--explain", "platform-websocket-path"]) == 2
    err = capsys.readouterr().err
    assert "no policy named 'platform-websocket-path'" in err
    assert "platform-websocket-path-require-long-lived-end-to-end" in err


def test_every_rule_explains_what_it_checks() -> None:
    """`--explain` has more to say than the one-line why: each check function documents itself."""
    for rule in all_rules():
        assert len(rule.checks) > 40, f"{rule.name}: its check function has no docstring"


def test_list_names_every_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert offline.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name}\n" in out for name in REGISTRY)


# ---------------------------------------------------------------- CrossGuard

def test_crossguard_policies_declare_their_options_with_defaults() -> None:
    for policy in build_policies():
        rule = REGISTRY[policy.name]
        if not rule.options:
            assert policy.config_schema is None
            continue
        assert set(policy.config_schema.properties) == set(rule.options)
        for name, schema in policy.config_schema.properties.items():
            assert schema["default"] == rule.options[name].default
            assert schema["type"] in ("integer", "number", "string", "array")


def stack_args(config: dict[str, Any] | None) -> StackValidationArgs:
    def options(protect: bool) -> PolicyResourceOptions:
        return PolicyResourceOptions(protect=protect, ignore_changes=[], delete_before_replace=None, aliases=[],
                                     custom_timeouts=PolicyCustomTimeouts(0.0, 0.0, 0.0),
                                     additional_secret_outputs=[], parent=None)
    resources = [PolicyResource(r["type"], analyzer_props(r["props"]), r["urn"], r["name"],
                                options(bool(r["protect"])), None, None, [], {})
                 for r in rendered_document("prod")["resources"]]
    return StackValidationArgs(resources, config)


@pytest.mark.parametrize(("config", "violations"), [
    pytest.param(None, 0, id="defaults"),
    pytest.param({"targetConcurrentConnections": 10_000.0}, 0, id="prod-target"),
    # The CLI hands numbers over as floats (a protobuf Struct).
    pytest.param({"targetConcurrentConnections": 50_000.0}, 2, id="target-above-capacity"),
])
def test_crossguard_reads_the_target_from_the_pack_config(config: dict[str, Any] | None, violations: int) -> None:
    calls: list[str] = []
    policy = next(p for p in build_policies() if p.name == capacity.WEBSOCKET_CAPACITY)
    policy.validate(stack_args(config), lambda message, urn=None: calls.append(message))
    assert len(calls) == violations
    assert all("50000" in message for message in calls)


def test_render_module_settings_of_matches_the_program() -> None:
    settings = render.settings_of(render.load_stack_config("prod"))
    assert settings.targets.concurrent_connections == 10_000 and settings.policy.advisory == ()


def test_violations_found_before_an_unknown_value_are_kept() -> None:
    """As under CrossGuard: what a stack rule reported stays reported when a later value is unknown."""
    from pulumi_policy.proxy import UnknownValueError

    from policies.aiwfe_policies.engine import Resource, Rule

    resource = Resource(type="t", name="n", urn="urn:pulumi:prod::p::t::n", props={})

    unknown = UnknownValueError(UNKNOWN, ["spec", "ports"])

    def check(resources: list[Resource], _: Context):
        yield resource, "found first"
        raise unknown

    report = evaluate([resource], Context(stack="prod"), [Rule("spy", "why", "low", MANDATORY, None, check)])
    assert [v.message for v in report.violations] == ["found first"]
    (skipped,) = report.not_evaluated
    assert skipped["policy"] == "spy" and "spec.ports" in skipped["reason"]
