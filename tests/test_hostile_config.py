"""Hostile stack files through the offline render, as an operator with a typo or an attacker with a
crafted file would write them: every one is refused in one line naming a key (exit 2) or renders a
stack the policy pack passes (exit 0). Never a traceback, never exit 1 (a render the pack refuses),
and each render runs under a time and memory limit, so an input that makes it hang or balloon fails.

The values come from a grammar of the classes an audit found (trailing newlines, control and
non-ASCII characters, overlong names, system namespaces, wide or malformed CIDRs, unit typos, wrong
kinds), placed at any leaf of the prod stack's config, or copied from one namespace key to another.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools import render as render_tool

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "aiwfe-platform"
STACK = "prod"
MEMORY_LIMIT_BYTES = 1536 * 2**20
TIME_LIMIT_SECONDS = 120
NAMESPACE_KEYS = ("appNamespace", "redis.namespace", "keycloak.namespace")

HOSTILE_STRINGS = [
    "kube-system", "default", "istio-system", "istio-ingress", "monitoring", "gmp-system", "aiwfe",
    "0.0.0.0/0", "10.0.0.1/8", "010.0.0.0/8", "::/0", "8.8.8.0/24",
    "1Ti", "1Pi", "1e9", "-1", "0", "0s", "999999h", "1Mi", "100000",
    "a\u0085b", "caf\u00e9", "tab\there", "line\nbreak", "", " ", "*", "https://*.example.com",
    "${AIWFE_SERVICES_CLIENT_SECRET}", "$(reboot)", "x" * 300, ".".join(["a" * 63] * 4) + ".com",
    "master", "STRICT", "DISABLE", "null", "yes", "on", "0x10", "1_000",
]
HOSTILE_OTHERS: list[Any] = [None, True, -1, 0, 2**63, 1e308, 0.5, [], {}, [None], {"a": None}, ["kube-system"],
                             ["0.0.0.0/0"], {"memory": "1Ti"}, {"cpu": "1000"}]


def prod_file() -> dict[str, Any]:
    return yaml.safe_load((ROOT / f"Pulumi.{STACK}.yaml").read_text())


def leaf_paths(value: Any, prefix: str) -> list[str]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaf_paths(v, f"{prefix}.{k}")]
    if isinstance(value, list) and value:
        return [p for i, v in enumerate(value) for p in leaf_paths(v, f"{prefix}.{i}")]
    return [prefix]


PATHS = sorted(p for key, value in prod_file()["config"].items() if key.startswith(f"{PROJECT}:")
               for p in leaf_paths(value, key.split(":", 1)[1]))


def set_path(config: dict[str, Any], path: str, value: Any) -> None:
    top, *rest = path.split(".")
    if not rest:
        config[f"{PROJECT}:{top}"] = value
        return
    node = config[f"{PROJECT}:{top}"]
    for part in rest[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(rest[-1])] = value
    else:
        node[rest[-1]] = value


def get_path(config: dict[str, Any], path: str) -> Any:
    top, *rest = path.split(".")
    node = config[f"{PROJECT}:{top}"]
    for part in rest:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def edit(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["replace", "append-newline", "copy-namespace"]))
    if kind == "copy-namespace":
        source, target = draw(st.permutations(NAMESPACE_KEYS))[:2]
        return target, ("copy", source)
    path = draw(st.sampled_from(PATHS))
    if kind == "append-newline":
        return path, ("newline", None)
    return path, ("value", draw(st.sampled_from(HOSTILE_STRINGS + HOSTILE_OTHERS)))


@st.composite
def hostile_files(draw: st.DrawFn) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    document = prod_file()
    config = document["config"]
    edits = [edit(draw) for _ in range(draw(st.integers(1, 2)))]
    for path, (how, value) in edits:
        if how == "copy":
            set_path(config, path, get_path(config, value))
        elif how == "newline":
            current = get_path(config, path)
            set_path(config, path, f"{current}\n" if isinstance(current, str) else current)
        else:
            set_path(config, path, value)
    return edits, document


def limit_resources() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES * 4, MEMORY_LIMIT_BYTES * 4))
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def render_file(document: dict[str, Any], folder: Path) -> subprocess.CompletedProcess[str]:
    """`python -m tools.render` on a project folder holding this stack file, under the limits."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (folder / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(document, allow_unicode=True))
    code = ("import pathlib, sys\nfrom stacks import stack_file\nfrom tools import render\n"
            "stack_file.ROOT = pathlib.Path(sys.argv[1])\nsys.exit(render.main(sys.argv[2:]))")
    return subprocess.run([sys.executable, "-c", code, str(folder), "--stack", STACK, "--out", str(folder / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS,
                          preexec_fn=limit_resources)


def judge(result: subprocess.CompletedProcess[str]) -> None:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if result.returncode == 2:
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: ") and (f"{PROJECT}:" in lines[0] or "Pulumi." in lines[0]), lines
    else:
        assert result.returncode == 0, (result.returncode, result.stdout[-3000:], lines[-5:])
        assert "PASSED" in result.stdout


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=hostile_files())
def test_hostile_stack_files_are_refused_in_one_line_or_render_a_passing_stack(
        case: tuple[list[tuple[str, Any]], dict[str, Any]], tmp_path: Path) -> None:
    edits, document = case
    result = render_file(document, tmp_path / "project")
    try:
        judge(result)
    except AssertionError as error:
        raise AssertionError(f"edits {edits!r}: {error}") from None


@pytest.mark.parametrize(("path", "value"), [
    ("redis.namespace", "aiwfe"),               # two components in one namespace
    ("redis.namespace", "kube-system"),
    ("keycloak.trustedProxyAddresses", ["0.0.0.0/0"]),
    ("redis.maxmemory", "1Ti"),
    ("appNamespace", "aiwfe\n"),
    ("loadBalancer.cloudArmor.blockedSourceRanges", ["010.0.0.0/8"]),
])
def test_each_class_the_audit_found_exits_2(path: str, value: Any, tmp_path: Path) -> None:
    """The grammar's classes, one each, always run (the property test samples them)."""
    document = prod_file()
    set_path(document["config"], path, value)
    result = render_file(document, tmp_path / "project")
    judge(result)
    assert result.returncode == 2 and f"{PROJECT}:{path}" in result.stderr


def test_the_judge_fails_a_render_the_pack_refuses(tmp_path: Path) -> None:
    """A config the settings accept and the pack refuses (maxReplicas 5 in prod) is caught."""
    document = prod_file()
    set_path(document["config"], "websocket.maxReplicas", 5)
    result = render_file(document, tmp_path / "project")
    assert result.returncode == 1
    with pytest.raises(AssertionError):
        judge(result)


def test_the_whole_committed_stack_renders_under_the_limits(tmp_path: Path) -> None:
    judge(render_file(prod_file(), tmp_path / "project"))
    assert render_tool.ROOT == ROOT
