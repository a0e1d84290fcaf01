"""A Redis layout change (masters, replicas per master, zones) is refused against the deployed one.

The real engine's path (a deployed stack, `pulumi preview` and `up` refused, state untouched) is in
tests/e2e/test_engine.py; here the comparison itself, and the program under mocks whose engine
answers with a deployed layout.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pulumi
import pytest

from stacks.deployed import REDIS_LAYOUT_OUTPUT, deployed_layout, refuse_layout_change
from stacks.mock_run import stack_exports
from stacks.settings import Settings, SettingsError
from tests.conftest import STACKS
from tools import render as render_tool


def settings_of(stack: str, **redis: Any) -> Settings:
    settings = render_tool.settings_of(render_tool.load_stack_config(stack))
    return dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, **redis)) if redis else settings


def layout_of(settings: Settings) -> dict[str, Any]:
    # As the engine hands numbers back: floats.
    return {"masters": float(settings.redis.masters), "replicas_per_master": float(settings.redis.replicas_per_master),
            "zones": list(settings.gcp.zones), "namespace": settings.redis.namespace}


def test_nothing_deployed_or_the_same_layout_passes(stack: str) -> None:
    settings = settings_of(stack)
    refuse_layout_change(settings, None)
    refuse_layout_change(settings, layout_of(settings))


@pytest.mark.parametrize(("change", "key", "said"), [
    ({"masters": 4.0}, "redis.masters", "has 4 masters"),
    ({"replicas_per_master": 2.0}, "redis.replicasPerMaster", "has 2 replicas per master"),
    ({"zones": ["europe-west1-x"]}, "gcp.zones", "has the zones ['europe-west1-x']"),
    ({"namespace": "sessions"}, "redis.namespace", "has its pods and data in namespace 'sessions'"),
])
def test_a_changed_layout_is_refused_naming_the_key_and_the_runbook(stack: str, change: dict, key: str,
                                                                     said: str) -> None:
    settings = settings_of(stack)
    with pytest.raises(SettingsError) as refused:
        refuse_layout_change(settings, {**layout_of(settings), **change})
    line = str(refused.value)
    assert refused.value.key == f"aiwfe-platform:{key}"
    step = "(step 5)" if key == "redis.namespace" else "(step 4)"
    assert "\n" not in line and said in line and f"docs/upgrades.md#redis {step}" in line


def test_a_record_from_before_the_namespace_was_kept_passes(stack: str) -> None:
    settings = settings_of(stack)
    older = {key: value for key, value in layout_of(settings).items() if key != "namespace"}
    refuse_layout_change(settings, older)
    with pytest.raises(SettingsError, match=re.escape("redis.masters")):
        refuse_layout_change(settings, {**older, "masters": 4.0})


def test_the_stack_records_the_namespace_it_deployed(stack: str) -> None:
    config = render_tool.load_stack_config(stack)
    redis = json.loads(config.values["aiwfe-platform:redis"])
    config.values["aiwfe-platform:redis"] = json.dumps({**redis, "namespace": "sessions"})
    registrations = render_tool.run_program(render_tool.platform_program, config)
    recorded = stack_exports(REDIS_LAYOUT_OUTPUT)[REDIS_LAYOUT_OUTPUT]
    assert recorded["namespace"] == "sessions"
    assert {r.props["metadata"]["namespace"] for r in registrations
            if r.type == "kubernetes:apps/v1:StatefulSet" and r.name.startswith("redis-cluster")} == {"sessions"}
    # The next deploy from the stacks' own config is then refused.
    with pytest.raises(SettingsError, match=re.escape("redis.namespace = 'aiwfe-redis'")):
        refuse_layout_change(render_tool.settings_of(render_tool.load_stack_config(stack)), recorded)


def test_zones_in_another_order_are_another_layout(stack: str) -> None:
    settings = settings_of(stack)
    deployed = {**layout_of(settings), "zones": list(reversed(settings.gcp.zones))}
    with pytest.raises(SettingsError, match=re.escape("gcp.zones")):
        refuse_layout_change(settings, deployed)


def test_layout_migrated_lets_one_deploy_through_and_must_go_afterwards(stack: str) -> None:
    migrated = settings_of(stack, layout_migrated=True)
    refuse_layout_change(migrated, {**layout_of(migrated), "masters": 4.0})
    already = "redis.layoutMigrated = true: the deployed Redis layout already matches"
    with pytest.raises(SettingsError, match=re.escape(already)):
        refuse_layout_change(migrated, layout_of(migrated))


def test_an_older_component_record_takes_the_namespace_output() -> None:
    older = {"masters": 3.0, "replicas_per_master": 1.0, "zones": ["a"]}
    component = {"type": "aiwfe:platform:RedisCluster", "outputs": {"layout": older, "namespace": "aiwfe-redis"}}
    assert deployed_layout({"urn:b": component}) == {**older, "namespace": "aiwfe-redis"}
    # Recorded with the layout, the layout's own wins.
    newer = {**older, "namespace": "sessions"}
    assert deployed_layout({"urn:b": {**component, "outputs": {"layout": newer, "namespace": "x"}}}) == newer


def test_the_component_state_is_read_first_then_the_stack_output() -> None:
    component = {"type": "aiwfe:platform:RedisCluster", "outputs": {"layout": {"masters": 3.0}}}
    stack = {"type": "pulumi:pulumi:Stack", "outputs": {REDIS_LAYOUT_OUTPUT: {"masters": 6.0}}}
    assert deployed_layout({"urn:a": stack, "urn:b": component}) == {"masters": 3.0}
    # A failed update leaves the stack resource without outputs; an old deploy had no component field.
    assert deployed_layout({"urn:a": stack, "urn:b": {**component, "outputs": {}}}) == {"masters": 6.0}
    assert deployed_layout({"urn:a": {"type": "pulumi:pulumi:Stack", "outputs": {}}}) is None
    assert deployed_layout({}) is None


class DeployedMocks(render_tool.EchoMocks):
    """The mock engine, answering `readStackResourceOutputs` with a deployed RedisCluster."""

    def __init__(self, layout: dict[str, Any]) -> None:
        self.layout = layout
        self.asked: list[dict] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        if args.token == "pulumi:pulumi:readStackResourceOutputs":
            self.asked.append(dict(args.args))
            urn = "urn:pulumi:prod::aiwfe-platform::aiwfe:platform:RedisCluster::redis"
            return {"outputs": {urn: {"type": "aiwfe:platform:RedisCluster", "outputs": {"layout": self.layout}}}}, []
        return super().call(args)


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_stops_before_declaring_anything(stack: str) -> None:
    config = render_tool.load_stack_config(stack)
    deployed = {**layout_of(render_tool.settings_of(config)), "masters": 5.0}
    mocks = DeployedMocks(deployed)
    monitor = render_tool.RecordingMonitor(mocks)
    with pytest.raises(SettingsError, match=re.escape("redis.masters = 3: the deployed Redis cluster has 5 masters")):
        render_tool.run_program(render_tool.platform_program, config, monitor)
    assert mocks.asked == [{"stackName": f"organization/aiwfe-platform/{stack}"}]
    assert monitor.registrations == []
    # The same program with the deployed layout unchanged declares the stack.
    same = DeployedMocks(layout_of(render_tool.settings_of(config)))
    assert render_tool.run_program(render_tool.platform_program, config, render_tool.RecordingMonitor(same))


def test_layout_migrated_is_a_setting_of_its_own(stack: str) -> None:
    config = render_tool.load_stack_config(stack)
    redis = json.loads(config.values["aiwfe-platform:redis"])
    config.values["aiwfe-platform:redis"] = json.dumps({**redis, "layoutMigrated": "yes"})
    with pytest.raises(SettingsError, match=re.escape("redis.layoutMigrated = 'yes': must be true or false")):
        render_tool.settings_of(config)


class _Answer:
    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value


def test_a_checkpoint_caught_mid_write_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file:// backend's checkpoint read while `up` rewrites it is empty (seen in CI): read again;
    any other failure, or one that lasts, still stops the program."""
    from stacks import deployed

    monkeypatch.setattr(deployed, "READ_PAUSE_SECONDS", 0)
    layout = {"masters": 3.0, "replicas_per_master": 1.0, "zones": ["a", "b", "c"]}
    state = {"outputs": {"urn:x": {"type": "pulumi:pulumi:Stack", "outputs": {REDIS_LAYOUT_OUTPUT: layout}}}}
    torn = Exception("invoke of pulumi:pulumi:readStackResourceOutputs failed: failed to load checkpoint: EOF")
    calls: list[int] = []

    def flaky(token: str, args: dict[str, Any], *rest: Any, **kw: Any) -> _Answer:
        calls.append(1)
        if len(calls) < 3:
            raise torn
        return _Answer(state)

    monkeypatch.setattr(pulumi.runtime, "invoke", flaky)
    assert deployed.last_deployed_layout() == layout and len(calls) == 3

    def always_torn(*_: Any, **__: Any) -> _Answer:
        raise torn

    monkeypatch.setattr(pulumi.runtime, "invoke", always_torn)
    with pytest.raises(Exception, match="failed to load checkpoint"):
        deployed.last_deployed_layout()

    other = Exception("invoke of pulumi:pulumi:readStackResourceOutputs failed: permission denied")
    calls.clear()

    def refused(*_: Any, **__: Any) -> _Answer:
        calls.append(1)
        raise other

    monkeypatch.setattr(pulumi.runtime, "invoke", refused)
    with pytest.raises(Exception, match="permission denied"):
        deployed.last_deployed_layout()
    assert len(calls) == 1
