"""Keycloak's login and token throughput on this machine, against the sizing the capacity rule assumes.

    python -m bench.keycloak [--seconds 60] [--workers 4] [--json]

Starts the real Keycloak from the staging render (the test harness: tests/keycloak_server), then
drives two loads from client threads for `--seconds` each, after a short warm-up:
- password logins through the browser flow (authorization code + PKCE S256: login page, form POST,
  code exchange), each by a fresh browser so every one hashes the password;
- client_credentials grants for `aiwfe-services`.
Throughput alone says little on a 2-core machine whose client shares the cores, so the report
divides by the CPU seconds the Keycloak JVM itself used in the window (from /proc): operations per
vCPU-second, next to what policies/aiwfe_policies/rules/capacity.py assumes (Keycloak's HA guide). Exits 1 when the
measured rate per vCPU is below the assumption, i.e. when the rule would size Keycloak too small.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from components import keycloak as kc
from components.keycloak_realm import SERVICES_CLIENT, WEBAPP_CLIENT
from policies.aiwfe_policies.rules.capacity import CLIENT_CREDENTIAL_GRANTS_PER_VCPU, PASSWORD_LOGINS_PER_VCPU
from tests.keycloak_postgres_server import running_postgres
from tests.keycloak_server.harness import KeycloakServer, require_keycloak, running_keycloak, staging_keycloak
from tests.keycloak_server.oidc import Admin, Realm
from tools import render

PASSWORD = "bench-user-password-42"  # noqa: S105 (a throwaway loopback user's)
WARM_UP_SECONDS = 15


def jvm_cpu_seconds(launcher_pid: int) -> float:
    """User + system CPU of the JVM that kc.sh started (its child), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    for pid in [launcher_pid, *map(int, children)]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def drive(operation: Callable[[int], None], workers: int, seconds: float) -> tuple[int, int]:
    """Run `operation(worker)` in `workers` threads until the deadline: (done, failed)."""
    done, failed = [0] * workers, [0] * workers
    deadline = time.monotonic() + seconds

    def loop(worker: int) -> None:
        while time.monotonic() < deadline:
            try:
                operation(worker)
                done[worker] += 1
            except Exception:
                failed[worker] += 1

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), sum(failed)


def measure(server: KeycloakServer, name: str, operation: Callable[[int], None], workers: int, seconds: float,
            assumed_per_vcpu: float) -> dict[str, Any]:
    drive(operation, workers, WARM_UP_SECONDS)
    cpu_before, started = jvm_cpu_seconds(server.process.pid), time.monotonic()
    done, failed = drive(operation, workers, seconds)
    elapsed, cpu = time.monotonic() - started, jvm_cpu_seconds(server.process.pid) - cpu_before
    per_vcpu = done / cpu if cpu else 0.0
    return {"operation": name, "done": done, "failed": failed, "seconds": round(elapsed, 1),
            "per_second": round(done / elapsed, 1), "keycloak_cpu_seconds": round(cpu, 1),
            "per_vcpu_second": round(per_vcpu, 1), "assumed_per_vcpu_second": assumed_per_vcpu,
            "measured_over_assumed": round(per_vcpu / assumed_per_vcpu, 2)}


def run(seconds: float, workers: int) -> list[dict[str, Any]]:
    dist = require_keycloak()
    rendered = staging_keycloak()
    settings = render.settings_of(render.load_stack_config(rendered.stack)).keycloak
    with running_postgres(settings, keycloak_password=rendered.secrets[kc.DB_SECRET][kc.DB_PASSWORD_KEY]) as db, \
            running_keycloak(dist, rendered, db["port"]) as server:
        credentials = rendered.secrets[kc.ADMIN_SECRET]
        admin = Admin(server.url, credentials["username"], credentials["password"], requests.Session())
        realm = Realm(server.client, server.public_url, rendered.realm_name)
        users = [f"bench-{w}" for w in range(workers)]
        for user in users:
            admin.create_user(realm.name, user, PASSWORD)
        redirect = next(c for c in rendered.realm["clients"] if c["clientId"] == WEBAPP_CLIENT)["redirectUris"][0]
        secret = rendered.secrets[kc.CLIENT_SECRETS][SERVICES_CLIENT]
        sessions = [server.client() for _ in range(workers)]

        def login(worker: int) -> None:
            realm.browser_login(users[worker], PASSWORD, redirect)

        def grant(worker: int) -> None:
            response = sessions[worker].post(realm.token_endpoint, data={
                "grant_type": "client_credentials", "client_id": SERVICES_CLIENT, "client_secret": secret},
                timeout=30)
            response.raise_for_status()

        return [measure(server, "password login (PKCE browser flow)", login, workers, seconds,
                        PASSWORD_LOGINS_PER_VCPU),
                measure(server, "client_credentials grant", grant, workers, seconds,
                        CLIENT_CREDENTIAL_GRANTS_PER_VCPU)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.keycloak", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per load (default 60)")
    parser.add_argument("--workers", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.workers <= 0:
        print("bench.keycloak: --seconds and --workers must be positive", file=sys.stderr)
        return 2
    results = run(args.seconds, args.workers)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'operation':38} {'ok':>6} {'failed':>6} {'/s':>7} {'KC cpu s':>9} {'/vCPU s':>8} "
              f"{'assumed':>8} {'ratio':>6}")
        for r in results:
            print(f"{r['operation']:38} {r['done']:>6} {r['failed']:>6} {r['per_second']:>7} "
                  f"{r['keycloak_cpu_seconds']:>9} {r['per_vcpu_second']:>8} {r['assumed_per_vcpu_second']:>8} "
                  f"{r['measured_over_assumed']:>6}")
    short = [r for r in results if r["measured_over_assumed"] < 1 or r["failed"]]
    for r in short:
        print(f"bench.keycloak: {r['operation']}: {r['per_vcpu_second']} per vCPU-second measured, "
              f"{r['assumed_per_vcpu_second']} assumed; {r['failed']} failed", file=sys.stderr)
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
