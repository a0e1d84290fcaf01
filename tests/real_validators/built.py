"""The validators `make toolchain` built, as the tests ask for them: a missing one fails the test
under `CI=true` (CI must have built it) and skips it elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools import toolchain_validators


def missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def validators() -> toolchain_validators.Validators:
    v = toolchain_validators.current()
    if not v.complete():
        missing(f"the validators are not built ({v.home}); run `make toolchain`")
    return v


def tool(v: toolchain_validators.Validators, name: str) -> Path:
    """A built validator's binary (a tool the proxy refused is never asked for: the tests of
    Polaris and kube-linter do not exist, and the README says why)."""
    path = v.tool(name)
    if not path.is_file():
        missing(f"{name} is not in {v.bin} (refused: {v.built()['refused']})")
    return path
