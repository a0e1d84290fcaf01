"""The Redis benchmark runs end to end (tiny request count: its figures are not judged here, only
its arithmetic and its budget verdict)."""

from __future__ import annotations

import json

import pytest

from bench import redis as bench_redis
from tests.conftest import require_tool


def test_redis_benchmark_reports_both_clusters_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        require_tool(tool)
    code = bench_redis.main(["--requests", "2000", "--clients", "4", "--rounds", "1", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (1 if result["over_budget"] else 0)
    assert set(result["ratio"]) == {"SET", "GET"} and result["rounds"] == 1
    for op in ("SET", "GET"):
        assert result["stock"][op] > 0 and result["rendered"][op] > 0
        assert result["ratio"][op] == pytest.approx(result["rendered"][op] / result["stock"][op])
        assert result["stock"][op] == result["runs"]["stock"][0][op]


def test_median_and_budget_verdict() -> None:
    assert bench_redis.median([3.0, 1.0, 2.0]) == 2.0 and bench_redis.median([1.0, 4.0]) == 2.5
    assert bench_redis.verdict({"SET": 0.67, "GET": 1.0}, floor=0.5) == []
    (over,) = bench_redis.verdict({"SET": 0.3, "GET": 0.9}, floor=0.5)
    assert over.startswith("SET: rendered is 0.30x")
