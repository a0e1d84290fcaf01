"""Throughput of the rendered Redis config next to a stock redis-server, in one run.

    python -m bench.redis [--requests 200000] [--pipeline 16] [--clients 50] [--json]

Two six-node clusters on loopback, started the same way (tools/redis_local.py) and formed by the
component's own bootstrap script: one from the prod `redis.conf` the component renders (memory
scaled down; AOF everysec + RDB save points + maxmemory/allkeys-lru + password), one from a stock
config (cluster mode, loopback and the same password; everything else Redis's defaults). Each is
measured with `redis-benchmark --cluster -t set,get -P <pipeline>`, stock and rendered alternating
for a few rounds; the report gives the median requests/s and the ratio rendered / stock, and exits
1 when a ratio is under the documented budget (MIN_RATIO).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.redis_local import HOST, LocalCluster, prod_conf_params

PASSWORD = "BenchOnlyPassword0123456789abcd"  # noqa: S105 (loopback throwaway)
# The documented budget (README): persistence (AOF everysec + RDB save points), maxmemory/LRU and the
# password may cost at most half the stock throughput, per operation, median over the rounds.
MIN_RATIO = 0.5


def run_benchmark(cluster: LocalCluster, requests: int, pipeline: int, clients: int) -> dict[str, float]:
    """{"SET": rps, "GET": rps} from redis-benchmark in cluster mode against the first node."""
    done = subprocess.run(
        ["redis-benchmark", "--cluster", "-h", HOST, "-p", str(cluster.nodes[0].port), "-a", PASSWORD,
         "-t", "set,get", "-n", str(requests), "-P", str(pipeline), "-c", str(clients), "-r", "100000",
         "-d", "256", "--csv", "-q"],
        capture_output=True, text=True, timeout=600, check=True)
    out = done.stdout
    # An error reply (e.g. CLUSTERDOWN from a node that has not yet seen the cluster ok) makes
    # redis-benchmark refetch the slots and stall its clients: its figures would measure that stall.
    errors = [line for line in (out + done.stderr).splitlines() if "Error from server" in line]
    if errors:
        raise RuntimeError(f"redis-benchmark got {len(errors)} error replies, e.g. {errors[0].strip()}")
    rows = [r for r in csv.reader(io.StringIO(out)) if r and r[0] in ("SET", "GET")]
    return {r[0]: float(r[1]) for r in rows}


def measure(rendered: bool, root: Path, requests: int, pipeline: int, clients: int) -> dict[str, float]:
    params = prod_conf_params(512 * 2**20)[1] if rendered else None
    with LocalCluster(root, params, PASSWORD) as cluster:
        cluster.start_all()
        result = cluster.bootstrap()
        if result.returncode != 0:
            raise RuntimeError(result.stdout + result.stderr)
        # Measure only once the replicas have synced and no background save runs (the bootstrap
        # does not wait for that; see LocalCluster.settled).
        cluster.wait_settled()
        return run_benchmark(cluster, requests, pipeline, clients)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def verdict(ratio: dict[str, float], floor: float = MIN_RATIO) -> list[str]:
    """The operations whose rendered / stock ratio is under the documented floor (empty: within it)."""
    return [f"{op}: rendered is {value:.2f}x stock, under the documented floor of {floor:.2f}x"
            for op, value in sorted(ratio.items()) if value < floor]


def report(requests: int, pipeline: int, clients: int, rounds: int) -> dict[str, Any]:
    """Median req/s per operation over `rounds` rounds, stock and rendered alternating so that a
    noisy neighbour on a shared machine hits both alike."""
    runs: dict[str, list[dict[str, float]]] = {"stock": [], "rendered": []}
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        for round_ in range(rounds):
            for kind in ("stock", "rendered"):
                runs[kind].append(measure(kind == "rendered", Path(tmp) / f"{kind}-{round_}", requests, pipeline,
                                          clients))
    stock = {op: median([r[op] for r in runs["stock"]]) for op in runs["stock"][0]}
    rendered = {op: median([r[op] for r in runs["rendered"]]) for op in runs["rendered"][0]}
    ratio = {op: rendered[op] / stock[op] for op in stock if op in rendered}
    return {"requests": requests, "pipeline": pipeline, "clients": clients, "rounds": rounds,
            "stock": stock, "rendered": rendered, "runs": runs, "ratio": ratio,
            "floor": MIN_RATIO, "over_budget": verdict(ratio)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if not shutil.which(tool):
            print(f"error: {tool} not found (apt-get install redis-server redis-tools)", file=sys.stderr)
            return 2
    result = report(args.requests, args.pipeline, args.clients, args.rounds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"redis-benchmark --cluster, {args.requests} requests, pipeline {args.pipeline}, "
              f"{args.clients} clients, median of {args.rounds} round(s)")
        print(f"  {'op':4} {'stock rps':>12} {'rendered rps':>13} {'ratio':>7}")
        for op, ratio in result["ratio"].items():
            print(f"  {op:4} {result['stock'][op]:12.0f} {result['rendered'][op]:13.0f} {ratio:7.2f}")
        print(f"  budget: rendered >= {MIN_RATIO:.2f}x stock: " + ("; ".join(result["over_budget"]) or "within"))
    return 1 if result["over_budget"] else 0


if __name__ == "__main__":
    sys.exit(main())
