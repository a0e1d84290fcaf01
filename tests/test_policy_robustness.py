"""The pack never turns a crash into a verdict: a rule that raises on malformed props stops the
offline runner with exit 2 naming the rule and the resource (exit 1 means "violated"), and a
resources.json with no resources is an error, not a pass."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.aiwfe_policies.engine import MANDATORY, Context, Resource, Rule, RuleError, evaluate
from policies.aiwfe_policies.offline import evaluate_document
from tests.rendered_stacks import rendered_document

ROOT = Path(__file__).resolve().parent.parent
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def run_offline(document: dict, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "resources.json"
    path.write_text(json.dumps(document))
    return subprocess.run([sys.executable, "-m", "policies.aiwfe_policies.offline", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_a_rule_that_raises_stops_the_runner_with_exit_2_naming_rule_and_resource(tmp_path: Path) -> None:
    document = copy.deepcopy(rendered_document("prod"))
    pdb = next(r for r in document["resources"] if r["type"] == PDB)
    pdb["props"]["spec"]["maxUnavailable"] = "x"  # neither a number nor a percentage
    done = run_offline(document, tmp_path)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: rule kubernetes-workload-require-disruption-budget failed on ")
    assert pdb["urn"] in line and "ValueError" in line and "Traceback" not in done.stderr


def test_no_resources_is_an_error_not_a_pass(tmp_path: Path) -> None:
    document = {**rendered_document("staging"), "resources": []}
    done = run_offline(document, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: cannot evaluate {tmp_path / 'resources.json'}: "
                                   "no resources for stack 'staging': nothing to judge")


def test_evaluate_names_the_rule_and_the_stack_when_a_stack_rule_raises() -> None:
    def divides_by_zero(resources: list[Resource], _: Context) -> Iterator[tuple[Resource, str]]:
        yield from ()
        raise ZeroDivisionError("boom")

    broken = Rule("test-only-rule", "raises", "low", MANDATORY, None, divides_by_zero)
    with pytest.raises(RuleError, match="rule test-only-rule failed on the stack: ZeroDivisionError: boom"):
        evaluate([], Context(stack="prod"), [broken])


WEIRD = st.sampled_from([1.5, "x", [], {}, None, True, [1], {"a": 1}, "-1", "50%"])


def leaf_paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from leaf_paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from leaf_paths(inner, (*prefix, index))
    if prefix:
        yield prefix


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_malformed_prop_gives_a_report_or_a_rule_error(data: st.DataObject) -> None:
    document = copy.deepcopy(rendered_document("prod"))
    resource = data.draw(st.sampled_from(document["resources"]))
    paths = list(leaf_paths(resource["props"]))
    if not paths:
        return
    path = data.draw(st.sampled_from(paths))
    target = resource["props"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(WEIRD)
    try:
        evaluate_document(document)
    except RuleError as error:
        # A resource rule names the resource; a stack rule the ones without which it runs.
        assert error.rule and resource["urn"] in error.urn
