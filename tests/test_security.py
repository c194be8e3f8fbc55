"""The local server's security model (issue 10): Host and Origin checks, credentials in URLs, the files it
serves, strict JSON, and a database that nothing but SQLite (and one server) ever touches.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import socketio
from PIL import Image

from db.root_lock import RootInUse
from server.app import create_app, shutdown
from server.auth import UrlSigner, url_credentials_allowed
from server.guard import split_host
from server_process import ServerProcess

API = "/api/v1"
TOKEN = "a-token-for-the-security-tests"
EVIL = "http://evil.example"


def png_bytes(side: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 200, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def local_app(tmp_path_factory):
    app = create_app({"root": str(tmp_path_factory.mktemp("sec-local")), "device": "cpu", "start_worker": False,
                      "port": 9123, "allowed_hosts": ["studio.lan"], "cors_origins": ["http://trusted.example:3000"]})
    yield app
    shutdown(app)


@pytest.fixture(scope="module")
def remote_app(tmp_path_factory):
    app = create_app({"root": str(tmp_path_factory.mktemp("sec-remote")), "device": "cpu", "start_worker": False,
                      "host": "0.0.0.0", "token": TOKEN})
    yield app
    shutdown(app)


def refused(response, status: int = 403, says: str | None = None) -> bool:
    body = response.json
    return (
        response.status_code == status
        and set(body) == {"error", "message", "detail"}
        and (says is None or says in body["message"])
    )


# --- Host ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "localhost:9123", "127.0.0.1:9123", "[::1]:9123", "127.0.0.2:9123", "LOCALHOST:9123", "localhost.:9123", "studio.lan:9123"])
def test_own_host_names_are_answered(local_app, host):
    assert local_app.test_client().get(f"{API}/health", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:9123", "localhost.evil.example:9123", "127.0.0.1.nip.io:9123", "10.0.0.7:9123", "[::1", "a:b:c", "localhost:99999999", "localhost:x", " ", "x" * 300])
def test_other_host_names_are_refused(local_app, host):
    client = local_app.test_client()
    response = client.get(f"{API}/images", headers={"Host": host})
    assert refused(response, 403, "host"), response.get_data(as_text=True)
    assert refused(client.get("/", headers={"Host": host}))  # the page too: a rebound page gets nothing
    assert refused(client.post(f"{API}/boards", json={"name": "x"}, headers={"Host": host}))


def test_a_server_beyond_loopback_answers_to_ip_addresses_and_its_name(remote_app):
    client = remote_app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for host in ("192.168.1.20:9090", "[fe80::1]:9090", "localhost:9090", os.uname().nodename):
        assert client.get(f"{API}/health", headers={**auth, "Host": host}).status_code == 200, host
    assert refused(client.get(f"{API}/health", headers={**auth, "Host": "evil.example:9090"}))


def test_allowed_hosts_star_turns_the_check_off(tmp_path):
    app = create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False, "allowed_hosts": ["*"]})
    try:
        assert app.test_client().get(f"{API}/health", headers={"Host": "anything.example"}).status_code == 200
    finally:
        shutdown(app)


def test_split_host_is_linear_and_strict():
    assert split_host("LocalHost:80") == ("localhost", 80)
    assert split_host("[::1]:9090") == ("::1", 9090)
    assert split_host("[::1]") == ("::1", None)
    for bad in ("", ":80", "[::1]x", "::1", "h:", "h:1:2", "h:" + "9" * 9000):
        assert split_host(bad) is None, bad
    started = time.perf_counter()
    assert split_host("[" * 200_000) is None and split_host(":" * 200_000) is None
    assert time.perf_counter() - started < 0.5


# --- Origin --------------------------------------------------------------------------------------

BODILESS = ["/queue/cancel-pending", "/queue/clear", "/queue/pause", "/queue/resume", "/queue/items/1/cancel"]


@pytest.mark.parametrize("path", BODILESS)
@pytest.mark.parametrize("headers", [{"Origin": EVIL}, {"Origin": "null"}, {"Origin": "http://localhost:3000"}, {"Sec-Fetch-Site": "cross-site"}],
                         ids=["evil", "null", "other-port", "sec-fetch-site"])
def test_bodiless_state_changes_from_other_origins_are_refused(local_app, path, headers):
    client = local_app.test_client()
    before = client.get(f"{API}/queue/status").json
    response = client.post(API + path, headers=headers)
    assert refused(response, 403, "refused"), response.get_data(as_text=True)
    assert client.get(f"{API}/queue/status").json == before


def test_multipart_uploads_and_other_methods_from_other_origins_are_refused(local_app):
    client = local_app.test_client()
    count = len(client.get(f"{API}/images").json["items"])
    board = client.post(f"{API}/boards", json={"name": "Mine"}).json
    form = {"data": {"file": (io.BytesIO(png_bytes()), "x.png")}, "content_type": "multipart/form-data"}
    assert refused(client.post(f"{API}/images", headers={"Origin": EVIL}, **form))
    assert refused(client.patch(f"{API}/boards/{board['id']}", json={"name": "Theirs"}, headers={"Origin": EVIL}))
    assert refused(client.delete(f"{API}/boards/{board['id']}", headers={"Origin": EVIL}))
    assert refused(client.put(f"{API}/boards/{board['id']}", json={}, headers={"Origin": EVIL}))
    assert len(client.get(f"{API}/images").json["items"]) == count
    assert client.get(f"{API}/boards/{board['id']}").json["name"] == "Mine"


@pytest.mark.parametrize("origin", ["http://localhost:9123", "http://127.0.0.1:9123", "http://[::1]:9123", "http://trusted.example:3000"])
def test_the_apps_own_and_configured_origins_may_change_state(local_app, origin):
    client = local_app.test_client()
    assert client.post(f"{API}/queue/pause", headers={"Origin": origin}).status_code == 200
    assert client.post(f"{API}/queue/resume", headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_same_origin_under_the_name_it_is_reached_by(local_app):
    response = local_app.test_client().post(f"{API}/boards", json={"name": "lan"}, headers={"Host": "studio.lan:9123", "Origin": "http://studio.lan:9123"})
    assert response.status_code == 201


def test_reads_from_other_origins_get_no_cors_grant(local_app):
    response = local_app.test_client().get(f"{API}/images", headers={"Origin": EVIL})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers


# --- credentials in URLs -------------------------------------------------------------------------


def test_a_token_in_the_url_serves_only_image_files(remote_app):
    client = remote_app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    image = client.post(f"{API}/images", headers=auth, data={"file": (io.BytesIO(png_bytes()), "x.png")}, content_type="multipart/form-data").json
    q = {"token": TOKEN}
    assert client.get(f"{API}/images/{image['id']}/file", query_string=q).status_code == 200
    assert client.get(f"{API}/images/{image['id']}/thumbnail", query_string=q).status_code == 200
    for path in (f"/images/{image['id']}", f"/images/{image['id']}/metadata", "/images", "/boards", "/health"):
        response = client.get(API + path, query_string=q)
        assert refused(response, 401, "image files"), path
    for path in ("/queue/pause", "/queue/clear", "/boards"):
        assert refused(client.post(API + path, query_string=q, json={"name": "x"}), 401), path
    assert refused(client.delete(f"{API}/images/{image['id']}", query_string=q), 401)
    assert client.get(f"{API}/images/{image['id']}", headers=auth).status_code == 200  # still there


def test_image_records_carry_signed_urls_that_expire(remote_app):
    client = remote_app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    image = client.post(f"{API}/images", headers=auth, data={"file": (io.BytesIO(png_bytes()), "x.png")}, content_type="multipart/form-data").json
    other = client.post(f"{API}/images", headers=auth, data={"file": (io.BytesIO(png_bytes(16)), "y.png")}, content_type="multipart/form-data").json
    assert "sig=" in image["url"] and "sig=" in image["thumbnail_url"] and TOKEN not in image["url"]
    assert client.get(image["url"]).status_code == 200 and client.get(image["thumbnail_url"]).status_code == 200
    listed = client.get(f"{API}/images", headers=auth).json["items"][0]
    assert listed["url"].split("?")[0] == f"{API}/images/{listed['id']}/file" and client.get(listed["url"]).status_code == 200
    path, query = image["url"].split("?")
    assert refused(client.get(f"{API}/images/{other['id']}/file?{query}"), 401)  # a signature names one file
    assert refused(client.get(f"{API}/images/{image['id']}?{query}"), 401)  # and only the file
    assert refused(client.get(path + "?" + query.replace("sig=", "sig=A")), 401)
    signer = UrlSigner(TOKEN)
    expired = signer.sign(path, now=time.time() - 3 * 3600)
    assert refused(client.get(expired), 401)
    assert signer.verify(path, *[p.split("=")[1] for p in signer.sign(path).split("?")[1].split("&")])
    assert not UrlSigner("another-token-for-this-server").verify(path, *[p.split("=")[1] for p in query.split("&")])


def test_urls_stay_plain_without_a_token(local_app):
    client = local_app.test_client()
    image = client.post(f"{API}/images", data={"file": (io.BytesIO(png_bytes()), "x.png")}, content_type="multipart/form-data").json
    assert image["url"] == f"{API}/images/{image['id']}/file"


def test_url_credentials_allowed_shapes():
    assert url_credentials_allowed("GET", "/api/v1/images/abc/file")
    assert url_credentials_allowed("GET", "/api/v1/images/abc/thumbnail")
    for method, path in (("POST", "/api/v1/images/abc/file"), ("GET", "/api/v1/images/abc"), ("GET", "/api/v1/images//file"),
                         ("GET", "/api/v1/images/abc/file/x"), ("GET", "/api/v1/boards/abc/file"), ("DELETE", "/api/v1/images/abc/file")):
        assert not url_credentials_allowed(method, path), (method, path)


# --- static files --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/index.html", "/app.js", "/styles.css", "/api.js", "/canvas/render.js", "/panels/gallery.js",
                                  "/state/store.js", "/tools/brush.js", "/node_modules/konva/lib/index.js",
                                  "/node_modules/konva/lib/shapes/Rect.js", "/node_modules/socket.io-client/dist/socket.io.esm.min.js"])
def test_the_app_files_are_served(local_app, path):
    assert local_app.test_client().get(path).status_code == 200


@pytest.mark.parametrize("path", ["/package.json", "/package-lock.json", "/README.md", "/tests/fakes.js", "/tests/store.test.js",
                                  "/dev-canvas.html", "/bench/canvas-bench.html", "/node_modules/konva/package.json",
                                  "/node_modules/.package-lock.json", "/node_modules/ws/index.js", "/node_modules/konva/README.md",
                                  "/node_modules/socket.io-client/dist/socket.io.esm.min.js.map", "/invoke_canvas.db", "/.git/config"])
def test_nothing_else_under_web_is_served(local_app, path):
    assert refused(local_app.test_client().get(path), 404)


# --- JSON ----------------------------------------------------------------------------------------


def test_json_responses_never_carry_nan(local_app):
    with pytest.raises(ValueError):
        local_app.json.dumps({"x": math.nan})
    with pytest.raises(ValueError):
        local_app.json.dumps([math.inf])
    assert json.loads(local_app.json.dumps({"x": 1.5})) == {"x": 1.5}


# --- the data root's lock ------------------------------------------------------------------------


def test_one_server_per_data_root(tmp_path):
    app = create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False})
    try:
        with pytest.raises(RootInUse, match=str(os.getpid())):
            create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False})
        assert app.test_client().get(f"{API}/health").status_code == 200  # the first is unharmed
    finally:
        shutdown(app)
    shutdown(create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False}))  # free again


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), "invoke-canvas")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdin=subprocess.DEVNULL)


def test_the_probe_sequence_loses_no_committed_data(tmp_path):
    """The probe: install the server's own database as a model (opening and closing it dropped the server's
    POSIX locks), then `doctor` (which, seeing no locks, checkpointed and deleted the WAL under the server):
    every later write lived only in a deleted WAL and was gone after a restart."""
    server = ServerProcess(tmp_path)
    try:
        assert server.post(f"{API}/boards", json={"name": "before"}).status_code == 201
        for source in ("invoke_canvas.db", "invoke_canvas.db-wal", "invoke_canvas.db-shm"):
            response = server.post(f"{API}/models/install", json={"source": str(tmp_path / source)})
            if response.status_code == 202:  # refused in the background job instead: it must fail
                job = response.json()["job_id"]
                deadline = time.monotonic() + 30
                while (state := server.get(f"{API}/models/install/{job}").json())["status"] == "started":
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                assert state["status"] == "failed", state
            else:
                assert response.status_code == 422, response.text
        checked = _cli("doctor", "--root", str(tmp_path))
        assert "read-only" in checked.stdout, checked.stdout + checked.stderr
        repaired = _cli("doctor", "--root", str(tmp_path), "--repair")
        assert repaired.returncode == 2 and "stop it" in repaired.stderr and len(repaired.stderr.strip().splitlines()) == 1
        second = _cli("--root", str(tmp_path), "--port", "1")  # a second server on the same data folder
        assert second.returncode == 2 and "is using the data folder" in second.stderr, second.stderr
        assert (tmp_path / "invoke_canvas.db-wal").exists()
        assert server.post(f"{API}/boards", json={"name": "after"}).status_code == 201
        image = server.post(f"{API}/images", files={"file": ("x.png", png_bytes(), "image/png")})
        assert image.status_code == 201
    finally:
        server.kill()  # kill -9: what was committed is in the WAL, and must be found there
    server = ServerProcess(tmp_path)
    try:
        names = {node["board"]["name"] for node in server.get(f"{API}/boards").json()}
        assert {"before", "after"} <= names, names
        assert server.get(f"{API}/images/{image.json()['id']}").status_code == 200
    finally:
        server.stop()
    done = _cli("doctor", "--root", str(tmp_path), "--repair")  # no server now: a full run
    assert "read-only" not in done.stdout and done.returncode in (0, 1), done.stdout + done.stderr


def test_socketio_accepts_the_apps_origin_under_every_loopback_name(tmp_path):
    server = ServerProcess(tmp_path)
    try:
        # (websocket-client sends an Origin of its own, so other names are tried over polling, as a browser may)
        websocket = socketio.Client(reconnection=False)
        websocket.connect(server.url, transports=["websocket"], wait_timeout=10)
        assert websocket.connected
        websocket.disconnect()
        for origin in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}", f"http://[::1]:{server.port}"):
            client = socketio.Client(reconnection=False)
            client.connect(server.url, headers={"Origin": origin}, transports=["polling"], wait_timeout=10)
            assert client.connected, origin
            client.disconnect()
        for headers in ({"Origin": EVIL}, {"Host": "evil.example"}):
            client = socketio.Client(reconnection=False)
            with pytest.raises(socketio.exceptions.ConnectionError):
                client.connect(server.url, headers=headers, transports=["polling"], wait_timeout=10)
        rebound = requests.get(server.url + "/", headers={"Host": f"evil.example:{server.port}"}, timeout=10)
        assert rebound.status_code == 403 and rebound.json()["error"] == "forbidden"
    finally:
        server.stop()
