"""Dependencies point one way: tools -> stacks -> components -> the policy pack's stdlib-only contract.

`make lint` runs import-linter's contracts (pyproject.toml) over the same; these tests add what
they cannot say: the pack reaches its own modules only relatively (so a copy of the pack folder
runs), and the contract imports nothing outside the standard library.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What each layer may not import (the first part of the module path).
FORBIDDEN = {
    "stacks": {"tools", "tests", "bench"},
    "components": {"stacks", "tools", "tests", "bench"},
    # The pack: its own modules relatively (a copy of the folder is not named `policies`).
    "policies": {"stacks", "components", "tools", "tests", "bench", "policies"},
}


def imported_modules(source: str) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def layer_violations(layer: str, source: str) -> list[str]:
    return [f"line {line}: imports {module}" for line, module, _ in imported_modules(source)
            if module.split(".")[0] in FORBIDDEN[layer]]


def private_imports(own_module: str, source: str) -> list[str]:
    """Names starting with `_` taken from another of the program's modules."""
    return [f"line {line}: {module}.{name}" for line, module, names in imported_modules(source)
            for name in names
            if name.startswith("_") and not name.startswith("__") and module != own_module
            and module.split(".")[0] in {"stacks", "components", "policies", "tools"}]


def modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    problems = {str(path.relative_to(ROOT)): layer_violations(layer, path.read_text()) for path in modules(layer)}
    assert not {name: found for name, found in problems.items() if found}


def test_the_contract_is_standard_library_only() -> None:
    source = (ROOT / "policies" / "aiwfe_policies" / "contract.py").read_text()
    outside = [module for _, module, _ in imported_modules(source)
               if module.split(".")[0] not in sys.stdlib_module_names and module != "__future__"]
    assert outside == []


def test_the_program_takes_no_private_helpers_from_another_module() -> None:
    problems = {}
    for layer in ("stacks", "components"):
        for path in modules(layer):
            found = private_imports(f"{layer}.{path.stem}", path.read_text())
            if found:
                problems[path.name] = found
    assert problems == {}


def test_the_checks_see_a_wrong_way_import() -> None:
    # Without this the guards above would pass on a checker that finds nothing.
    source = "import pulumi\n\ndef f():\n    from stacks.settings import Settings\n"
    assert layer_violations("components", source) == ["line 4: imports stacks.settings"]
    assert layer_violations("policies", "from components.mesh import X\n") == ["line 1: imports components.mesh"]
    assert layer_violations("policies", "from policies.aiwfe_policies.engine import X\n") == [
        "line 1: imports policies.aiwfe_policies.engine"]
    assert layer_violations("policies", "from .engine import X\n") == []
    assert private_imports("components.a", "from components.b import _helper, ok\n") == [
        "line 1: components.b._helper"]


BLOCK_PULUMI_POLICY = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pulumi_policy":
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)")
sys.meta_path.insert(0, Refuse())
"""


def test_the_program_runs_without_pulumi_policy() -> None:
    # The staging stack names advisory rules, so its settings look them up in the pack's catalog.
    program = BLOCK_PULUMI_POLICY + """
from stacks.stack_file import load_stack_config
from tools.render import platform_program, run_program
registrations = run_program(platform_program, load_stack_config("staging"))
assert len(registrations) > 100, len(registrations)
assert not [m for m in sys.modules if m.startswith("pulumi_policy")]
print("declared", len(registrations))
"""
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("declared ")
    # The blocker works: the analyzer's reading of props does need pulumi_policy.
    check = subprocess.run([sys.executable, "-c", BLOCK_PULUMI_POLICY + "from policies.aiwfe_policies import engine\n"
                            "engine.analyzer_props({})\n"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert check.returncode != 0 and "refused by the test" in check.stderr
