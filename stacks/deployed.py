"""What the stack last deployed, read before anything is declared, and the changes refused against it.

The Redis layout (masters, replicas per master, zones, namespace) decides which pods exist, where,
and which master each replica follows. The program cannot reshard a live cluster: applied, such a
change would recreate pods and leave the bootstrap Job failing halfway; a new namespace would start
an empty cluster and delete the old one with its volumes (in prod the protected Namespace stops it
too, with Pulumi's generic protect error, which names no setting). So the program reads its own last
outputs through the engine and stops a changed layout in preview with one line, before a single
resource is registered.

The layout is read from the RedisCluster component's state (the builtin `readStackResourceOutputs`,
made synchronously), not only from the stack's outputs: an update that failed (this refusal
included) leaves the stack resource without outputs, while components it never reached keep theirs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pulumi

from components.redis_cluster import REDIS_CLUSTER_TYPE, layout_record
from stacks.settings import Settings, SettingsError

REDIS_LAYOUT_OUTPUT = "redis_layout"
MIGRATION_RUNBOOK = "docs/upgrades.md#redis (step 4)"
NAMESPACE_RUNBOOK = "docs/upgrades.md#redis (step 5)"
_READ_RESOURCE_OUTPUTS = "pulumi:pulumi:readStackResourceOutputs"
# A file:// backend rewrites the stack's checkpoint in place while an update starts: a read at that
# moment finds it empty ("failed to load checkpoint: EOF", seen in CI). Read again, briefly.
_TORN_CHECKPOINT = "failed to load checkpoint"
READ_ATTEMPTS = 5
READ_PAUSE_SECONDS = 0.5


def last_deployed_layout() -> Mapping[str, Any] | None:
    """The Redis layout the running stack last deployed; None before the first deploy (and under
    the offline render's mocks, which deploy nothing)."""
    # A file:// backend names every stack's organization `organization`.
    organization = pulumi.get_organization() or "organization"
    name = f"{organization}/{pulumi.get_project()}/{pulumi.get_stack()}"
    # The SDK raises when the engine reports a failure: the preview stops rather than guess, except
    # for a checkpoint caught mid-write, which is read again.
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            result = pulumi.runtime.invoke(_READ_RESOURCE_OUTPUTS, {"stackName": name})
            break
        except Exception as err:  # the SDK raises a bare Exception for a failed invoke
            if _TORN_CHECKPOINT not in str(err) or attempt == READ_ATTEMPTS:
                raise
            time.sleep(READ_PAUSE_SECONDS)
    return deployed_layout((result.value or {}).get("outputs") or {})


def deployed_layout(resources: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The layout in a `readStackResourceOutputs` answer (URN -> {type, outputs}): the RedisCluster
    component's `layout`, else the stack's `redis_layout` output. A layout recorded before it held
    the namespace takes it from the component's own `namespace` output."""
    found = {}
    for state in resources.values():
        if not isinstance(state, Mapping) or not isinstance(state.get("outputs"), Mapping):
            continue
        if state.get("type") == REDIS_CLUSTER_TYPE:
            outputs = state["outputs"]
            layout = outputs.get("layout")
            if isinstance(layout, Mapping) and "namespace" not in layout and isinstance(outputs.get("namespace"), str):
                layout = {**layout, "namespace": outputs["namespace"]}
            found["component"] = layout
        elif state.get("type") == "pulumi:pulumi:Stack":
            found["stack"] = state["outputs"].get(REDIS_LAYOUT_OUTPUT)
    for source in ("component", "stack"):
        if isinstance(found.get(source), Mapping):
            return found[source]
    return None


def _key(settings: Settings, name: str) -> str:
    return f"{settings.project}:{name}"


def refuse_layout_change(settings: Settings, deployed: Mapping[str, Any] | None) -> None:
    """Raise a SettingsError naming the first layout key that differs from the deployed cluster's.

    `redis.layoutMigrated: true` lets one deploy record a layout the operator migrated to by hand;
    it is refused when nothing changed, so it cannot stay set and wave the next change through."""
    planned = layout_record(settings.redis, settings.gcp.zones)
    migrated = settings.redis.layout_migrated
    if not isinstance(deployed, Mapping):
        return
    reshard = "the program cannot reshard a live cluster; migrate it first, see " + MIGRATION_RUNBOOK
    changes = [
        (_key(settings, "redis.masters"), planned["masters"], f"{_count(deployed.get('masters'))} masters", reshard),
        (_key(settings, "redis.replicasPerMaster"), planned["replicas_per_master"],
         f"{_count(deployed.get('replicas_per_master'))} replicas per master", reshard),
        (_key(settings, "gcp.zones"), planned["zones"], f"the zones {list(deployed.get('zones') or [])}", reshard),
    ]
    if "namespace" in deployed:  # not in records older than the namespace's place in the layout
        changes.append((_key(settings, "redis.namespace"), planned["namespace"],
                        f"its pods and data in namespace {deployed['namespace']!r}",
                        "a move starts an empty cluster and deletes that one; see " + NAMESPACE_RUNBOOK))
    differing = [(key, value, what, why) for key, value, what, why in changes
                 if _normal(value) != _normal(deployed.get(_field(key)))]
    if migrated and not differing:
        raise SettingsError(_key(settings, "redis.layoutMigrated"), True,
                            "the deployed Redis layout already matches the settings: remove the key "
                            "(it is for the one deploy after a migration)")
    if differing and not migrated:
        key, value, what, why = differing[0]
        raise SettingsError(key, value, f"the deployed Redis cluster has {what}, and {why}")


def _field(key: str) -> str:
    return {"redis.masters": "masters", "redis.replicasPerMaster": "replicas_per_master",
            "gcp.zones": "zones", "redis.namespace": "namespace"}[key.split(":", 1)[1]]


def _count(value: Any) -> Any:
    # Numbers come back from the engine as floats.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _normal(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return _count(value)
