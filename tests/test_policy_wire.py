"""The offline runner's stdlib reading of props (`wire.plain_props`) against pulumi_policy's own.

The runner skips the SDK when a render needs nothing of it; these tests hold that shortcut to the
analyzer's deserializer and proxy: the same verdicts and messages on both rendered stacks (and on
every rule case, in tests/policy_cases.run, which the rule tests call), the same container protocol,
and the SDK's path whenever a value needs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from policies.aiwfe_policies.engine import (
    Context,
    PackConfig,
    Report,
    Resource,
    analyzer_props,
    evaluate,
    offline_props,
)
from policies.aiwfe_policies.wire import SIGNATURE_KEY, UNKNOWN_SENTINELS, WireArray, WireObject, plain_props
from tests.conftest import ROOT
from tests.policy_cases import Case, collect_cases
from tests.policy_fixtures import UNKNOWN, Wire, urn, web_stack

SECRET = {SIGNATURE_KEY: "1b47061264138c4ac30d75fd1eb44270", "value": "s3cret"}


def report_of(wires: list[Wire] | tuple[Wire, ...], stack: str, read: Any, config: PackConfig | None = None) -> Report:
    resources = [Resource(type=w.type, name=w.name, urn=urn(w.type, w.name, stack), props=read(w.props),
                          protect=w.protect) for w in wires]
    return evaluate(resources, Context(stack=stack), config=config)


def json_wires(case: Case) -> list[Wire]:
    # As the runner reads them: from a JSON file (the builders' tuples become lists).
    return [Wire(w.type, w.name, json.loads(json.dumps(w.props)), w.protect) for w in case.wires]


# Not `CASES`: collect_cases() gathers that name from every test_policy_* module.
RULE_CASES = [c for c in collect_cases() if not c.bug]


def test_the_cases_take_the_stdlib_path() -> None:
    """Every rule case is also judged through the offline reading (tests/policy_cases.run, which
    the rule tests call): otherwise that comparison would hold the SDK against itself."""
    plain = [c.id for c in RULE_CASES if all(plain_props(w.props) is not None for w in json_wires(c))]
    assert len(plain) == len(RULE_CASES), sorted(set(c.id for c in RULE_CASES) - set(plain))[:5]
    assert sum(not c.passes for c in RULE_CASES) > 100


def test_rendered_stacks_judged_alike(rendered: dict[str, Any], stack: str) -> None:
    document = rendered[stack].document
    props = [r.get("props") or {} for r in document["resources"]]
    assert all(plain_props(p) is not None for p in props), "a render needs the SDK: the shortcut is never taken"

    def report(read: Any) -> Report:
        resources = [Resource(type=r["type"], name=r["name"], urn=r["urn"], props=read(r.get("props") or {}),
                              protect=bool(r.get("protect")), parent=r.get("parent") or "")
                     for r in document["resources"]]
        return evaluate(resources, Context(stack=stack))

    assert report(offline_props).as_json() == report(analyzer_props).as_json()


@pytest.mark.parametrize("value", [
    pytest.param({"a": SECRET}, id="secret"),
    pytest.param({"a": [{SIGNATURE_KEY: "c44067f5952c0a294b673a41bacd8c17", "text": "x"}]}, id="asset-in-a-list"),
    *[pytest.param({"a": {"b": sentinel}}, id=f"unknown-{sentinel[:8]}") for sentinel in sorted(UNKNOWN_SENTINELS)],
    pytest.param({"a": ("x",)}, id="tuple"),
    pytest.param({"a": {1: "x"}}, id="non-string-key"),
    pytest.param({"a": object()}, id="not-json"),
])
def test_values_only_the_sdk_reads_take_its_path(value: dict[str, Any]) -> None:
    assert plain_props(value) is None


def test_secret_is_read_as_the_analyzer_reads_it() -> None:
    wire = {"data": SECRET, "n": 1.0, "i": 1}
    props, sdk = offline_props(wire), analyzer_props(wire)
    assert props["data"] == sdk["data"] == "s3cret"
    assert [(type(props[k]), props[k]) for k in ("n", "i")] == [(type(sdk[k]), sdk[k]) for k in ("n", "i")] \
        == [(float, 1.0), (int, 1)]


def test_unknown_is_not_evaluated_through_the_offline_reading() -> None:
    report = report_of(web_stack(deployment_edits={"spec.template.spec.containers.0.image": UNKNOWN}),
                       "prod", offline_props)
    assert report.not_evaluated and report.violations == []


def test_containers_behave_like_the_analyzers_proxies() -> None:
    wire = {"ports": [{"port": 80.0}], "labels": {"app": "web"}, "empty": []}
    sdk, ours = analyzer_props(wire), plain_props(wire)
    assert ours is not None
    for props in (sdk, ours):
        assert isinstance(props, Mapping) and not isinstance(props, dict)
        assert isinstance(props["ports"], Sequence) and not isinstance(props["ports"], list)
    assert isinstance(ours, WireObject) and isinstance(ours["ports"], WireArray)

    def behaviour(props: Mapping[str, Any]) -> list[Any]:
        ports = props["ports"]
        return [
            props["labels"] == {"app": "web"},           # a Mapping compares by items
            ports == [{"port": 80.0}],                   # a Sequence proxy is not a list
            props["empty"] == [],
            ports[0] is ports[0],                        # the same object on each read
            type(ports[0:1]) is list,
            hash(ports) == hash(ports),                  # hashable by identity, unlike a list
            "port" in ports[0], "other" in props,
            props.get("missing"), len(props), sorted(props),
            [p["port"] for p in ports], dict(props["labels"]),
            [type(p["port"]) for p in ports],
            "__target" in props, "__target" in props["labels"],  # the SDK's unwrapping key
            props.get("__target") == {"ports": ports, "labels": props["labels"], "empty": props["empty"]},
        ]

    assert behaviour(ours) == behaviour(sdk)
    for props in (sdk, ours):
        props["labels"]["tier"] = "web"  # the proxy lets a rule assign; so does ours
        assert dict(props["labels"]) == {"app": "web", "tier": "web"}
    for props in (sdk, ours):
        with pytest.raises(TypeError):
            hash(props)
        with pytest.raises(TypeError):
            props["ports"] + []  # type: ignore[operator]
        with pytest.raises(TypeError):
            json.dumps(props)


RUNNER = """
import sys
from policies.aiwfe_policies import offline
code = offline.main([sys.argv[1], "--json"])
print("SDK", "pulumi_policy" in sys.modules, "pulumi" in sys.modules, code, file=sys.stderr)
"""


def run_runner(path: Path) -> tuple[dict[str, Any], str]:
    done = subprocess.run([sys.executable, "-c", RUNNER, str(path)], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=120)
    return json.loads(done.stdout), done.stderr.strip().splitlines()[-1]


def test_the_runner_leaves_the_sdk_alone_on_a_render(rendered: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(rendered["prod"].document))
    report, loaded = run_runner(path)
    assert loaded == "SDK False False 0"
    assert report["passed"] and report["resources"] == len(rendered["prod"].document["resources"])


def test_the_runner_takes_the_sdk_for_an_unknown(tmp_path: Path) -> None:
    wires = web_stack(deployment_edits={"spec.template.spec.containers.0.image": UNKNOWN})
    document = {"formatVersion": 1, "stack": "prod",
                "resources": [{"type": w.type, "name": w.name, "urn": urn(w.type, w.name), "props": w.props}
                              for w in wires]}
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(document))
    report, loaded = run_runner(path)
    assert loaded == "SDK True True 0"
    assert [n["urn"] for n in report["notEvaluated"]] == [urn(wires[0].type, wires[0].name)]
