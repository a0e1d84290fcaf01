"""Keycloak's server options, per supported release line, as environment variable names.

Options were renamed between 23 and 26 (proxy -> proxy-headers, hostname v1 -> v2, KEYCLOAK_ADMIN ->
bootstrap admin, health and metrics moved to the management port). The manifests only use names from
this table, and a test checks every `KC_*` variable the component renders against the pinned line.
Source: Keycloak's "All configuration" guide for each line, checked against the pinned server's
`kc.sh build --help-all` / `kc.sh start --help-all` by tests/keycloak_server.
This module imports nothing from the project, so `stacks.settings` can validate versions with it.
"""

from __future__ import annotations

# Build options: baked in by `kc.sh build`; `start --optimized` must not be given different ones.
# Keycloak's own metadata decides: `kc.sh build --help-all` lists exactly the build options, and
# tests/keycloak_server checks this table against it and against the server's log.
_BUILD_26 = frozenset({
    "KC_DB", "KC_HEALTH_ENABLED", "KC_METRICS_ENABLED", "KC_EVENT_METRICS_USER_ENABLED",
    "KC_FEATURES", "KC_FEATURES_DISABLED", "KC_HTTP_RELATIVE_PATH", "KC_TRANSACTION_XA_ENABLED",
})
# Runtime options: read at every start (a build ignores them, saying so in its log).
_RUNTIME_26 = frozenset({
    "KC_CACHE", "KC_CACHE_STACK", "KC_CACHE_CONFIG_FILE", "KC_HTTP_METRICS_HISTOGRAMS_ENABLED",
    "KC_DB_URL", "KC_DB_URL_HOST", "KC_DB_URL_PORT", "KC_DB_URL_DATABASE", "KC_DB_URL_PROPERTIES",
    "KC_DB_USERNAME", "KC_DB_PASSWORD", "KC_DB_SCHEMA",
    "KC_DB_POOL_INITIAL_SIZE", "KC_DB_POOL_MIN_SIZE", "KC_DB_POOL_MAX_SIZE",
    "KC_HOSTNAME", "KC_HOSTNAME_ADMIN", "KC_HOSTNAME_STRICT", "KC_HOSTNAME_BACKCHANNEL_DYNAMIC", "KC_HOSTNAME_DEBUG",
    "KC_HTTP_ENABLED", "KC_HTTP_HOST", "KC_HTTP_PORT", "KC_HTTP_MANAGEMENT_PORT",
    "KC_PROXY_HEADERS", "KC_PROXY_TRUSTED_ADDRESSES", "KC_PROXY_PROTOCOL_ENABLED",
    "KC_BOOTSTRAP_ADMIN_USERNAME", "KC_BOOTSTRAP_ADMIN_PASSWORD",
    "KC_BOOTSTRAP_ADMIN_CLIENT_ID", "KC_BOOTSTRAP_ADMIN_CLIENT_SECRET",
    "KC_LOG", "KC_LOG_LEVEL", "KC_LOG_CONSOLE_OUTPUT",
    "KC_CACHE_EMBEDDED_MTLS_ENABLED",
})


# release line -> (build options, runtime options). Community Keycloak supports only its latest
# minor line: add a line here only after checking its option names, then pin it in the stacks.
OPTIONS_BY_LINE: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "26.6": (_BUILD_26, _RUNTIME_26),
}
SUPPORTED_LINES: tuple[str, ...] = tuple(OPTIONS_BY_LINE)

# Names older releases used that 26.x no longer reads (or reads only as deprecated aliases).
REMOVED_OPTIONS = frozenset({
    "KC_PROXY",                                  # -> KC_PROXY_HEADERS (+ KC_HTTP_ENABLED)
    "KC_HOSTNAME_URL", "KC_HOSTNAME_ADMIN_URL",  # hostname v1 -> KC_HOSTNAME / KC_HOSTNAME_ADMIN as full URLs
    "KC_HOSTNAME_PORT", "KC_HOSTNAME_PATH", "KC_HOSTNAME_STRICT_HTTPS", "KC_HOSTNAME_STRICT_BACKCHANNEL",
    "KEYCLOAK_ADMIN", "KEYCLOAK_ADMIN_PASSWORD",  # -> KC_BOOTSTRAP_ADMIN_USERNAME / _PASSWORD
})


def release_line(version: str) -> str:
    """'26.6.4' -> '26.6'."""
    return ".".join(version.split(".")[:2])


def build_options(version: str) -> frozenset[str]:
    return OPTIONS_BY_LINE[release_line(version)][0]


def runtime_options(version: str) -> frozenset[str]:
    return OPTIONS_BY_LINE[release_line(version)][1]
