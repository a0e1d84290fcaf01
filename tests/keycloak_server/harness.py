"""A real Keycloak, started from what the staging stack renders, on loopback.

The distribution is the one `make toolchain` fetched from Maven Central (the release the stacks pin).
`kc.sh build` gets exactly the rendered init container's command and environment, and the server
exactly the rendered container's command, arguments and environment, with Secret references
resolved from the Secrets the program renders. Only what loopback needs differs, and every such
difference is listed in LOOPBACK_ADAPTATIONS; a test checks nothing else differs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from requests.adapters import HTTPAdapter

from components import keycloak as kc
from components.keycloak_realm import IMPORT_DIR
from tests.processes import stop
from tools import render, toolchain

STACK = "staging"

# Environment variables set or changed for loopback, and why; everything else is as rendered.
LOOPBACK_ADAPTATIONS: dict[str, str] = {
    "KC_HTTP_HOST": "listen on 127.0.0.1 only (in the pod Keycloak listens on the pod's address)",
    "KC_HTTP_PORT": "a free loopback port (the pod has 8080 to itself)",
    "KC_HTTP_MANAGEMENT_PORT": "a free loopback port (the pod has 9000 to itself)",
    "KC_DB_URL": "the loopback PostgreSQL started from the rendered config (the Service name does not "
                 "resolve here)",
    "JAVA_HOME": "the machine's JDK of the major versions.toml names (the image carries its own)",
    "KC_CACHE_EMBEDDED_NETWORK_BIND_ADDRESS": "JGroups on 127.0.0.1 (in the pod: the pod's address)",
}
# The same for the realm reconcile Job's script, run here with bash as the Job runs it in the image.
RECONCILE_ADAPTATIONS: dict[str, str] = {
    "KEYCLOAK_URL": "the loopback server (in the cluster: the Keycloak Service)",
    "RECONCILE_DIR": "a temporary folder holding the rendered ConfigMap's files (the Job mounts them)",
    "KCADM": "kcadm.sh of the test's distribution (the image has it at /opt/keycloak/bin)",
    "HOME": "a temporary folder",
    "JAVA_HOME": "the machine's JDK (the image carries its own)",
}
# Not environment: the distribution is copied to a temporary home, as the init container copies the
# image's into an emptyDir, and the rendered home path is replaced by it in commands and mounts.

# Server log lines that mean an option was not applied as written.
BAD_LOG_MARKERS = (
    "will be ignored during build time",
    "will be ignored during run time",
    "values that differ from what is persisted",
    "the new values will NOT be used",
    "Unknown option",
    "unknown option",
    "are not recognized",
    "DEPRECATED",
)


def require_keycloak() -> toolchain.KeycloakDist:
    """The distribution and its JDK; in CI their absence fails the test, never skips it."""
    dist = toolchain.keycloak_dist()
    problem = None
    if dist.java_home is None:
        problem = f"no JDK {toolchain.versions()['keycloak']['java']} under {toolchain.JVM_ROOT}"
    elif not dist.complete():
        problem = f"no Keycloak {dist.version} distribution in {dist.home} (run `make toolchain`)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{problem}; CI requires it")
        pytest.skip(problem)
    return dist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class RenderedKeycloak:
    """The objects of one stack's Keycloak that the server is started from."""

    stack: str
    deployment: dict[str, Any]
    realm_files: dict[str, str]
    secrets: dict[str, dict[str, str]]
    request_authentications: list[dict[str, Any]]
    virtual_service: dict[str, Any]
    reconcile_job: dict[str, Any]
    reconcile_files: dict[str, str]

    @property
    def reconcile_container(self) -> dict[str, Any]:
        (container,) = self.reconcile_job["spec"]["template"]["spec"]["containers"]
        return container

    def container(self, name: str) -> dict[str, Any]:
        pod = self.deployment["spec"]["template"]["spec"]
        return next(c for c in [*pod.get("initContainers", []), *pod["containers"]] if c["name"] == name)

    def env(self, container: str) -> dict[str, str]:
        """The container's environment, Secret references resolved from the rendered Secrets."""
        return self.resolve_env(self.container(container))

    def resolve_env(self, container: dict[str, Any]) -> dict[str, str]:
        resolved: dict[str, str] = {}
        for item in container.get("env", []):
            if "value" in item:
                resolved[item["name"]] = item["value"]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                resolved[item["name"]] = self.secrets[ref["name"]][ref["key"]]
        return resolved

    @property
    def public_url(self) -> str:
        return self.env(kc.APP)["KC_HOSTNAME"]

    @property
    def realm(self) -> dict[str, Any]:
        """The realm representation the import reads (placeholders unresolved)."""
        (text,) = self.realm_files.values()
        return json.loads(text)

    @property
    def realm_name(self) -> str:
        return self.realm["realm"]


def rendered_keycloak(stack: str = STACK, config: render.StackConfig | None = None) -> RenderedKeycloak:
    """Run the program offline for `stack` (or the given config) and pick Keycloak's objects."""
    config = config or render.load_stack_config(stack)
    registrations = render.run_program(render.platform_program, config)
    props = {r.name: render.reveal_secrets(r.props) for r in registrations if r.custom}
    kinds = {r.name: r.type for r in registrations}
    secrets = {p["metadata"]["name"]: p.get("stringData", {}) for name, p in props.items()
               if kinds[name] == "kubernetes:core/v1:Secret" and p["metadata"].get("namespace") == "keycloak"}
    def config_map(object_name: str) -> dict[str, Any]:
        return next(p for name, p in props.items() if kinds[name] == "kubernetes:core/v1:ConfigMap"
                    and p["metadata"]["name"] == object_name)

    realm_map = config_map(kc.REALM_CONFIG_MAP)
    return RenderedKeycloak(
        stack=config.stack,
        deployment=props["keycloak-deployment"],
        realm_files=dict(realm_map["data"]),
        secrets=secrets,
        request_authentications=[p for name, p in props.items()
                                 if kinds[name].endswith(":RequestAuthentication")],
        reconcile_job=next(p for name, p in props.items() if kinds[name] == "kubernetes:batch/v1:Job"
                           and p["metadata"]["name"] == kc.RECONCILE),
        reconcile_files=dict(config_map(kc.RECONCILE)["data"]),
        virtual_service=next(p for name, p in props.items() if kinds[name].endswith(":VirtualService")
                             and p["metadata"]["name"] == "keycloak"),
    )


@cache
def staging_keycloak() -> RenderedKeycloak:
    return rendered_keycloak(STACK)


def kc_command(container: dict[str, Any], home: Path) -> list[str]:
    """The container's kc.sh invocation with the rendered home replaced by the test's."""
    command = [*container.get("command", []), *container.get("args", [])]
    if command[:2] == ["/bin/bash", "-ec"]:  # the build init container: `cp ... && exec <kc.sh build>`
        command = command[2].split("&& exec ", 1)[1].split()
    return [part.replace(kc.HOME, str(home)) for part in command]


@dataclass
class KeycloakServer:
    """A running Keycloak: its loopback URLs, its public URL, its home and its log."""

    dist: toolchain.KeycloakDist
    rendered: RenderedKeycloak
    home: Path
    url: str
    management_url: str
    log_path: Path
    build_log: str
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(repr=False)
    build_env: dict[str, str] = field(repr=False)
    database_port: int = 0

    @property
    def public_url(self) -> str:
        return self.rendered.public_url

    def log_messages(self) -> list[str]:
        """The server's log messages (it logs JSON lines, as rendered); other lines verbatim."""
        messages = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                messages.append(line)
                continue
            messages.append(f"{record.get('level', '')} {record.get('loggerName', '')}: {record.get('message', '')}")
        return messages

    def client(self) -> requests.Session:
        """An HTTP client that reaches the public URL at the loopback server, as the load balancer and
        gateway would (cookies keep their `Secure` scope: the client still sees https)."""
        session = requests.Session()
        session.mount(self.public_url.rstrip("/") + "/", LoopbackAdapter(self.public_url, self.url))
        return session

    def reconcile(self, rendered: RenderedKeycloak | None = None,
                  secrets: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the rendered reconcile Job's script and files against this server (the render of
        `rendered`, default the server's own), with `secrets` overriding Secret-backed variables."""
        rendered = rendered or self.rendered
        folder = Path(tempfile.mkdtemp(prefix="aiwfe-reconcile-"))
        try:
            for name, text in rendered.reconcile_files.items():
                (folder / name).write_text(text)
            container = rendered.reconcile_container
            env = {**rendered.resolve_env(container), **(secrets or {}),
                   "KEYCLOAK_URL": self.url, "RECONCILE_DIR": str(folder),
                   "KCADM": str(self.home / "bin" / "kcadm.sh"), "HOME": str(folder),
                   "JAVA_HOME": str(self.dist.java_home), "PATH": f"{self.dist.java_home}/bin:/usr/bin:/bin"}
            command = [part.replace(kc.RECONCILE_DIR, str(folder)) for part in container["command"]]
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def kc_env(self) -> dict[str, str]:
        """The environment kcadm.sh and kc.sh need here (the JDK)."""
        return {**os.environ, "JAVA_HOME": str(self.dist.java_home),
                "PATH": f"{self.dist.java_home}/bin:{os.environ['PATH']}"}


class LoopbackAdapter(HTTPAdapter):
    """Sends requests for the public URL to the loopback server instead (a one-host DNS override)."""

    def __init__(self, public_url: str, local_url: str) -> None:
        super().__init__()
        self.public = urlsplit(public_url)
        self.local = urlsplit(local_url)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        original = request.url or ""
        parts = urlsplit(original)
        local = request.copy()
        local.url = urlunsplit((self.local.scheme, self.local.netloc, parts.path, parts.query, ""))
        response = super().send(local, *args, **kwargs)
        response.url = original
        response.request = request
        return response


def _wait(check: Callable[[], bool], timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Keycloak exited with {process.returncode}:\n" + log.read_text(errors="replace")[-4000:])
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    pytest.fail(f"Keycloak was not ready in {timeout:.0f} s:\n" + log.read_text(errors="replace")[-4000:])


@contextmanager
def running_keycloak(dist: toolchain.KeycloakDist, rendered: RenderedKeycloak, database_port: int,
                     realm_files: Mapping[str, str] | None = None) -> Iterator[KeycloakServer]:
    """Build and start Keycloak from the rendered objects; stop it and remove its home after."""
    root = Path(tempfile.mkdtemp(prefix="aiwfe-keycloak-"))
    home = root / "kc"
    try:
        shutil.copytree(dist.home, home, symlinks=True)
        java = {"JAVA_HOME": str(dist.java_home)}
        base = {"PATH": f"{dist.java_home}/bin:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8"}

        build_env = {**base, **rendered.env("keycloak-build"), **java}
        build = subprocess.run(kc_command(rendered.container("keycloak-build"), home), env=build_env,
                               capture_output=True, text=True, timeout=600)
        assert build.returncode == 0, build.stdout + build.stderr

        import_dir = home / IMPORT_DIR
        import_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (realm_files or rendered.realm_files).items():
            (import_dir / name).write_text(text)

        http_port, management_port = free_port(), free_port()
        server_env = {
            **base, **rendered.env(kc.APP), **java,
            "KC_HTTP_HOST": "127.0.0.1",
            "KC_HTTP_PORT": str(http_port),
            "KC_HTTP_MANAGEMENT_PORT": str(management_port),
            "KC_DB_URL": f"jdbc:postgresql://127.0.0.1:{database_port}/{kc.DATABASE}",
            "KC_CACHE_EMBEDDED_NETWORK_BIND_ADDRESS": "127.0.0.1",
        }
        log_path = root / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(kc_command(rendered.container(kc.APP), home), env=server_env,
                                       stdout=log, stderr=subprocess.STDOUT, cwd=root)
        server = KeycloakServer(dist=dist, rendered=rendered, home=home, url=f"http://127.0.0.1:{http_port}",
                                management_url=f"http://127.0.0.1:{management_port}", log_path=log_path,
                                build_log=build.stdout + build.stderr, process=process, env=server_env,
                                build_env=build_env, database_port=database_port)
        try:
            _wait(lambda: requests.get(f"{server.management_url}/health/ready", timeout=5).status_code == 200,
                  300, process, log_path)
            yield server
        finally:
            stop(process, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
