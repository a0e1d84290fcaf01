"""Where each Redis node runs and which master each replica follows, decided at render time.

`redis-cli --cluster create --cluster-replicas N` pairs nodes by IP address and knows nothing of
zones, so a master and its only replica can end up in the same zone and a zone outage then loses a
shard. Instead the cluster runs one StatefulSet per zone (pinned with node affinity; a zonal
persistent disk keeps a pod in its zone for good) and the bootstrap is told explicitly which node
follows which master. `plan_layout` makes that plan: pure, deterministic, tested on its own.

A shard keeps its zones under failover: a promoted replica and its old master swap roles, and both
stay where they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class NodeSlot:
    """One Redis pod: the zone its StatefulSet is pinned to, and its ordinal in that StatefulSet."""

    zone: str
    ordinal: int

    @property
    def zone_suffix(self) -> str:
        """`europe-west1-b` -> `b` (zones are validated as `<region>-<letter>`)."""
        return zone_suffix(self.zone)


@dataclass(frozen=True)
class Shard:
    """A master and the replicas that follow it (the bootstrap's pairing)."""

    master: NodeSlot
    replicas: tuple[NodeSlot, ...]


@dataclass(frozen=True)
class ClusterLayout:
    """Pods per zone and the shards: `masters x (1 + replicas_per_master)` nodes in all."""

    zones: tuple[str, ...]
    pods_per_zone: tuple[int, ...]
    shards: tuple[Shard, ...]

    @property
    def nodes(self) -> tuple[NodeSlot, ...]:
        """Every node, zone by zone, ordinal by ordinal (the StatefulSets' pod order)."""
        return tuple(NodeSlot(z, i) for z, count in zip(self.zones, self.pods_per_zone, strict=True)
                     for i in range(count))

    @property
    def zone_separated(self) -> bool:
        """No replica shares its master's zone."""
        return all(r.zone != s.master.zone for s in self.shards for r in s.replicas)


def zone_suffix(zone: str) -> str:
    return zone.rsplit("-", 1)[-1]


def plan_layout(zones: Sequence[str], masters: int, replicas_per_master: int) -> ClusterLayout:
    """Spread the nodes evenly over `zones`, take the masters round-robin over the zones, and give
    every master replicas from other zones whenever the zones allow it (a maximum bipartite matching
    of replica places to nodes outside the master's zone); with one zone, pairs share it."""
    if not zones or len(set(zones)) != len(zones):
        raise ValueError(f"need distinct zones, got {list(zones)}")
    if masters < 1 or replicas_per_master < 0:
        raise ValueError("need at least one master and a non-negative replica count")
    total = masters * (1 + replicas_per_master)
    base, extra = divmod(total, len(zones))
    counts = tuple(base + (1 if i < extra else 0) for i in range(len(zones)))
    # Round-robin order: ordinal 0 of every zone, then ordinal 1, ... (masters land on distinct zones first).
    order = [NodeSlot(z, i) for i in range(max(counts)) for z, c in zip(zones, counts, strict=True) if i < c]
    master_slots = _pick_masters(order, dict(zip(zones, counts, strict=True)), masters, replicas_per_master)
    rest = [slot for slot in order if slot not in master_slots]

    # Replica places (shard, k); an edge to a node in another zone than the shard's master.
    places = [(m, k) for k in range(replicas_per_master) for m in range(masters)]
    taken_by: dict[int, int] = {}  # rest index -> place index

    def augment(place: int, seen: set[int]) -> bool:
        master = master_slots[places[place][0]]
        for node, slot in enumerate(rest):
            if slot.zone == master.zone or node in seen:
                continue
            seen.add(node)
            if node not in taken_by or augment(taken_by[node], seen):
                taken_by[node] = place
                return True
        return False

    for place in range(len(places)):
        augment(place, set())
    assigned = {place: node for node, place in taken_by.items()}
    spare = iter(n for n in range(len(rest)) if n not in taken_by)
    for place in range(len(places)):
        if place not in assigned:  # the zones do not allow separation for this place
            assigned[place] = next(spare)
    replicas: dict[int, list[NodeSlot]] = {m: [] for m in range(masters)}
    for place, (m, _) in enumerate(places):
        replicas[m].append(rest[assigned[place]])
    shards = tuple(Shard(master_slots[m], tuple(sorted(replicas[m]))) for m in range(masters))
    return ClusterLayout(tuple(zones), counts, shards)


def _pick_masters(order: list[NodeSlot], counts: dict[str, int], masters: int, replicas: int) -> list[NodeSlot]:
    """The first masters in round-robin `order`, skipping a zone once more of its masters could not
    all get replicas from other zones. Hall's condition for one zone z with m masters: their m x r
    replica places need the non-master nodes outside z, (total - masters) - (count_z - m) of them;
    sets spanning two zones always have every non-master node to choose from."""
    total = masters * (1 + replicas)

    def cap(zone: str) -> int:
        if replicas <= 1:  # m*r <= (total-masters) - count_z + m does not depend on m
            return counts[zone]
        return max(0, min(counts[zone], (total - masters - counts[zone]) // (replicas - 1)))

    chosen: list[NodeSlot] = []
    per_zone: dict[str, int] = dict.fromkeys(counts, 0)
    for slot in order:
        if len(chosen) < masters and per_zone[slot.zone] < cap(slot.zone):
            chosen.append(slot)
            per_zone[slot.zone] += 1
    # Not enough room for separation: fill up in plain round-robin order (pairs will share zones).
    chosen += [slot for slot in order if slot not in chosen][:masters - len(chosen)]
    return chosen
