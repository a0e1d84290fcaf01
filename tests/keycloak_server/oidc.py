"""A headless OIDC client for the real Keycloak: the admin API, the browser's authorization-code flow
with PKCE (following the login form as a browser would), client credentials, and token checks.
Shared by the tests and `make bench-keycloak`."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests

from components.keycloak_realm import SERVICES_CLIENT, WEBAPP_CLIENT

FORM_ACTION = re.compile(r'<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"', re.DOTALL)
FORM_ACTION_REVERSED = re.compile(r'<form[^>]*action="([^"]+)"[^>]*id="kc-form-login"', re.DOTALL)


class FlowRefusedError(Exception):
    """Keycloak refused a step; the message says which and how."""


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) as RFC 7636 defines them."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Realm:
    """One realm on a server at its public URL. `new_session` makes an HTTP client that reaches it;
    each browser login gets its own (a browser with no SSO cookie yet)."""

    new_session: Callable[[], requests.Session]
    public_url: str
    name: str

    @cached_property
    def client(self) -> requests.Session:
        return self.new_session()

    @property
    def base(self) -> str:
        return f"{self.public_url.rstrip('/')}/realms/{self.name}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.base}/protocol/openid-connect/token"

    @property
    def auth_endpoint(self) -> str:
        return f"{self.base}/protocol/openid-connect/auth"

    def discovery(self) -> dict[str, Any]:
        response = self.client.get(f"{self.base}/.well-known/openid-configuration", timeout=30)
        response.raise_for_status()
        return response.json()

    # ---------------------------------------------------------------- browser flow

    def authorization_url(self, redirect_uri: str, challenge: str | None, state: str) -> str:
        query = {"client_id": WEBAPP_CLIENT, "redirect_uri": redirect_uri, "response_type": "code",
                 "scope": "openid", "state": state}
        if challenge is not None:
            query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        return f"{self.auth_endpoint}?{urlencode(query)}"

    def login_form(self, redirect_uri: str, challenge: str | None, state: str,
                   browser: requests.Session | None = None) -> tuple[requests.Session, str]:
        """A browser and the login form's action URL; FlowRefusedError when Keycloak answers otherwise."""
        browser = browser or self.new_session()
        page = browser.get(self.authorization_url(redirect_uri, challenge, state), allow_redirects=False,
                               timeout=30)
        if page.status_code in (302, 303):
            raise FlowRefusedError(f"redirected to {page.headers['Location']}")
        match = FORM_ACTION.search(page.text) or FORM_ACTION_REVERSED.search(page.text)
        if page.status_code != 200 or not match:
            raise FlowRefusedError(f"HTTP {page.status_code}: {error_text(page.text)}")
        return browser, html.unescape(match.group(1))

    @staticmethod
    def submit_login(form: tuple[requests.Session, str], username: str, password: str) -> requests.Response:
        browser, action = form
        return browser.post(action, data={"username": username, "password": password, "credentialId": ""},
                                allow_redirects=False, timeout=30)

    def browser_login(self, username: str, password: str, redirect_uri: str) -> dict[str, Any]:
        """Authorization code + PKCE S256, as the web app does it; returns the token response."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(16)
        response = self.submit_login(self.login_form(redirect_uri, challenge, state), username, password)
        if response.status_code not in (302, 303):
            raise FlowRefusedError(f"login answered HTTP {response.status_code}: {error_text(response.text)}")
        location = response.headers["Location"]
        assert location.startswith(redirect_uri), location
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == [state]
        return self.exchange_code(query["code"][0], redirect_uri, verifier)

    def exchange_code(self, code: str, redirect_uri: str, verifier: str | None) -> dict[str, Any]:
        data = {"grant_type": "authorization_code", "client_id": WEBAPP_CLIENT, "code": code,
                "redirect_uri": redirect_uri}
        if verifier is not None:
            data["code_verifier"] = verifier
        response = self.client.post(self.token_endpoint, data=data, timeout=30)
        if response.status_code != 200:
            raise FlowRefusedError(f"token endpoint answered HTTP {response.status_code}: {response.text}")
        return response.json()

    # ---------------------------------------------------------------- machine to machine

    def client_credentials(self, secret: str, client_id: str = SERVICES_CLIENT) -> dict[str, Any]:
        response = self.client.post(self.token_endpoint, data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}, timeout=30)
        if response.status_code != 200:
            raise FlowRefusedError(f"token endpoint answered HTTP {response.status_code}: {response.text}")
        return response.json()

    # ---------------------------------------------------------------- tokens

    def verify(self, token: str, jwks_uri: str, issuer: str) -> dict[str, Any]:
        """The token's claims, after checking its signature with a key from `jwks_uri` and its issuer
        (as the mesh does: no audience is required of it)."""
        keys = self.client.get(jwks_uri, timeout=30)
        keys.raise_for_status()
        kid = jwt.get_unverified_header(token)["kid"]
        (jwk,) = [k for k in keys.json()["keys"] if k["kid"] == kid]
        key = jwt.PyJWK(jwk)
        return jwt.decode(token, key=key, algorithms=[jwk["alg"]], issuer=issuer,
                          options={"verify_aud": False, "require": ["exp", "iat", "iss", "sub"]})


def error_text(page: str) -> str:
    """The message of a Keycloak error page (or the start of whatever came back)."""
    match = re.search(r'class="[^"]*(?:kc-feedback-text|pf-v5-c-alert__title|instruction)[^"]*"[^>]*>([^<]+)<', page)
    return html.unescape(match.group(1)).strip() if match else page[:200]


@dataclass
class Admin:
    """Keycloak's admin REST API with the bootstrap admin's credentials (master realm, admin-cli)."""

    base_url: str
    username: str
    password: str
    session: requests.Session

    def token(self) -> str:
        response = self.session.post(f"{self.base_url}/realms/master/protocol/openid-connect/token", data={
            "grant_type": "password", "client_id": "admin-cli", "username": self.username,
            "password": self.password}, timeout=30)
        response.raise_for_status()
        return response.json()["access_token"]

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        response = self.session.request(method, f"{self.base_url}/admin/realms{path}", headers=headers,
                                        timeout=60, **kwargs)
        response.raise_for_status()
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs).json()

    def create_user(self, realm: str, username: str, password: str) -> str:
        self.call("POST", f"/{realm}/users", json={
            "username": username, "enabled": True, "email": f"{username}@example.com", "emailVerified": True,
            "firstName": "Test", "lastName": "User",
            "credentials": [{"type": "password", "value": password, "temporary": False}]})
        (user,) = self.get(f"/{realm}/users", params={"username": username, "exact": "true"})
        return user["id"]

    def client(self, realm: str, client_id: str) -> dict[str, Any]:
        (client,) = self.get(f"/{realm}/clients", params={"clientId": client_id})
        return client
