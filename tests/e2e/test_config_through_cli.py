"""What a program receives from the real CLI for tricky stack-file values, and bad config under it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from stacks import stack_yaml
from tests.e2e.conftest import Project
from tests.stack_yaml_table import REFUSED, SCALARS, STRUCTURED
from tools import render as render_tool

ECHO_PROGRAM = Path(__file__).resolve().parent / "echo_config"


def _stack_file(rows: list[tuple[str, object]]) -> str:
    lines = ["config:"]
    lines += [f"  echo-config:k{i}: {text}" for i, (text, _) in enumerate(rows)]
    return "\n".join(lines) + "\n"


def _received(project: Project, stack: str) -> dict[str, str]:
    out = project.dir / "received.json"
    project.env["ECHO_CONFIG_OUT"] = str(out)
    project.pulumi("preview", "--stack", stack)
    return json.loads(out.read_text())


def test_the_cli_and_the_offline_reader_give_the_program_the_same_values(
        make_project: Callable[..., Project]) -> None:
    project = make_project("echo", program=ECHO_PROGRAM)
    project.pulumi("stack", "init", "table")
    rows = SCALARS + STRUCTURED
    text = _stack_file(rows)
    # Written after `stack init`, which rewrites the file it finds.
    (project.dir / "Pulumi.table.yaml").write_text(text)
    received = _received(project, "table")
    offline = render_tool.load_stack_config("table", root=project.dir).values
    for i, (source, expected) in enumerate(rows):
        key = f"echo-config:k{i}"
        if isinstance(expected, str):
            assert received[key] == expected, f"{source!r}: the CLI passes {received[key]!r}"
            assert offline[key] == received[key], f"{source!r}: offline {offline[key]!r}, CLI {received[key]!r}"
        else:
            assert json.loads(received[key]) == expected, f"{source!r}: the CLI passes {received[key]!r}"
            assert json.loads(offline[key]) == json.loads(received[key]), source


@pytest.mark.parametrize(("body", "word"), REFUSED)
def test_what_the_cli_refuses_the_offline_reader_refuses(make_project: Callable[..., Project], body: str,
                                                         word: str) -> None:
    project = make_project("echo", program=ECHO_PROGRAM)
    project.pulumi("stack", "init", "bad")
    (project.dir / "Pulumi.bad.yaml").write_text("config:\n" + body)
    result = project.pulumi("preview", "--stack", "bad", check=False)
    assert result.returncode != 0 and word in result.stdout + result.stderr
    with pytest.raises(stack_yaml.StackFileError):
        render_tool.load_stack_config("bad", root=project.dir)


def test_bad_config_stops_the_preview_in_one_line_before_any_resource(make_project: Callable[..., Project]) -> None:
    project = make_project()
    project.init_stack("staging")
    project.pulumi("config", "set", "--stack", "staging", "--path", "aiwfe-platform:websocket.image",
                   "ghcr.io/aiwfe/websocket-service:latest")
    result = project.pulumi("up", "--yes", "--stack", "staging", check=False)
    assert result.returncode != 0
    errors = [line.strip() for line in (result.stdout + result.stderr).splitlines()
              if "config aiwfe-platform:websocket.image" in line]
    assert errors, result.stdout[-3000:]
    assert "'ghcr.io/aiwfe/websocket-service:latest'" in errors[0] and "pinned" in errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    resources = project.export("staging").get("deployment", {}).get("resources") or []
    assert [r["type"] for r in resources if r["type"] != "pulumi:pulumi:Stack"] == []
