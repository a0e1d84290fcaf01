"""The frontends' nginx configuration, run by a real nginx the way the pods run it.

The ConfigMap each stack deploys is checked to be exactly the program's main config and server
block. The tests then run that main config, unchanged, with the pod's command, as the pod's user
(uid 10101), on a read-only root filesystem with a tmpfs on /tmp (the pod's emptyDir): a mount
namespace the test makes (`unshare --mount`, `mount -o remount,ro`, `setpriv`). The ConfigMap's
files are bind-mounted where the pod mounts them and a test site over the image's html root. The
one difference from the pod: the server block listens on a free loopback port instead of 8080.
nginx's stdout and stderr are files the pod's user owns, as a container runtime's log streams are
(the main config logs to /dev/stdout and stderr).
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.frontend import (
    CONF_DIR,
    FRONTEND_GID,
    FRONTEND_UID,
    MAIN_CONF_KEY,
    NGINX_COMMAND,
    STATIC_ROOT,
    WRITABLE_DIR,
    render_nginx_main_conf,
    render_nginx_server_conf,
)
from tests import processes
from tests.conftest import STACKS, one, require_tool

PREFIXES = ("/user", "/admin")
CONFIG_MAPS = {"/user": "user-frontend-nginx-config", "/admin": "admin-frontend-nginx-config"}
JS_TYPES = {"application/javascript", "text/javascript", "application/x-javascript"}
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
HTTP_TIMEOUT = 5.0

# The pod, as a mount namespace: the ConfigMap and the site where the pod has them (read-only), the
# root read-only, a fresh tmpfs on /tmp, then the command as the pod's user.
SANDBOX = f"""set -e
mount --make-rprivate /
mount --bind "$1" {CONF_DIR}
mount --bind "$2" {STATIC_ROOT}
mount -o remount,bind,ro {CONF_DIR}
mount -o remount,bind,ro {STATIC_ROOT}
mount -o remount,bind,ro /
mount -t tmpfs -o mode=1777,size=16m tmpfs {WRITABLE_DIR}
shift 2
exec setpriv --reuid={FRONTEND_UID} --regid={FRONTEND_GID} --clear-groups --no-new-privs "$@"
"""


def require_sandbox() -> None:
    """Mount namespaces need root, `unshare` and `setpriv`, and the nginx package's folders to mount
    over; in CI their absence fails the test, elsewhere it skips."""
    for tool in ("nginx", "unshare", "setpriv"):
        require_tool(tool)
    missing = [d for d in (CONF_DIR, STATIC_ROOT, "/etc/nginx/mime.types") if not os.path.exists(d)]
    problem = "the read-only sandbox needs root" if os.geteuid() != 0 else \
        (f"missing {missing} (apt-get install nginx)" if missing else None)
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)


def sandboxed(conf_dir: Path, html_dir: Path, command: list[str]) -> list[str]:
    return ["unshare", "--mount", "sh", "-c", SANDBOX, "sandbox", str(conf_dir), str(html_dir), *command]


def world_readable_dir() -> Path:
    """Outside pytest's 0700 folders: uid 10101 must read the config and the site."""
    folder = Path(tempfile.mkdtemp(prefix="aiwfe-nginx-"))
    folder.chmod(0o755)
    return folder


def write_config(conf_dir: Path, server_block: str) -> None:
    conf_dir.mkdir(mode=0o755)
    (conf_dir / MAIN_CONF_KEY).write_text(render_nginx_main_conf())
    (conf_dir / "default.conf").write_text(server_block)


# ---------------------------------------------------------------------------------------------
# The deployed config is the function's output


@pytest.mark.parametrize("result_stack", STACKS)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_config_map_is_the_rendered_server_block(rendered, result_stack: str, prefix: str) -> None:
    config_map = one(rendered[result_stack], "kubernetes:core/v1:ConfigMap", CONFIG_MAPS[prefix])
    assert config_map["props"]["data"] == {MAIN_CONF_KEY: render_nginx_main_conf(),
                                           "default.conf": render_nginx_server_conf(prefix)}


@pytest.mark.parametrize("result_stack", STACKS)
def test_pods_run_the_rendered_main_config(rendered, result_stack: str) -> None:
    """The pod runs the program's main config as uid 10101 on a read-only root, the ConfigMap mounted
    where the main config includes the server block from."""
    for deployment in ("user-frontend-deployment", "admin-frontend-deployment"):
        spec = one(rendered[result_stack], "kubernetes:apps/v1:Deployment", deployment)["props"]["spec"]
        pod = spec["template"]["spec"]
        [container] = pod["containers"]
        assert container["command"] == list(NGINX_COMMAND)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsUser"] == FRONTEND_UID
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts[CONF_DIR]["readOnly"] is True and WRITABLE_DIR in mounts


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


def stop(proc: subprocess.Popen[bytes]) -> None:
    # SIGTERM is nginx's fast shutdown of the master, which stops its workers.
    processes.stop(proc, timeout=STOP_TIMEOUT)


@dataclass(frozen=True)
class Site:
    prefix: str
    port: int
    index_html: bytes
    app_js: bytes
    work: Path
    pid: int


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


def wait_until_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited with {proc.returncode} before listening:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} within {START_TIMEOUT} s")


@pytest.fixture(scope="module", params=PREFIXES, ids=lambda p: p.strip("/"))
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    require_sandbox()
    prefix: str = request.param
    name = prefix.strip("/")
    base = world_readable_dir()
    root = base / "html"
    (root / "assets").mkdir(parents=True)
    for folder in (root, root / "assets"):
        folder.chmod(0o755)
    index_html = f"<!doctype html><title>{name}</title><p>index of the {name} app</p>\n".encode()
    app_js = f"console.log('{name} app bundle');\n".encode()
    (root / "index.html").write_bytes(index_html)
    (root / "assets" / "app.js").write_bytes(app_js)

    port = free_loopback_port()
    write_config(base / "conf", render_nginx_server_conf(prefix, listen_port=port))
    checked = base / "check.log"
    checked.touch()
    os.chown(checked, FRONTEND_UID, FRONTEND_GID)
    with checked.open("w") as check_out:
        result = subprocess.run(sandboxed(base / "conf", root, [*NGINX_COMMAND, "-t"]), stdout=check_out,
                                stderr=subprocess.STDOUT, timeout=30)
    assert result.returncode == 0, f"nginx -t rejected the config:\n{checked.read_text()}"

    log = base / "nginx.log"
    for stream in (log, base / "access.log"):
        # Like the container runtime's log streams, the pod's user may reopen them (/dev/stdout).
        stream.touch()
        os.chown(stream, FRONTEND_UID, FRONTEND_GID)
    with log.open("wb") as err, (base / "access.log").open("wb") as out:
        proc = subprocess.Popen(sandboxed(base / "conf", root, list(NGINX_COMMAND)),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    try:
        wait_until_listening(proc, port, log)
        yield Site(prefix=prefix, port=port, index_html=index_html, app_js=app_js, work=base, pid=proc.pid)
    finally:
        stop(proc)
        shutil.rmtree(base, ignore_errors=True)


def uids(pid: int) -> set[int]:
    """Real and effective uids of a process and its children (the workers)."""
    found = set()
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [pid, *map(int, children)]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                found |= set(map(int, line.split()[1:3]))
    return found


def test_runs_as_the_pod_user_writing_only_to_tmp(site: Site) -> None:
    assert uids(site.pid) == {FRONTEND_UID}
    # Its pid file is on the sandbox's /tmp, as the rendered main config says.
    assert (Path(f"/proc/{site.pid}/root") / WRITABLE_DIR.lstrip("/") / "nginx.pid").read_text().strip() \
        == str(site.pid)
    assert "emerg" not in (site.work / "nginx.log").read_text()


def test_the_sandbox_refuses_writes_outside_tmp(tmp_path: Path) -> None:
    """The harness can fail: nginx's packaged config (pid and logs under /run and /var/log, port 80,
    a `user` directive) does not start as uid 10101 on the read-only root."""
    require_sandbox()
    base = world_readable_dir()
    try:
        write_config(base / "conf", render_nginx_server_conf("/user", listen_port=free_loopback_port()))
        (base / "html").mkdir(mode=0o755)
        result = subprocess.run(sandboxed(base / "conf", base / "html", ["nginx", "-g", "daemon off;"]),
                                capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr, result.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


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
