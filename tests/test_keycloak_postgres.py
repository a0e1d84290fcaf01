"""What the component renders for PostgreSQL (postgresql.conf, pg_hba.conf, init SQL), applied to a
real PostgreSQL 15 started here on loopback, then reached the way Keycloak's JDBC URL says."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from components import keycloak as kc
from components import postgres as pg
from stacks.settings import parse_settings
from tests.keycloak_postgres_server import KEYCLOAK_PASSWORD, SUPERUSER_PASSWORD, running_postgres
from tools import render as render_tool


@pytest.fixture(scope="module")
def staging():
    config = render_tool.load_stack_config("staging")
    return parse_settings(config.values, stack="staging", secret_keys=config.secret_keys).keycloak


@pytest.fixture(scope="module")
def server(staging) -> Iterator[dict]:
    with running_postgres(staging) as running:
        yield running


def psql(url: str, port: int, user: str, password: str, sql: str) -> subprocess.CompletedProcess[str]:
    """Connect where the JDBC URL points (its host mapped to loopback), by TCP, with a password."""
    parsed = urlparse(url.removeprefix("jdbc:"))
    assert parsed.scheme == "postgresql" and parsed.port == pg.POSTGRES_PORT
    database = parsed.path.lstrip("/")
    env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}
    env.pop("PGHOST", None)
    return subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-h", "127.0.0.1", "-p", str(port),
                           "-U", user, "-d", database, "-c", sql], env=env, capture_output=True, text=True, timeout=30)


def test_keycloak_connects_as_its_url_says_and_owns_its_schema(server: dict, staging) -> None:
    url = kc.database_url(staging)
    assert urlparse(url.removeprefix("jdbc:")).hostname == "keycloak-postgres.keycloak.svc.cluster.local"
    result = psql(url, server["port"], kc.DB_USER, KEYCLOAK_PASSWORD,
                  "CREATE TABLE realm_probe (id text primary key); INSERT INTO realm_probe VALUES ('x'); "
                  "SELECT current_database(), current_user, count(*) FROM realm_probe;")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "keycloak|keycloak|1"


def test_rendered_settings_are_in_force(server: dict, staging) -> None:
    url = kc.database_url(staging)
    result = psql(url, server["port"], kc.DB_USER, KEYCLOAK_PASSWORD,
                  "SELECT current_setting('max_connections'), current_setting('password_encryption'), "
                  "current_setting('shared_buffers'), current_setting('ssl')")
    assert result.returncode == 0, result.stderr
    expected_connections = pg.max_connections(staging.replicas, kc.POOL_SIZE)
    assert result.stdout.strip() == f"{expected_connections}|scram-sha-256|256MB|off"
    assert expected_connections >= (staging.replicas + 1) * kc.POOL_SIZE


def test_wrong_password_is_refused(server: dict, staging) -> None:
    result = psql(kc.database_url(staging), server["port"], kc.DB_USER, "not-the-password", "SELECT 1")
    assert result.returncode != 0 and "password authentication failed" in result.stderr


def test_superuser_is_rejected_over_the_network(server: dict, staging) -> None:
    """pg_hba.conf: only Keycloak's user, only to its database, over TCP; the superuser only on the socket."""
    url = kc.database_url(staging)
    superuser = psql(url, server["port"], pg.SUPERUSER, SUPERUSER_PASSWORD, "SELECT 1")
    assert superuser.returncode != 0 and "rejects connection" in superuser.stderr
    other_db = psql(url.replace("/keycloak", "/postgres"), server["port"], kc.DB_USER, KEYCLOAK_PASSWORD, "SELECT 1")
    assert other_db.returncode != 0 and "rejects connection" in other_db.stderr


def test_passwords_are_stored_as_scram(server: dict) -> None:
    env = {**os.environ, "PGPASSWORD": SUPERUSER_PASSWORD}
    result = subprocess.run(["psql", "-X", "-At", "-h", str(server["socket"]), "-p", str(server["port"]),
                             "-U", pg.SUPERUSER, "-d", "postgres", "-c",
                             f"SELECT rolpassword FROM pg_authid WHERE rolname = '{kc.DB_USER}'"],  # noqa: S608
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert re.match(r"^SCRAM-SHA-256\$", result.stdout.strip())
    assert KEYCLOAK_PASSWORD not in server["log"].read_text()
