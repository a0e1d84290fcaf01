"""bench/preview.py runs its cases through the real CLI and compares like with like (no timing asserted)."""

from __future__ import annotations

import pytest

from bench import preview
from tools import toolchain as toolchain_tool


@pytest.fixture(scope="module")
def report(toolchain: toolchain_tool.Toolchain) -> dict:
    return preview.run(repeats=1, extras=(1, 2))


def test_the_flat_floor_plans_the_same_custom_resources_as_the_program(report: dict) -> None:
    # Planned steps: every resource (the explicit gcp provider included) and the stack; the flat
    # program has no components.
    assert report["figures"]["flat"]["resources"] == report["custom_resources"] + 1
    assert report["figures"]["flat+sdk"]["resources"] == report["figures"]["flat"]["resources"]
    assert report["figures"]["prod"]["resources"] == report["resources"] + 1


def test_each_extra_workload_adds_the_same_resources(report: dict) -> None:
    f = report["figures"]
    one = f["prod+1"]["resources"] - f["prod"]["resources"]
    assert one > 5 and f["prod+2"]["resources"] - f["prod+1"]["resources"] == one
    # The floor at each size registers those resources too (less the components).
    components = f["prod"]["resources"] - f["flat"]["resources"]
    assert f["flat+2"]["resources"] == f["prod+2"]["resources"] - components - 2


def test_the_report_reads(report: dict) -> None:
    text = preview.as_text(report)
    assert "prod / flat:" in text and "workloads 1->2" in text
