"""One real Keycloak (and its PostgreSQL) for every test in this folder, started from the staging render."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components import keycloak as kc
from tests.keycloak_postgres_server import running_postgres
from tests.keycloak_server.harness import KeycloakServer, require_keycloak, running_keycloak, staging_keycloak
from tools import render


# Package scope: the server stops when this folder's tests are done, not at the end of the session
# (its JVM's listeners must not linger beside the other suites' loopback servers).
@pytest.fixture(scope="package")
def keycloak() -> Iterator[KeycloakServer]:
    dist = require_keycloak()
    rendered = staging_keycloak()
    settings = render.settings_of(render.load_stack_config(rendered.stack)).keycloak
    db_password = rendered.secrets[kc.DB_SECRET][kc.DB_PASSWORD_KEY]
    with running_postgres(settings, keycloak_password=db_password) as database, \
            running_keycloak(dist, rendered, database["port"]) as server:
        yield server
