"""The frontends' nginx `server {}` block, run in a real nginx on 127.0.0.1.

The ConfigMap each stack deploys is checked to be exactly `render_nginx_server_conf(prefix)`, so
serving the function's output (on a free loopback port, from a temporary static root) tests
what the pods run. The main config wrapped around it mirrors the nginx-unprivileged image's
`nginx.conf`: everything writable lives under the test's own temporary folder.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.frontend import render_nginx_server_conf
from tests.conftest import STACKS, one, require_tool

PREFIXES = ("/user", "/admin")
CONFIG_MAPS = {"/user": "user-frontend-nginx-config", "/admin": "admin-frontend-nginx-config"}
MIME_TYPES = Path("/etc/nginx/mime.types")
JS_TYPES = {"application/javascript", "text/javascript", "application/x-javascript"}
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
HTTP_TIMEOUT = 5.0


# ---------------------------------------------------------------------------------------------
# The deployed config is the function's output


@pytest.mark.parametrize("result_stack", STACKS)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_config_map_is_the_rendered_server_block(rendered, result_stack: str, prefix: str) -> None:
    config_map = one(rendered[result_stack], "kubernetes:core/v1:ConfigMap", CONFIG_MAPS[prefix])
    assert config_map["props"]["data"]["default.conf"] == render_nginx_server_conf(prefix)


@pytest.mark.parametrize("bad", ["user", "/user/", "/us er", "", "/"])
def test_bad_prefixes_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="path prefix"):
        render_nginx_server_conf(bad)


# ---------------------------------------------------------------------------------------------
# A real nginx serving the rendered block


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main_conf(work: Path, server_conf: Path) -> str:
    """A main config like the image's: pid, logs and temp paths writable by the test, the server
    block included inside `http {}`."""
    lines = []
    if os.geteuid() == 0:
        # As root the workers would drop to `nobody`, who cannot read pytest's 0700 tmp folders.
        lines.append("user root;")
    lines += [
        "worker_processes 1;",
        f"pid {work / 'nginx.pid'};",
        f"error_log {work / 'error.log'} notice;",
        "events { worker_connections 64; }",
        "http {",
        f"    client_body_temp_path {work / 'client_temp'};",
        f"    proxy_temp_path {work / 'proxy_temp'};",
        f"    fastcgi_temp_path {work / 'fastcgi_temp'};",
        f"    uwsgi_temp_path {work / 'uwsgi_temp'};",
        f"    scgi_temp_path {work / 'scgi_temp'};",
        f"    include {MIME_TYPES};" if MIME_TYPES.exists()
        else "    types { text/html html; text/javascript js; }",
        "    default_type application/octet-stream;",
        f"    access_log {work / 'access.log'};",
        "    sendfile on;",
        "    keepalive_timeout 65;",
        f"    include {server_conf};",
        "}",
    ]
    return "\n".join(lines) + "\n"


def write_main_conf(work: Path, server_block: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    server_conf = work / "default.conf"
    server_conf.write_text(server_block)
    conf = work / "nginx.conf"
    conf.write_text(main_conf(work, server_conf))
    return conf


def nginx_cmd(nginx: str, conf: Path, *extra: str) -> list[str]:
    work = conf.parent
    # -p and -e keep nginx away from its compiled-in prefix and /var/log before it reads the config.
    return [nginx, "-p", f"{work}/", "-e", str(work / "error.log"), "-c", str(conf), *extra]


def nginx_test_config(nginx: str, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nginx_cmd(nginx, conf, "-t", "-q"), capture_output=True, text=True,
                          timeout=10, check=False)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)  # fast shutdown of the master, which stops its workers
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


@dataclass(frozen=True)
class Site:
    prefix: str
    port: int
    index_html: bytes
    app_js: bytes
    work: Path


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def get(site: Site, path: str) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=HTTP_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Host": "frontend.test"})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def wait_until_listening(proc: subprocess.Popen[bytes], port: int, work: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (work / "error.log").read_text() if (work / "error.log").exists() else ""
            pytest.fail(f"nginx exited with {proc.returncode} before listening:\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} within {START_TIMEOUT} s")


@pytest.fixture(scope="module", params=PREFIXES, ids=lambda p: p.strip("/"))
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    nginx = require_tool("nginx")
    prefix: str = request.param
    name = prefix.strip("/")
    base = tmp_path_factory.mktemp(f"nginx-{name}")
    root = base / "html"
    (root / "assets").mkdir(parents=True)
    index_html = f"<!doctype html><title>{name}</title><p>index of the {name} app</p>\n".encode()
    app_js = f"console.log('{name} app bundle');\n".encode()
    (root / "index.html").write_bytes(index_html)
    (root / "assets" / "app.js").write_bytes(app_js)

    port = free_loopback_port()
    work = base / "nginx"
    conf = write_main_conf(work, render_nginx_server_conf(prefix, listen_port=port, root=str(root)))
    checked = nginx_test_config(nginx, conf)
    assert checked.returncode == 0, f"nginx -t rejected the config:\n{checked.stderr}"

    proc = subprocess.Popen(nginx_cmd(nginx, conf, "-g", "daemon off;"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(proc, port, work)
        yield Site(prefix=prefix, port=port, index_html=index_html, app_js=app_js, work=work)
    finally:
        stop(proc)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_deployed_config_passes_nginx_t(tmp_path: Path, prefix: str) -> None:
    """The block exactly as deployed (port 8080, the image's html root) is valid nginx."""
    nginx = require_tool("nginx")
    conf = write_main_conf(tmp_path / "nginx", render_nginx_server_conf(prefix))
    checked = nginx_test_config(nginx, conf)
    assert checked.returncode == 0, checked.stderr


def test_health_endpoint(site: Site) -> None:
    reply = get(site, "/healthz")
    assert reply.status == 200
    assert reply.body.strip() == b"ok"


def test_bare_prefix_redirects_relatively(site: Site) -> None:
    reply = get(site, site.prefix)
    assert reply.status == 301
    assert reply.headers["Location"] == f"{site.prefix}/"


def test_prefix_root_serves_index(site: Site) -> None:
    reply = get(site, f"{site.prefix}/")
    assert reply.status == 200, reply.body
    assert reply.body == site.index_html
    assert reply.headers.get_content_type() == "text/html"
    assert reply.headers["Cache-Control"] == "no-cache", "the entry page must not be cached across deploys"


def test_asset_is_served(site: Site) -> None:
    reply = get(site, f"{site.prefix}/assets/app.js")
    assert reply.status == 200
    assert reply.body == site.app_js
    assert reply.headers.get_content_type() in JS_TYPES


def test_client_route_falls_back_to_index(site: Site) -> None:
    reply = get(site, f"{site.prefix}/some/client/route")
    assert reply.status == 200
    assert reply.body == site.index_html
    assert reply.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("path", ["/assets/missing.js", "/missing.css", "/deep/route/logo.png"])
def test_missing_file_is_404_not_the_app(site: Site, path: str) -> None:
    reply = get(site, f"{site.prefix}{path}")
    assert reply.status == 404
    assert reply.body != site.index_html


def test_client_route_with_a_dot_in_a_directory_still_falls_back(site: Site) -> None:
    reply = get(site, f"{site.prefix}/v1.2/settings")
    assert reply.status == 200
    assert reply.body == site.index_html


@pytest.mark.parametrize("path", ["/", "/other-prefix/", "/index.html", "/assets/app.js"])
def test_paths_outside_the_prefix_are_404(site: Site, path: str) -> None:
    assert get(site, path).status == 404


def test_other_apps_prefix_is_404(site: Site) -> None:
    other = next(p for p in PREFIXES if p != site.prefix)
    assert get(site, f"{other}/").status == 404
    assert get(site, f"{site.prefix}x/").status == 404


# The index fallback sets its own Cache-Control, and nginx then inherits no server-level add_header:
# the client-route case guards against losing the security headers there.
@pytest.mark.parametrize("path", ["{prefix}/", "{prefix}/some/client/route", "{prefix}/assets/app.js"])
def test_security_headers(site: Site, path: str) -> None:
    reply = get(site, path.format(prefix=site.prefix))
    assert reply.status == 200
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


@pytest.mark.parametrize("path", ["/healthz", "{prefix}/", "/", "{prefix}"])
def test_no_version_leak(site: Site, path: str) -> None:
    reply = get(site, path.format(prefix=site.prefix))
    server = reply.headers.get("Server", "")
    assert "/" not in server, f"Server header leaks the version: {server!r}"
    assert b"nginx/" not in reply.body
