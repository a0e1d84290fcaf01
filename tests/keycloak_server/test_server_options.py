"""The rendered options on the real server: accepted, applied where they belong, nothing ignored."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from components import keycloak as kc
from components.keycloak_options import REMOVED_OPTIONS, build_options, runtime_options
from tests.keycloak_server.harness import (
    BAD_LOG_MARKERS,
    LOOPBACK_ADAPTATIONS,
    KeycloakServer,
    kc_command,
    staging_keycloak,
)
from tools import render, toolchain

BASE_ENV = {"PATH", "HOME", "LANG"}


def option_name(env: str) -> str:
    """KC_HTTP_MANAGEMENT_PORT -> http-management-port (Keycloak's own mapping)."""
    return env.removeprefix("KC_").lower().replace("_", "-")


def help_options(server: KeycloakServer, command: str) -> set[str]:
    result = subprocess.run([str(server.home / "bin" / "kc.sh"), command, "--help-all"], env=server.kc_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"^--([a-z0-9-]+)", result.stdout, re.MULTILINE)) - {"help-all"}


def test_stacks_pin_the_release_the_tests_run() -> None:
    for stack in ("staging", "prod"):
        settings = render.settings_of(render.load_stack_config(stack))
        assert settings.keycloak.version == toolchain.versions()["keycloak"]["version"], stack


def test_no_option_is_ignored_or_unknown(keycloak: KeycloakServer) -> None:
    lines = [m for m in [*keycloak.build_log.splitlines(), *keycloak.log_messages()]
             if any(marker in m for marker in BAD_LOG_MARKERS)]
    assert lines == []


def test_the_log_check_can_fail(keycloak: KeycloakServer, tmp_path: Path) -> None:
    """A run-time option handed to the build is reported by the real `kc.sh build` in the words the
    check looks for (so the check above would see the mistake it guards against)."""
    env = {**keycloak.build_env, "KC_HTTP_METRICS_HISTOGRAMS_ENABLED": "true"}
    home = tmp_path / "kc"  # not the running server's home: a build rewrites its lib/
    shutil.copytree(keycloak.dist.home, home, symlinks=True)
    result = subprocess.run(kc_command(keycloak.rendered.container("keycloak-build"), home), env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    flagged = [line for line in (result.stdout + result.stderr).splitlines()
               if any(marker in line for marker in BAD_LOG_MARKERS)]
    assert flagged and "kc.http-metrics-histograms-enabled" in flagged[0]


def test_option_table_matches_keycloak_metadata(keycloak: KeycloakServer) -> None:
    """Build options are exactly those `kc.sh build --help-all` lists; run-time ones are listed by
    `start --help-all` and not by build; the removed names are gone."""
    build_help, start_help = help_options(keycloak, "build"), help_options(keycloak, "start")
    version = keycloak.dist.version
    assert {option_name(o) for o in build_options(version)} <= build_help
    runtime = {option_name(o) for o in runtime_options(version)}
    assert runtime <= start_help, runtime - start_help
    assert not runtime & build_help, runtime & build_help
    assert not {option_name(o) for o in REMOVED_OPTIONS if o.startswith("KC_")} & start_help


def test_rendered_containers_split_options_as_keycloak_does(keycloak: KeycloakServer) -> None:
    """Keycloak ignores a `KC_*` variable it does not know without a word: every name must exist."""
    build_help, start_help = help_options(keycloak, "build"), help_options(keycloak, "start")
    rendered = staging_keycloak()
    build_env = {option_name(n) for n in rendered.env("keycloak-build") if n.startswith("KC_")}
    server_env = {option_name(n) for n in rendered.env(kc.APP) if n.startswith("KC_")}
    assert build_env <= build_help, build_env - build_help
    assert server_env <= start_help, server_env - start_help
    assert not server_env & build_help, server_env & build_help


def test_only_the_listed_adaptations_differ_from_the_render(keycloak: KeycloakServer) -> None:
    rendered = staging_keycloak()
    for started, declared in ((keycloak.env, rendered.env(kc.APP)),
                              (keycloak.build_env, rendered.env("keycloak-build"))):
        changed = {k for k in started.keys() | declared.keys() if started.get(k) != declared.get(k)}
        assert changed - BASE_ENV <= set(LOOPBACK_ADAPTATIONS), changed - BASE_ENV - set(LOOPBACK_ADAPTATIONS)
    assert keycloak.process.args[1:] == rendered.container(kc.APP)["args"]


def test_health_and_metrics_only_on_the_management_port(keycloak: KeycloakServer) -> None:
    ready = requests.get(f"{keycloak.management_url}/health/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "UP"
    for path in ("/health/ready", "/metrics"):
        assert requests.get(f"{keycloak.url}{path}", timeout=10).status_code == 404, path


def test_http_histograms_are_exported(keycloak: KeycloakServer) -> None:
    """What the auth dashboard's latency panels query (empty before the run-time option moved)."""
    discovery = f"{keycloak.url}/realms/{keycloak.rendered.realm_name}/.well-known/openid-configuration"
    assert requests.get(discovery, timeout=10).status_code == 200
    metrics = requests.get(f"{keycloak.management_url}/metrics", timeout=10).text
    assert re.search(r'^http_server_requests_seconds_bucket\{.*le="', metrics, re.MULTILINE), \
        "no http_server_requests_seconds_bucket series"


@pytest.mark.parametrize("name", sorted(LOOPBACK_ADAPTATIONS))
def test_each_adaptation_is_used(keycloak: KeycloakServer, name: str) -> None:
    """The list is exact: every adaptation it names is one the harness makes."""
    assert name in keycloak.env
