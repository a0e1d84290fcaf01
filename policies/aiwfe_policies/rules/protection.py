"""Production rules on resource options: what holds data, or an address others depend on, is
`protect`ed so that no `pulumi up` or `destroy` can delete it by accident."""

from __future__ import annotations

from collections.abc import Iterable

from ..engine import Context, Resource, stack_rule
from .kubernetes import STATEFUL_SET, namespace_of

PVC = "kubernetes:core/v1:PersistentVolumeClaim"
NAMESPACE = "kubernetes:core/v1:Namespace"
STATEFUL_TYPES = {
    STATEFUL_SET: "holds its volumes' claims",
    PVC: "is a volume",
    "gcp:sql/databaseInstance:DatabaseInstance": "is the database server",
    "gcp:sql/database:Database": "is a database",
    "gcp:compute/globalAddress:GlobalAddress": "is the address DNS points at",
    "gcp:compute/address:Address": "is an address DNS may point at",
    "gcp:storage/bucket:Bucket": "holds objects",
}


@stack_rule("platform-stateful-resources-require-protect", severity="high", prod_only=True,
            description="In prod a resource that holds data (StatefulSets, volumes, Cloud SQL) or an address "
                        "DNS points at is protected, as is the namespace around stateful workloads (deleting "
                        "a namespace deletes its volumes): replacing or deleting one loses what cannot be "
                        "re-created.")
def stateful_protected(resources: list[Resource], _: Context) -> Iterable[tuple[Resource, str]]:
    """Every StatefulSet, PersistentVolumeClaim, Cloud SQL instance and database, global or regional
    address and storage bucket has Pulumi's `protect` option, and so does every Namespace that
    contains a StatefulSet or PersistentVolumeClaim."""
    stateful_namespaces = {namespace_of(r) for r in resources if r.type in (STATEFUL_SET, PVC)}
    for resource in resources:
        if resource.protect:
            continue
        why = STATEFUL_TYPES.get(resource.type)
        if why is None and resource.type == NAMESPACE \
                and (resource.props.get("metadata") or {}).get("name") in stateful_namespaces:
            why = "holds stateful workloads (deleting it deletes their volumes)"
        if why is not None:
            yield resource, f"{resource.name} {why} but is not protected (ResourceOptions(protect=True))"
