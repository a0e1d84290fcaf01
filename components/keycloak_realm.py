"""The Keycloak realm as code: one pure function from settings to the realm representation.

The JSON lands in a ConfigMap and is imported by `kc.sh start --import-realm`. It carries no
secret: client and identity-provider secrets are `${ENV}` placeholders that Keycloak resolves at
import from environment variables backed by Kubernetes Secrets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WEBAPP_CLIENT = "aiwfe-webapp"
SERVICES_CLIENT = "aiwfe-services"
# Environment variables the import resolves (not KC_*: those are Keycloak's own options).
SERVICES_SECRET_ENV = "AIWFE_SERVICES_CLIENT_SECRET"  # noqa: S105 (a variable name)
GOOGLE_SECRET_ENV = "AIWFE_GOOGLE_CLIENT_SECRET"  # noqa: S105
GITHUB_SECRET_ENV = "AIWFE_GITHUB_CLIENT_SECRET"  # noqa: S105
IMPORT_DIR = "data/import"
"""Relative to the Keycloak home; `--import-realm` reads `<home>/data/import/*.json`."""


@dataclass(frozen=True)
class RealmSpec:
    """What the realm is made of (all from stack settings)."""

    name: str
    access_token_lifespan: int
    sso_session_idle: int
    sso_session_max: int
    client_session_idle: int
    redirect_uris: Sequence[str]
    web_origins: Sequence[str]
    google_client_id: str
    github_client_id: str


def placeholder(env: str) -> str:
    return "${" + env + "}"


def realm_file_name(realm: str) -> str:
    return f"{realm}-realm.json"


def realm_representation(spec: RealmSpec) -> dict[str, Any]:
    """The realm `--import-realm` creates: lifespans, brute-force protection, two clients, two IdPs."""
    if spec.client_session_idle > spec.sso_session_idle:
        raise ValueError("clientSessionIdleTimeout must not exceed ssoSessionIdleTimeout")
    for uri in (*spec.redirect_uris, *spec.web_origins):
        if "*" in uri or not uri.startswith("https://"):
            raise ValueError(f"{uri!r}: redirect URIs and web origins are exact https URLs")
    return {
        "realm": spec.name,
        "enabled": True,
        "sslRequired": "external",
        "registrationAllowed": False,
        "loginWithEmailAllowed": True,
        "duplicateEmailsAllowed": False,
        "resetPasswordAllowed": True,
        # Lifespans: short access tokens; refresh tokens live as long as the (idle) session.
        "accessTokenLifespan": spec.access_token_lifespan,
        "ssoSessionIdleTimeout": spec.sso_session_idle,
        "ssoSessionMaxLifespan": spec.sso_session_max,
        "clientSessionIdleTimeout": spec.client_session_idle,
        "clientSessionMaxLifespan": spec.sso_session_max,
        "revokeRefreshToken": True,
        "refreshTokenMaxReuse": 0,
        # Brute force: lock for a growing wait after 5 failures (never permanently: no self-DoS).
        "bruteForceProtected": True,
        "permanentLockout": False,
        "failureFactor": 5,
        "waitIncrementSeconds": 60,
        "maxFailureWaitSeconds": 900,
        "maxDeltaTimeSeconds": 43200,
        "passwordPolicy": "length(12) and notUsername and notEmail",
        "clients": [
            {
                "clientId": WEBAPP_CLIENT,
                "name": "AIWFE web application",
                "enabled": True,
                "protocol": "openid-connect",
                "publicClient": True,
                "standardFlowEnabled": True,
                "implicitFlowEnabled": False,
                "directAccessGrantsEnabled": False,
                "serviceAccountsEnabled": False,
                "frontchannelLogout": True,
                "redirectUris": list(spec.redirect_uris),
                "webOrigins": list(spec.web_origins),
                # `+`: after logout, only the client's own redirect URIs.
                "attributes": {"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": "+"},
            },
            {
                "clientId": SERVICES_CLIENT,
                "name": "AIWFE services (machine to machine)",
                "enabled": True,
                "protocol": "openid-connect",
                "publicClient": False,
                "clientAuthenticatorType": "client-secret",
                "secret": placeholder(SERVICES_SECRET_ENV),
                "serviceAccountsEnabled": True,
                "standardFlowEnabled": False,
                "implicitFlowEnabled": False,
                "directAccessGrantsEnabled": False,
                "redirectUris": [],
                "webOrigins": [],
            },
        ],
        "identityProviders": [
            _identity_provider("google", spec.google_client_id, GOOGLE_SECRET_ENV),
            _identity_provider("github", spec.github_client_id, GITHUB_SECRET_ENV),
        ],
    }


def _identity_provider(provider: str, client_id: str, secret_env: str) -> dict[str, Any]:
    return {
        "alias": provider,
        "providerId": provider,
        "enabled": True,
        "trustEmail": True,
        "storeToken": False,
        "firstBrokerLoginFlowAlias": "first broker login",
        "config": {"clientId": client_id, "clientSecret": placeholder(secret_env), "syncMode": "IMPORT"},
    }


def realm_json(spec: RealmSpec) -> str:
    """Stable text (sorted keys), so its hash changes only when the realm does."""
    return json.dumps(realm_representation(spec), indent=2, sort_keys=True) + "\n"
