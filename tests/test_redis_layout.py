"""The Redis layout planner: pods per zone, masters and the replica each follows."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from components.redis_layout import ClusterLayout, NodeSlot, plan_layout

ZONES = ("europe-west1-b", "europe-west1-c", "europe-west1-d", "europe-west1-e")


def check_shape(layout: ClusterLayout, masters: int, replicas: int) -> None:
    nodes = layout.nodes
    assert len(nodes) == len(set(nodes)) == masters * (1 + replicas)
    assert max(layout.pods_per_zone) - min(layout.pods_per_zone) <= 1, "even over zones"
    used = [s.master for s in layout.shards] + [r for s in layout.shards for r in s.replicas]
    assert sorted(used) == sorted(nodes), "every node is a master or a replica, exactly once"
    assert all(len(s.replicas) == replicas for s in layout.shards)


def separation_possible(zone_of: list[str], masters: int, replicas: int) -> bool:
    """Brute force: is there any choice of masters and pairing with no replica in its master's zone?"""
    n = len(zone_of)
    for chosen in itertools.combinations(range(n), masters):
        rest = [i for i in range(n) if i not in chosen]
        for perm in itertools.permutations(rest):
            if all(zone_of[perm[k * masters + m]] != zone_of[chosen[m]]
                   for k in range(replicas) for m in range(masters)):
                return True
    return False


def test_prod_three_zones_puts_every_replica_in_another_zone() -> None:
    layout = plan_layout(ZONES[:3], 3, 1)
    check_shape(layout, 3, 1)
    assert layout.pods_per_zone == (2, 2, 2)
    assert layout.zone_separated
    assert len({s.master.zone for s in layout.shards}) == 3, "one master per zone"


def test_staging_two_zones_still_separates() -> None:
    layout = plan_layout(ZONES[:2], 3, 1)
    check_shape(layout, 3, 1)
    assert layout.pods_per_zone == (3, 3) and layout.zone_separated


def test_one_zone_pairs_inside_it() -> None:
    layout = plan_layout(ZONES[:1], 3, 1)
    check_shape(layout, 3, 1)
    assert not layout.zone_separated and layout.pods_per_zone == (6,)


def test_more_zones_than_nodes_leaves_zones_empty() -> None:
    layout = plan_layout(ZONES, 1, 1)
    check_shape(layout, 1, 1)
    assert layout.pods_per_zone == (1, 1, 0, 0) and layout.zone_separated


@pytest.mark.parametrize(("zones", "masters", "replicas"), [
    (z, m, r) for z in range(1, 5) for m in range(1, 5) for r in range(0, 3) if m * (1 + r) <= 8])
def test_separates_whenever_any_pairing_could(zones: int, masters: int, replicas: int) -> None:
    layout = plan_layout(ZONES[:zones], masters, replicas)
    check_shape(layout, masters, replicas)
    zone_of = [slot.zone for slot in layout.nodes]
    assert layout.zone_separated == separation_possible(zone_of, masters, replicas)


def test_deterministic_and_masters_spread() -> None:
    assert plan_layout(ZONES[:3], 4, 2) == plan_layout(ZONES[:3], 4, 2)
    layout = plan_layout(ZONES[:3], 4, 1)
    assert max(Counter(s.master.zone for s in layout.shards).values()) == 2
    assert layout.shards[0].master == NodeSlot(ZONES[0], 0)


@pytest.mark.parametrize(("zones", "masters", "replicas"), [((), 3, 1), (("a-b", "a-b"), 3, 1),
                                                            (ZONES[:2], 0, 1), (ZONES[:2], 3, -1)])
def test_rejects_impossible_input(zones: tuple[str, ...], masters: int, replicas: int) -> None:
    with pytest.raises(ValueError):
        plan_layout(zones, masters, replicas)
