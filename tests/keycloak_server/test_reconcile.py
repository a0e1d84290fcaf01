"""The realm reconcile Job's script against the running server: settings changed in the stack reach
the realm (redirect URIs, lifespans, rotated client secrets), and a re-run changes nothing."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from components import keycloak as kc
from components.keycloak_realm import SERVICES_CLIENT, SERVICES_SECRET_ENV, WEBAPP_CLIENT
from tests.keycloak_server.harness import KeycloakServer, RenderedKeycloak, rendered_keycloak
from tests.keycloak_server.oidc import Admin, FlowRefusedError, Realm
from tools import render

PASSWORD = "reconcile-user-pass-7"  # a throwaway test user's
NEW_REDIRECT = "https://staging.aiwfe.example.com/user/callback-v2"
NEW_LIFESPAN = 240
NEW_GOOGLE_SECRET = 'rotated-google-secret-with-"quote"-and-\\backslash'


@pytest.fixture(scope="module")
def admin(keycloak: KeycloakServer) -> Admin:
    credentials = keycloak.rendered.secrets[kc.ADMIN_SECRET]
    return Admin(keycloak.url, credentials["username"], credentials["password"], requests.Session())


@pytest.fixture(scope="module")
def realm(keycloak: KeycloakServer) -> Realm:
    return Realm(keycloak.client, keycloak.public_url, keycloak.rendered.realm_name)


@pytest.fixture(scope="module")
def user(admin: Admin, realm: Realm) -> str:
    admin.create_user(realm.name, "reconcile-user", PASSWORD)
    return "reconcile-user"


def snapshot(admin: Admin, realm: str) -> dict[str, Any]:
    """What the reconcile manages, as the admin API reports it."""
    clients = {c: admin.client(realm, c) for c in (WEBAPP_CLIENT, SERVICES_CLIENT)}
    services_secret = admin.get(f"/{realm}/clients/{clients[SERVICES_CLIENT]['id']}/client-secret")["value"]
    return {"realm": admin.get(f"/{realm}"), "clients": clients, "services_secret": services_secret,
            "identity_providers": admin.get(f"/{realm}/identity-provider/instances")}


def differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Paths where two snapshots differ (empty when equal)."""
    if isinstance(left, dict) and isinstance(right, dict):
        return [d for key in sorted(left.keys() | right.keys(), key=str)
                for d in differences(left.get(key), right.get(key), f"{path}/{key}")]
    if isinstance(left, list) and isinstance(right, list) and all(isinstance(x, str) for x in left + right):
        left, right = sorted(left), sorted(right)  # scope lists come back in any order
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [d for i, (a, b) in enumerate(zip(left, right, strict=True)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]


def changed_render() -> RenderedKeycloak:
    """The staging render after an operator edits the stack: one redirect URI replaced, a shorter
    access token, and a rotated Google client secret (a stack secret)."""
    config = render.load_stack_config("staging")
    keycloak = json.loads(config.values["aiwfe-platform:keycloak"])
    keycloak["webapp"]["redirectUris"] = [NEW_REDIRECT, *keycloak["webapp"]["redirectUris"][1:]]
    keycloak["tokens"]["accessTokenLifespan"] = f"{NEW_LIFESPAN // 60}m"
    values = {**config.values, "aiwfe-platform:keycloak": json.dumps(keycloak),
              "aiwfe-platform:keycloakGoogleClientSecret": NEW_GOOGLE_SECRET}
    return rendered_keycloak(config=render.StackConfig(config.project, config.stack, values, config.secret_keys))


def google_secret_in_database(keycloak: KeycloakServer) -> str:
    """The stored secret (the admin API masks it), read as Keycloak's database user."""
    env = {**os.environ, "PGPASSWORD": keycloak.rendered.secrets[kc.DB_SECRET][kc.DB_PASSWORD_KEY]}
    query = ("SELECT c.value FROM identity_provider_config c JOIN identity_provider p "
             "ON p.internal_id = c.identity_provider_id WHERE p.provider_alias = 'google' AND c.name = 'clientSecret'")
    result = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(keycloak.database_port),
                             "-U", kc.DB_USER, "-d", kc.DATABASE, "-c", query],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def reconciled(keycloak: KeycloakServer, rendered: RenderedKeycloak | None = None,
               secrets_: dict[str, str] | None = None) -> str:
    result = keycloak.reconcile(rendered, secrets_)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def original(keycloak: KeycloakServer, admin: Admin) -> Iterator[dict[str, Any]]:
    """The realm as the stack declares it, after one reconcile; after the module's tests the
    reconcile restores it (the other tests use it), which is itself checked."""
    reconciled(keycloak)
    before = snapshot(admin, keycloak.rendered.realm_name)
    yield before
    reconciled(keycloak)
    assert differences(snapshot(admin, keycloak.rendered.realm_name), before) == []


def test_reconcile_of_the_declared_realm_changes_nothing(keycloak: KeycloakServer, admin: Admin,
                                                         original: dict[str, Any]) -> None:
    log = reconciled(keycloak)
    assert "client aiwfe-webapp: updated" in log and "identity provider google: updated" in log
    assert differences(snapshot(admin, keycloak.rendered.realm_name), original) == []


def test_a_missing_secret_stops_the_reconcile_before_it_writes(keycloak: KeycloakServer, admin: Admin,
                                                               original: dict[str, Any]) -> None:
    result = keycloak.reconcile(changed_render(), {SERVICES_SECRET_ENV: ""})
    assert result.returncode != 0
    assert f"{SERVICES_SECRET_ENV} is empty or unset" in result.stderr
    assert differences(snapshot(admin, keycloak.rendered.realm_name), original) == []


def test_refused_admin_credentials_stop_the_reconcile_at_once(keycloak: KeycloakServer, admin: Admin,
                                                              original: dict[str, Any]) -> None:
    """A wrong admin password is not "Keycloak still starting": the Job fails, saying why."""
    result = keycloak.reconcile(secrets={"KC_CLI_PASSWORD": "not-the-admin-password"})
    assert result.returncode != 0
    assert "Keycloak refused the admin login" in result.stderr and "waiting for Keycloak" not in result.stderr
    assert "not-the-admin-password" not in result.stderr
    assert differences(snapshot(admin, keycloak.rendered.realm_name), original) == []


def test_settings_the_stack_does_not_declare_survive_a_reconcile(keycloak: KeycloakServer, admin: Admin,
                                                                original: dict[str, Any]) -> None:
    """Realm settings and identity-provider options set in the console but not declared (WebAuthn
    policy, an IdP's display name) are merged around, not reset."""
    realm = keycloak.rendered.realm_name
    admin.call("PUT", f"/{realm}", json={"webAuthnPolicyRpEntityName": "aiwfe-console-choice"})
    google = admin.get(f"/{realm}/identity-provider/instances/google")
    admin.call("PUT", f"/{realm}/identity-provider/instances/google", json={**google, "displayName": "Google SSO"})
    try:
        reconciled(keycloak)
        assert admin.get(f"/{realm}")["webAuthnPolicyRpEntityName"] == "aiwfe-console-choice"
        assert admin.get(f"/{realm}/identity-provider/instances/google")["displayName"] == "Google SSO"
    finally:
        before = original["realm"]["webAuthnPolicyRpEntityName"]
        admin.call("PUT", f"/{realm}", json={"webAuthnPolicyRpEntityName": before})
        admin.call("PUT", f"/{realm}/identity-provider/instances/google", json={**google})


def test_stack_changes_reach_the_running_realm(keycloak: KeycloakServer, admin: Admin, realm: Realm, user: str,
                                               original: dict[str, Any]) -> None:
    old_redirect = original["clients"][WEBAPP_CLIENT]["redirectUris"]
    old_secret = keycloak.rendered.secrets[kc.CLIENT_SECRETS][SERVICES_CLIENT]
    rotated = secrets.token_hex(24)  # what a replaced RandomPassword puts in the Secret
    changed = changed_render()
    reconciled(keycloak, changed, {SERVICES_SECRET_ENV: rotated})

    after = snapshot(admin, realm.name)
    assert after["realm"]["accessTokenLifespan"] == NEW_LIFESPAN
    assert NEW_REDIRECT in after["clients"][WEBAPP_CLIENT]["redirectUris"]
    assert google_secret_in_database(keycloak) == NEW_GOOGLE_SECRET

    # The flows use the new values.
    tokens = realm.browser_login(user, PASSWORD, NEW_REDIRECT)
    rule = keycloak.rendered.request_authentications[0]["spec"]["jwtRules"][0]
    claims = realm.verify(tokens["access_token"], rule["jwksUri"], rule["issuer"])
    assert claims["exp"] - claims["iat"] == NEW_LIFESPAN
    removed = next(uri for uri in sorted(old_redirect) if uri not in changed.realm["clients"][0]["redirectUris"]
                   and uri not in changed.realm["clients"][1]["redirectUris"])
    with pytest.raises(FlowRefusedError, match=r"(?i)redirect"):
        realm.browser_login(user, PASSWORD, removed)
    assert realm.client_credentials(rotated)["access_token"]
    with pytest.raises(FlowRefusedError, match="401"):
        realm.client_credentials(old_secret)

    # Applying the same declaration again changes nothing.
    reconciled(keycloak, changed, {SERVICES_SECRET_ENV: rotated})
    assert differences(snapshot(admin, realm.name), after) == []
