"""Facts the program and the policy pack share: ports, headers, floors, capacity targets, parsers.

Standard library only. The program (`stacks/`, `components/`) imports these names from here, so the
pack never reaches back into the program, and a value the two must agree on exists once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# ---------------------------------------------------------------- ports

# Ports are facts of the WebSocket service image, not per-stack choices.
WEBSOCKET_PORT = 8080
HEALTH_PORT = 8081
FRONTEND_CONTAINER_PORT = 8080
FRONTEND_SERVICE_PORT = 80
# Redis Cluster ports (mesh rules, NetworkPolicies, exporter scrape).
REDIS_PORT = 6379
REDIS_BUS_PORT = 16379
REDIS_EXPORTER_PORT = 9121

# ---------------------------------------------------------------- sizing

# The env var that tells a WebSocket pod how many connections it holds (the policy pack reads it).
CONNECTIONS_PER_POD_ENV = "MAX_CONNECTIONS_PER_POD"
# The gauge of open WebSockets each pod exports on its health port (dashboards, alerts, autoscaling).
WEBSOCKET_CONNECTIONS_METRIC = "websocket_connections_active"
# The WebSocket service drains for this env var's seconds after SIGTERM, then gets this long to exit;
# the grace period holds the preStop pause, the drain and the exit (settings and pack both check).
SHUTDOWN_DRAIN_ENV = "SHUTDOWN_DRAIN_SECONDS"
SHUTDOWN_EXIT_SECONDS = 5
# Memory limit = maxmemory x this: a fork for BGSAVE/AOF rewrite copies pages on write (REQUIREMENTS).
REDIS_MEMORY_HEADROOM = 1.5
# REQUIREMENTS' capacity targets, which the policy pack judges the declared sizes against (the
# defaults of `targets` and of the pack's options): 10 pods x 1000+ connections, 10,000
# authentications/min. Session data: 3 masters x 8 GB are sized for it with one master's worth of
# slack for uneven slots.
DEFAULT_TARGET_CONCURRENT_CONNECTIONS = 10_000
DEFAULT_TARGET_AUTHENTICATIONS_PER_MINUTE = 10_000
DEFAULT_TARGET_SESSION_DATA = "16Gi"

# ---------------------------------------------------------------- load balancer and identity

# The paths WebSocket clients open (and everything below them): the LB, the mesh and the pack route them alike.
WEBSOCKET_PATHS = ("/ws", "/websocket")
# The backend service timeout is the whole lifetime of a WebSocket behind a GCP Application LB
# (the default 30 s cuts every socket after 30 s). Settings and the policy pack both enforce this.
MIN_WEBSOCKET_TIMEOUT_SECONDS = 3600
# Google's health-check probes and its front ends (global external Application LB, zonal
# GCE_VM_IP_PORT NEGs) connect from these ranges; there is no proxy-only subnet for this LB type.
GOOGLE_LB_SOURCE_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
# Request headers the LB must pass through untouched: browsers send the token in
# Sec-WebSocket-Protocol, other clients in Authorization; Upgrade/Connection carry the handshake.
# The token travels in one of these: other clients use Authorization, browsers (no headers on a
# WebSocket handshake) the Sec-WebSocket-Protocol list. The mesh must read and forward both.
TOKEN_HEADERS = ("authorization", "sec-websocket-protocol")
PROTECTED_HEADERS = frozenset({*TOKEN_HEADERS, "sec-websocket-key", "sec-websocket-version",
                               "sec-websocket-extensions", "upgrade", "connection"})
# `{variable}` placeholders the global external Application LB expands in custom header values
# (GCP's "custom headers" page). Anything else, and nginx's `$http_*`, would be sent literally.
GCP_HEADER_VARIABLES = frozenset({
    "client_rtt_msec", "client_region", "client_region_subdivision", "client_city", "client_city_lat_long",
    "client_encrypted", "client_protocol", "tls_sni_hostname", "tls_version", "tls_cipher_suite",
    "tls_ja3_fingerprint", "tls_ja4_fingerprint", "device_request_type", "user_agent_family",
    "cdn_cache_id", "cdn_cache_status", "origin_request_header",
})
# Token lifespans (seconds) the realm may use: REQUIREMENTS want a 5 min access token and a 30 min
# SSO idle (refresh tokens die with the session). The policy pack judges the rendered realm with them.
KEYCLOAK_TOKEN_BOUNDS: Mapping[str, tuple[int, int]] = MappingProxyType({
    "accessTokenLifespan": (60, 900),
    "ssoSessionIdleTimeout": (300, 3600),
    "ssoSessionMaxLifespan": (1800, 86400),
    "clientSessionIdleTimeout": (0, 3600),
})

# ---------------------------------------------------------------- parsers

# registry/path[:tag][@sha256:digest]
IMAGE_REFERENCE = re.compile(
    r"(?P<repo>[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(@(?P<digest>sha256:[a-f0-9]{64}))?"
)
_CPU = re.compile(r"(?P<num>\d+(\.\d+)?)(?P<unit>m?)")
_MEMORY = re.compile(r"(?P<num>\d+(\.\d+)?)(?P<unit>Ki|Mi|Gi|Ti|k|M|G|T)?")
_MEMORY_FACTORS = {
    None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}
_DURATION = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")


def parse_cpu_millis(text: str) -> int:
    """'100m' -> 100, '0.5' -> 500, '2' -> 2000. Raises ValueError when malformed."""
    match = _CPU.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(text)
    number = float(match["num"])
    return round(number if match["unit"] else number * 1000)


def parse_memory_bytes(text: str) -> int:
    """'128Mi' -> 134217728, '1G' -> 10**9. Raises ValueError when malformed."""
    match = _MEMORY.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(text)
    return round(float(match["num"]) * _MEMORY_FACTORS[match["unit"]])


def parse_duration_seconds(value: Any) -> int:
    """'90s', '5m', '24h', '1h30m' or a whole number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    match = _DURATION.fullmatch(value) if isinstance(value, str) and value else None
    if not match or not any(match.groupdict().values()):
        raise ValueError(value)
    parts = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    return parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def image_tag(image: str) -> str:
    """The tag of a validated image reference, or the short digest when it has no tag."""
    match = IMAGE_REFERENCE.fullmatch(image)
    assert match, image
    return match["tag"] or (match["digest"] or "")[7:19]
