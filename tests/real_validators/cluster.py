"""A real etcd and kube-apiserver on loopback, and a small client for what the tests ask of them.

No controllers run: the API server admits or refuses objects (schemas, CRD CEL rules, defaulting,
admission plugins with Pod Security Admission among them) and stores what a test creates for real
(CRDs, namespaces; the istioctl test's Services, stub Pods and Istio objects). The admission test
applies everything else with server-side apply and `dryRun=All`.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.processes import stop

FIELD_MANAGER = "aiwfe-tests"
TOKEN = "aiwfe-test-admin-token"


class ServerError(RuntimeError):
    """etcd or the API server did not start; the message carries the end of its log."""


@dataclass
class Answer:
    """The API server's answer to one request."""

    status: int
    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _warning_text(header: str) -> str:
    # `299 - "text"` (RFC 7234): the text is the quoted part.
    text = header.split(" ", 2)[-1].strip()
    return json.loads(text) if text.startswith('"') else text


def _body(payload: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(payload or b"{}")
    except ValueError:  # /readyz and some errors answer in plain text
        return {"message": payload.decode(errors="replace")}
    return parsed if isinstance(parsed, dict) else {"items": parsed}


class ApiClient:
    """Bearer-token HTTPS to the API server, with resource discovery by apiVersion and kind."""

    def __init__(self, url: str, ca_file: Path) -> None:
        self.url = url
        self.ca_file = ca_file
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for tools that talk to this server (istioctl)."""
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "aiwfe-test",
                  "clusters": [{"name": "aiwfe-test", "cluster": {"server": self.url,
                                                                  "certificate-authority": str(self.ca_file)}}],
                  "users": [{"name": "aiwfe-admin", "user": {"token": TOKEN}}],
                  "contexts": [{"name": "aiwfe-test", "context": {"cluster": "aiwfe-test", "user": "aiwfe-admin"}}]}
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                content_type: str = "application/json") -> Answer:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type, "Accept": "application/json"}
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, context=self._context, timeout=60) as resp:  # noqa: S310
                return Answer(resp.status, _body(resp.read()),
                              [_warning_text(w) for w in resp.headers.get_all("Warning") or []])
        except urllib.error.HTTPError as err:
            return Answer(err.code, _body(err.read()), [_warning_text(w) for w in err.headers.get_all("Warning") or []])

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from the server's discovery."""
        key = (api_version, kind)
        if key not in self._resources:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            answer = self.request("GET", path)
            if not answer.ok:
                raise LookupError(f"the API server serves no {api_version} ({answer.status} {answer.message})")
            for item in answer.body.get("resources", []):
                if "/" not in item["name"]:
                    self._resources[(api_version, item["kind"])] = (item["name"], item["namespaced"])
            if key not in self._resources:
                raise LookupError(f"the API server serves no {kind} in {api_version}")
        return self._resources[key]

    def object_path(self, obj: dict[str, Any]) -> str:
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj.get("metadata", {})
        plural, namespaced = self.resource(api_version, kind)
        prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        scope = f"/namespaces/{meta['namespace']}" if namespaced and meta.get("namespace") else ""
        return f"{prefix}{scope}/{plural}/{urllib.parse.quote(meta['name'])}"

    def apply(self, obj: dict[str, Any], dry_run: bool = True) -> Answer:
        """Server-side apply of one object (`dryRun=All`: admitted and defaulted, not stored)."""
        query = {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("PATCH", f"{self.object_path(obj)}?{urllib.parse.urlencode(query)}", obj,
                            content_type="application/apply-patch+yaml")

    def wait_established(self, crd_name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}")
            conditions = answer.body.get("status", {}).get("conditions", [])
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return
            time.sleep(0.2)
        raise ServerError(f"CRD {crd_name} not established within {timeout:.0f} s")


def _wait_ready(probe: Callable[[], bool], process: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{what} exited {process.returncode}:\n" + "\n".join(log.read_text().splitlines()[-20:]))
        if probe():
            return
        time.sleep(0.25)
    raise ServerError(f"{what} not ready within {timeout:.0f} s:\n" + "\n".join(log.read_text().splitlines()[-20:]))


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:  # noqa: S310
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def local_api_server(etcd: Path, kube_apiserver: Path, workdir: Path,
                     startup_timeout: float = 120) -> Iterator[ApiClient]:
    """etcd and kube-apiserver on loopback in `workdir`; stopped (and their data removed) on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []
    logs = ExitStack()
    try:
        client_port, peer_port = free_port(), free_port()
        etcd_log = workdir / "etcd.log"
        processes.append(subprocess.Popen(
            [str(etcd), "--data-dir", str(workdir / "etcd-data"), "--name", "aiwfe-test",
             "--listen-client-urls", f"http://127.0.0.1:{client_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
             "--initial-cluster", f"aiwfe-test=http://127.0.0.1:{peer_port}",
             "--log-level", "warn", "--quota-backend-bytes", str(512 * 1024 * 1024)],
            stdout=logs.enter_context(etcd_log.open("w")), stderr=subprocess.STDOUT))
        _wait_ready(lambda: _http_ok(f"http://127.0.0.1:{client_port}/health"), processes[0], etcd_log,
                    "etcd", startup_timeout)

        certs = workdir / "certs"
        certs.mkdir()
        key = certs / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(certs / "sa.pub")], check=True,
                       capture_output=True)
        (certs / "tokens.csv").write_text(f'{TOKEN},aiwfe-admin,aiwfe-admin,"system:masters"\n')
        port = free_port()
        api_log = workdir / "kube-apiserver.log"
        processes.append(subprocess.Popen(
            [str(kube_apiserver), f"--etcd-servers=http://127.0.0.1:{client_port}",
             "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
             f"--cert-dir={certs}", f"--token-auth-file={certs / 'tokens.csv'}",
             "--authorization-mode=RBAC", "--service-cluster-ip-range=10.96.0.0/16",
             "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
             f"--service-account-key-file={certs / 'sa.pub'}",
             f"--service-account-signing-key-file={key}",
             # As on GKE: privileged pods are possible, so Pod Security Admission is what refuses them.
             "--allow-privileged=true", "--v=0"],
            stdout=logs.enter_context(api_log.open("w")), stderr=subprocess.STDOUT))
        ca_file = certs / "apiserver.crt"

        def certificate_written() -> bool:  # both files there, and the certificate loads (not half-written)
            try:
                return (certs / "apiserver.key").is_file() and bool(ssl.create_default_context(cafile=str(ca_file)))
            except (OSError, ssl.SSLError):
                return False

        _wait_ready(certificate_written, processes[1], api_log, "kube-apiserver (serving certificate)",
                    startup_timeout)
        client = ApiClient(f"https://127.0.0.1:{port}", ca_file)

        def ready() -> bool:
            try:
                return client.request("GET", "/readyz").ok
            except OSError:
                return False

        _wait_ready(ready, processes[1], api_log, "kube-apiserver", startup_timeout)
        yield client
    finally:
        for process in reversed(processes):
            stop(process, timeout=20)
        logs.close()
        shutil.rmtree(workdir / "etcd-data", ignore_errors=True)
