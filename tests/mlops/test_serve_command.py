"""`manage.py serve` in its embedded mode (DEBUG=1, no PostgreSQL/Redis/broker).

Runs the real command in a subprocess on SQLite, logs in over HTTP, opens /ws/jobs/
with the session cookie, starts a job from the Jobs page and reads its progress off
the websocket: the request thread's .delay() must reach the in-process worker, and
the worker thread's progress must reach the server's event loop.
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "serve-test-pass-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DEBUG": "1", "RFM_VAR_DIR": str(tmp_path)}
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "-v0"], ["create_demo_users", "--admin-password", PASSWORD]):
        subprocess.run([*manage, *command], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")  # closed in the finally below
    process = subprocess.Popen([*manage, "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        return self.opener.open(self.base + path, timeout=30).read().decode()

    def post_form(self, path: str, fields: dict[str, str], token_page: str):
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', token_page).group(1)
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Referer": self.base + path})
        return self.opener.open(request, timeout=30)

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name)


class WebSocket:
    """Just enough RFC 6455 to read the server's text frames."""

    def __init__(self, base: str, cookie: str | None) -> None:
        url = urllib.parse.urlparse(base)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /ws/jobs/ HTTP/1.1", f"Host: {url.netloc}", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", f"Origin: {base}",
        ] + ([f"Cookie: {cookie}"] if cookie else [])  # fmt: skip
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = head.split(b"\r\n", 1)[0].decode()

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("websocket closed")
            data += chunk
        return data

    def receive_json(self) -> dict:
        _flags, length = self._exact(2)
        length &= 0x7F
        if length == 126:
            length = struct.unpack(">H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self._exact(8))[0]
        return json.loads(self._exact(length))

    def close(self) -> None:
        self.sock.close()


def test_serve_runs_tasks_in_process_and_streams_their_progress(server):
    assert "403" in WebSocket(server, None).status  # anonymous sockets refused

    browser = Browser(server)
    login_page = browser.get("/accounts/login/")
    browser.post_form("/accounts/login/", {"username": "admin", "password": PASSWORD, "next": "/jobs/"}, login_page)
    socket_ = WebSocket(server, f"sessionid={browser.cookie('sessionid')}")
    assert "101" in socket_.status
    try:
        jobs_page = browser.get("/jobs/")
        response = browser.post_form("/jobs/start/recompute_customer_first_seen/", {}, jobs_page)
        assert response.url.endswith("/jobs/")
        seen = []
        while not seen or seen[-1]["state"] not in ("succeeded", "failed"):
            seen.append(socket_.receive_json())
    finally:
        socket_.close()
    states = [message["state"] for message in seen]
    assert states[0] == "pending" and "running" in states and states[-1] == "succeeded", seen
    assert seen[-1]["progress"] == 100 and seen[-1]["result"] == {"customers": 0, "updated": 0}
    assert "/static/js/jobs.js" in browser.get("/jobs/")
    assert "WebSocket" in browser.get("/static/js/jobs.js")  # static files served in DEBUG
