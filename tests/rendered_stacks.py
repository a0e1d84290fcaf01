"""The real stacks, rendered once per process (no files), as policy test inputs.

The cross-layer rules judge what the program declares across the load balancer, the mesh and the
workloads; their cases start from the rendered stack and change one thing, as the mutation test
does with the whole pack.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from stacks import policy_config
from tests.policy_fixtures import Wire, change
from tools import render


@cache
def _rendered(stack: str) -> tuple[dict[str, Any], policy_config.PlatformFlows]:
    config = render.load_stack_config(stack)
    registrations = render.run_program(render.platform_program, config)
    return render.resources_document(config, registrations), policy_config.PlatformFlows.from_exports()


def rendered_document(stack: str) -> dict[str, Any]:
    """`resources.json` of the stack, as `tools.render` writes it."""
    return _rendered(stack)[0]


@cache
def stack_pack_config(stack: str) -> dict[str, Any]:
    """The stack's own pack config (levels and targets from its settings, flows from its program)."""
    settings = render.settings_of(render.load_stack_config(stack))
    return policy_config.pack_config(settings, _rendered(stack)[1]).as_json()


def rendered_wires(stack: str = "prod", edits: Mapping[str, Mapping[str, Any]] | None = None, *,
                   protect: Mapping[str, bool] | None = None, drop: Iterable[str] = (),
                   add: Iterable[Wire] = ()) -> list[Wire]:
    """The stack's resources as Wires, with `edits[name]` applied to the props of the resource with
    that Pulumi name, `protect[name]` overriding its protect option, `drop` names removed."""
    edits, protect, drop = dict(edits or {}), dict(protect or {}), set(drop)
    wires = []
    for r in rendered_document(stack)["resources"]:
        name = r["name"]
        if name in drop:
            continue
        props = change(r["props"], edits.pop(name)) if name in edits else r["props"]
        wires.append(Wire(r["type"], name, props, protect.pop(name, bool(r["protect"]))))
    assert not edits and not protect, f"no resource named {sorted({*edits, *protect})} in {stack}"
    return [*wires, *add]
