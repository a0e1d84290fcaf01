"""PostgreSQL 15 for Keycloak, on loopback, from what the component renders (postgresql.conf,
pg_hba.conf, init SQL and the image's first-start hook). Used by the database tests and by the
real Keycloak server's tests."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from components import keycloak as kc
from components import postgres as pg
from components.keycloak import KeycloakSettings
from tests.conftest import require_tool

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER_PASSWORD = "superuser-test-password-1"
KEYCLOAK_PASSWORD = "keycloak-test-password-'quoted'"


def require_postgres_15() -> None:
    """Debian keeps the server binaries off PATH; CI (`.ci/run`) installs postgresql-15."""
    if (PG_BIN / "postgres").exists() and (PG_BIN / "initdb").exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL 15 is required in CI (.ci/run installs postgresql-15) but {PG_BIN} lacks it")
    pytest.skip("PostgreSQL 15 not installed (apt-get install postgresql-15); CI installs it")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_unprivileged(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: drop to `nobody` when the tests run as root."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "nobody", "--", *command]


@contextmanager
def running_postgres(staging: KeycloakSettings, keycloak_password: str = KEYCLOAK_PASSWORD) -> Iterator[dict]:
    """A PostgreSQL 15 with the rendered config files, initialised the way the image's hook does.
    Yields `port`, `socket` and `log`; the Keycloak user's password is `keycloak_password`."""
    require_postgres_15()
    require_tool("psql")
    if os.geteuid() == 0:
        require_tool("runuser")
    # Directly under /tmp: pytest's own tmp folders are 0700 root, which `nobody` cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="aiwfe-keycloak-pg-"))
    data, socket_dir, conf = root / "data", root / "run", root / "conf"
    for path in (socket_dir, conf):
        path.mkdir()
    (conf / "postgresql.conf").write_text(pg.postgresql_conf(
        connections=pg.max_connections(staging.replicas, kc.POOL_SIZE),
        memory_limit=staging.database.postgres_resources.memory_limit))
    (conf / "pg_hba.conf").write_text(pg.pg_hba_conf(kc.DATABASE, kc.DB_USER))
    (conf / "init.sql").write_text(pg.init_sql())
    (root / "pwfile").write_text(SUPERUSER_PASSWORD + "\n")
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chmod(root, 0o755)  # noqa: S103 (nobody must traverse it; the files stay its own)
        for path in [root, *root.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    initdb = subprocess.run(as_unprivileged([str(PG_BIN / "initdb"), "-D", str(data), "-U", pg.SUPERUSER,
                                             f"--pwfile={root / 'pwfile'}", "--auth=scram-sha-256", "-E", "UTF8"]),
                            capture_output=True, text=True, timeout=120)
    assert initdb.returncode == 0, initdb.stderr
    port = free_port()
    # The rendered files, as the container passes them; only address, port and socket dir are the test's.
    log = open(root / "postgres.log", "w")  # noqa: SIM115 (closed after the server stops)
    process = subprocess.Popen(as_unprivileged([
        str(PG_BIN / "postgres"), "-D", str(data),
        "-c", f"config_file={conf / 'postgresql.conf'}", "-c", f"hba_file={conf / 'pg_hba.conf'}",
        "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}", "-c", f"unix_socket_directories={socket_dir}"]),
        stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = [str(PG_BIN / "pg_isready"), "--host", str(socket_dir), "--port", str(port)]
        for _ in range(100):
            if subprocess.run(ready, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("postgres did not start:\n" + (root / "postgres.log").read_text())
        # The image's first-start hook, as rendered: psql with variables, password from a mounted file.
        script = pg.init_script(kc.DATABASE, kc.DB_USER).replace(f"{pg.CONFIG_DIR}/init.sql", str(conf / "init.sql"))
        password_file = root / pg.KEYCLOAK_PASSWORD_FILE
        password_file.write_text(keycloak_password)
        env = {**os.environ, "POSTGRES_USER": pg.SUPERUSER, "PGPASSWORD": SUPERUSER_PASSWORD,
               "KEYCLOAK_DB_PASSWORD_FILE": str(password_file), "PGHOST": str(socket_dir), "PGPORT": str(port)}
        result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        yield {"port": port, "socket": socket_dir, "log": root / "postgres.log"}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)
