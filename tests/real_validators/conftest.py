"""The validators `make toolchain` built (tools/toolchain_validators.py) and the rendered stacks they judge."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.rendered_stacks import rendered_document
from tools import render, toolchain_validators

ROOT = Path(__file__).resolve().parents[2]
ISTIO_CRDS = ROOT / "tests" / "schemas" / "istio-1.30.3-crds.yaml"
STACKS = ("staging", "prod")


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def validators() -> toolchain_validators.Validators:
    v = toolchain_validators.current()
    if not v.complete():
        _missing(f"the validators are not built ({v.home}); run `make toolchain`")
    return v


def tool(v: toolchain_validators.Validators, name: str) -> Path:
    """A built validator's binary; a refused one skips (it is listed in the README with the reason)."""
    path = v.tool(name)
    if not path.is_file():
        _missing(f"{name} is not in {v.bin} (refused: {v.built()['refused']})")
    return path


def stack_manifests(stack: str) -> list[dict[str, Any]]:
    """Every Kubernetes object the stack declares, in the order `tools.render` numbers them."""
    objects = [m for r in rendered_document(stack)["resources"] if (m := render.kubernetes_manifest(r))]

    def order(obj: dict[str, Any]) -> int:
        kind = obj["kind"]
        return render.KIND_ORDER.index(kind) if kind in render.KIND_ORDER else len(render.KIND_ORDER)

    return sorted(objects, key=order)
