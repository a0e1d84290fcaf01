"""The login and token flows the platform relies on, against the real server and the rendered realm."""

from __future__ import annotations

import re
import secrets
import time

import jwt
import pytest
import requests

from components import keycloak as kc
from components import mesh
from components.keycloak_realm import SERVICES_CLIENT, WEBAPP_CLIENT
from tests.keycloak_server.harness import KeycloakServer
from tests.keycloak_server.oidc import Admin, FlowRefusedError, Realm, pkce_pair

PASSWORD = "correct-horse-battery-9"  # a throwaway test user's


@pytest.fixture(scope="module")
def realm(keycloak: KeycloakServer) -> Realm:
    return Realm(keycloak.client, keycloak.public_url, keycloak.rendered.realm_name)


@pytest.fixture(scope="module")
def admin(keycloak: KeycloakServer) -> Admin:
    credentials = keycloak.rendered.secrets[kc.ADMIN_SECRET]
    return Admin(keycloak.url, credentials["username"], credentials["password"], requests.Session())


@pytest.fixture(scope="module")
def user(admin: Admin, realm: Realm) -> str:
    admin.create_user(realm.name, "flow-user", PASSWORD)
    return "flow-user"


def webapp(keycloak: KeycloakServer) -> dict:
    return next(c for c in keycloak.rendered.realm["clients"] if c["clientId"] == WEBAPP_CLIENT)


def jwt_rules(keycloak: KeycloakServer) -> list[dict]:
    rules = [rule for ra in keycloak.rendered.request_authentications for rule in ra["spec"]["jwtRules"]]
    assert rules
    return rules


def check_token_as_the_mesh_does(keycloak: KeycloakServer, realm: Realm, token: str) -> dict:
    """Every rendered RequestAuthentication rule accepts the token: its issuer, its JWKS, its audiences."""
    claims = {}
    for rule in jwt_rules(keycloak):
        claims = realm.verify(token, rule["jwksUri"], rule["issuer"])
        if rule.get("audiences"):
            audience = claims.get("aud")
            assert set(audience if isinstance(audience, list) else [audience]) & set(rule["audiences"])
    return claims


def test_discovery_names_the_issuer_and_jwks_the_mesh_uses(keycloak: KeycloakServer, realm: Realm) -> None:
    discovery = realm.discovery()
    for rule in jwt_rules(keycloak):
        assert (discovery["issuer"], discovery["jwks_uri"]) == (rule["issuer"], rule["jwksUri"])
    assert "S256" in discovery["code_challenge_methods_supported"]


def test_browser_login_with_pkce_issues_tokens_the_mesh_accepts(keycloak: KeycloakServer, realm: Realm,
                                                                user: str) -> None:
    tokens = realm.browser_login(user, PASSWORD, webapp(keycloak)["redirectUris"][0])
    claims = check_token_as_the_mesh_does(keycloak, realm, tokens["access_token"])
    assert claims["exp"] - claims["iat"] == keycloak.rendered.realm["accessTokenLifespan"]
    # Keycloak counts expires_in from the moment it answers: a second may have ticked since `iat`.
    lifespan = keycloak.rendered.realm["accessTokenLifespan"]
    assert lifespan - 2 <= tokens["expires_in"] <= lifespan
    # The request principal the mesh's AuthorizationPolicies match is `<iss>/<sub>`.
    assert claims["sub"] and claims["azp"] == WEBAPP_CLIENT and claims["typ"] == "Bearer"
    assert claims["preferred_username"] == user
    # Refresh tokens live as long as the idle session.
    idle = keycloak.rendered.realm["ssoSessionIdleTimeout"]
    assert idle - 2 <= tokens["refresh_expires_in"] <= idle


def test_token_in_the_websocket_subprotocol_validates(keycloak: KeycloakServer, realm: Realm, user: str) -> None:
    """The browser offers `jwt-auth, jwt.<token>`; the rendered `fromHeaders` prefix yields the token."""
    token = realm.browser_login(user, PASSWORD, webapp(keycloak)["redirectUris"][0])["access_token"]
    header = f"jwt-auth, jwt.{token}"
    for rule in jwt_rules(keycloak):
        (location,) = [h for h in rule["fromHeaders"] if h["name"] == mesh.WEBSOCKET_PROTOCOL_HEADER]
        extracted = mesh.extract_header_token(header, location["prefix"])
        assert extracted == token
        realm.verify(extracted, rule["jwksUri"], rule["issuer"])


def test_a_tampered_token_is_refused(keycloak: KeycloakServer, realm: Realm, user: str) -> None:
    """The verification can fail: a token whose payload changed does not verify against the JWKS."""
    token = realm.browser_login(user, PASSWORD, webapp(keycloak)["redirectUris"][0])["access_token"]
    header, payload, signature = token.split(".")
    forged = ".".join([header, payload[:-4] + ("AAAA" if not payload.endswith("AAAA") else "BBBB"), signature])
    rule = jwt_rules(keycloak)[0]
    with pytest.raises(jwt.InvalidTokenError):
        realm.verify(forged, rule["jwksUri"], rule["issuer"])
    with pytest.raises(jwt.InvalidIssuerError):
        realm.verify(token, rule["jwksUri"], rule["issuer"] + "-other")


def test_login_without_a_code_challenge_is_refused(keycloak: KeycloakServer, realm: Realm) -> None:
    redirect = webapp(keycloak)["redirectUris"][0]
    with pytest.raises(FlowRefusedError, match="code_challenge"):
        realm.login_form(redirect, None, secrets.token_urlsafe(8))
    # ... while the same request with a challenge shows the login form.
    assert realm.login_form(redirect, pkce_pair()[1], secrets.token_urlsafe(8))


def test_code_exchange_without_the_verifier_is_refused(keycloak: KeycloakServer, realm: Realm, user: str) -> None:
    redirect = webapp(keycloak)["redirectUris"][0]
    _, challenge = pkce_pair()
    response = realm.submit_login(realm.login_form(redirect, challenge, "s"), user, PASSWORD)
    code = re.search(r"[?&]code=([^&]+)", response.headers["Location"]).group(1)
    with pytest.raises(FlowRefusedError, match="invalid_grant"):
        realm.exchange_code(code, redirect, None)


def test_redirect_uri_outside_the_allowed_list_is_refused(keycloak: KeycloakServer, realm: Realm) -> None:
    allowed = webapp(keycloak)["redirectUris"]
    for uri in ("https://evil.example.com/callback", allowed[0] + "/../../elsewhere", allowed[0] + "x"):
        assert uri not in allowed
        with pytest.raises(FlowRefusedError, match=r"(?i)redirect"):
            realm.login_form(uri, pkce_pair()[1], "s")


def test_client_credentials_with_the_generated_secret(keycloak: KeycloakServer, realm: Realm) -> None:
    secret = keycloak.rendered.secrets[kc.CLIENT_SECRETS][SERVICES_CLIENT]
    tokens = realm.client_credentials(secret)
    claims = check_token_as_the_mesh_does(keycloak, realm, tokens["access_token"])
    assert claims["azp"] == SERVICES_CLIENT and claims["sub"]
    assert claims["exp"] - claims["iat"] == keycloak.rendered.realm["accessTokenLifespan"]
    with pytest.raises(FlowRefusedError, match="401"):
        realm.client_credentials(secret[:-1] + ("x" if secret[-1] != "x" else "y"))


def test_the_browser_client_cannot_use_client_credentials_or_passwords(realm: Realm, user: str) -> None:
    with pytest.raises(FlowRefusedError):
        realm.client_credentials("", client_id=WEBAPP_CLIENT)
    response = realm.client.post(realm.token_endpoint, data={
        "grant_type": "password", "client_id": WEBAPP_CLIENT, "username": user, "password": PASSWORD}, timeout=30)
    assert response.status_code in (400, 401) and response.json()["error"] in ("unauthorized_client",
                                                                                "invalid_client")


def test_brute_force_protection_locks_after_the_configured_failures(keycloak: KeycloakServer, realm: Realm,
                                                                    admin: Admin) -> None:
    failures = keycloak.rendered.realm["failureFactor"]
    user_id = admin.create_user(realm.name, "brute-force-target", PASSWORD)
    redirect = webapp(keycloak)["redirectUris"][0]

    # Failures closer together than this lock at once ("quick login check"); space them out.
    spacing = admin.get(f"/{realm.name}")["quickLoginCheckMilliSeconds"] / 1000 + 0.2

    def attempt(password: str) -> int:
        time.sleep(spacing)
        form = realm.login_form(redirect, pkce_pair()[1], "s")
        return realm.submit_login(form, "brute-force-target", password).status_code

    for _ in range(failures - 1):
        assert attempt("wrong-password-0") == 200  # the form again, with an error
    assert admin.get(f"/{realm.name}/attack-detection/brute-force/users/{user_id}")["disabled"] is False
    assert attempt("wrong-password-0") == 200
    status = admin.get(f"/{realm.name}/attack-detection/brute-force/users/{user_id}")
    assert status["disabled"] is True and status["numFailures"] == failures
    # Locked: even the right password is refused until the wait is over.
    assert attempt(PASSWORD) == 200


def test_user_event_metrics_count_logins(keycloak: KeycloakServer, realm: Realm, user: str) -> None:
    """What the auth-failure alert and the auth dashboard query."""
    realm.browser_login(user, PASSWORD, webapp(keycloak)["redirectUris"][0])
    metrics = requests.get(f"{keycloak.management_url}/metrics", timeout=10).text
    assert re.search(r'^keycloak_user_events_total\{[^}]*event="login"', metrics, re.MULTILINE), \
        "no keycloak_user_events_total{event=\"login\"} series"
