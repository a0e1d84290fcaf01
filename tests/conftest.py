"""Shared fixtures: each stack rendered once per session through the real program under mocks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tools import render as render_tool

ROOT = Path(__file__).resolve().parent.parent
STACKS = ("staging", "prod")


def require_tool(name: str) -> str:
    """Path of a server binary the test needs; in CI its absence fails the test, never skips it."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required in CI (.ci/run installs it) but was not found")
    pytest.skip(f"{name} not installed (apt-get install {name}); CI installs it")


def pytest_report_header(config: pytest.Config) -> str:
    """The real `pulumi` the end-to-end tests run, as it reports itself (shown at the top of the log)."""
    from tools import toolchain

    tc = toolchain.current()
    if not tc.complete():
        return f"pulumi CLI: not built ({tc.home}); run `make toolchain`"
    import subprocess

    version = subprocess.run([str(tc.pulumi), "version"], capture_output=True, text=True, check=False).stdout.strip()
    return f"pulumi CLI: {version} ({tc.pulumi})"


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, render_tool.RenderResult]:
    """{stack: RenderResult} for both stacks, rendered into a temporary folder."""
    out = tmp_path_factory.mktemp("render")
    return {stack: render_tool.render(stack, out / stack) for stack in STACKS}


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return request.param


def resources_of(result: render_tool.RenderResult, rtype: str) -> list[dict]:
    return [r for r in result.document["resources"] if r["type"] == rtype]


def one(result: render_tool.RenderResult, rtype: str, name: str) -> dict:
    """The resource of that type and Pulumi name; fails clearly when absent."""
    found = [r for r in resources_of(result, rtype) if r["name"] == name]
    assert len(found) == 1, f"expected one {rtype} named {name}, found {len(found)}"
    return found[0]
