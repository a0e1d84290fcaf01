"""The Redis benchmark runs end to end (tiny request count; its figures are not judged here)."""

from __future__ import annotations

import json

import pytest

from bench import redis as bench_redis
from tests.conftest import require_tool


def test_redis_benchmark_reports_both_clusters_and_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        require_tool(tool)
    assert bench_redis.main(["--requests", "2000", "--clients", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["ratio"]) == {"SET", "GET"}
    for op in ("SET", "GET"):
        assert result["stock"][op] > 0 and result["rendered"][op] > 0
        assert result["ratio"][op] == pytest.approx(result["rendered"][op] / result["stock"][op])
