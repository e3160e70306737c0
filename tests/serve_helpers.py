"""A real ``zerodce serve`` subprocess on 127.0.0.1 and small HTTP clients for it (loopback only)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import conftest

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def require(module: str) -> None:
    """Skip without ``module`` (the serve/test extras), but fail under CI=true, where it must be installed."""
    conftest.require(module, "test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Server:
    """``zerodce serve ARGS`` on a free loopback port, with its own empty TMPDIR (checked for leftovers)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.port = free_port()
        self.tmpdir = tmp / f"tmp-{self.port}"
        self.tmpdir.mkdir(parents=True)
        self.log = tmp / f"server-{self.port}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
               "TMPDIR": str(self.tmpdir), "OMP_NUM_THREADS": "1"}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "zerodce.cli", "serve", "--host", HOST,
                                          "--port", str(self.port), *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"zerodce serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if self.get("/healthz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"zerodce serve did not start:\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float = 120) -> Reply:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def get(self, path: str, **kwargs) -> Reply:
        return self.request("GET", path, **kwargs)

    def post_file(self, data: bytes, filename: str = "dark.png", query: str = "", fields: dict[str, str] | None = None,
                  headers: dict[str, str] | None = None, content_type: str = "application/octet-stream") -> Reply:
        body, ctype = multipart(data, filename, fields or {}, content_type)
        return self.request("POST", f"/api/enhance{query}", body, {"Content-Type": ctype, **(headers or {})})

    def post_raw(self, data: bytes, content_type: str, query: str = "", headers: dict[str, str] | None = None) -> Reply:
        return self.request("POST", f"/api/enhance{query}", data, {"Content-Type": content_type, **(headers or {})})

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def multipart(data: bytes, filename: str, fields: dict[str, str], content_type: str = "application/octet-stream",
              ) -> tuple[bytes, str]:
    """A multipart/form-data body with the file in field ``file`` and text ``fields``; ``(body, content type)``."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class StalledUpload:
    """A POST whose body is sent in two steps, so the request holds its place in the server while stalled."""

    def __init__(self, server: Server, data: bytes, filename: str = "dark.png") -> None:
        body, ctype = multipart(data, filename, {})
        self.rest = body[len(body) // 2:]
        self.sock = socket.create_connection((HOST, server.port), timeout=120)
        head = (f"POST /api/enhance HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        self.sock.sendall(head + body[: len(body) // 2])

    def finish(self) -> Reply:
        self.sock.sendall(self.rest)
        return read_reply(self.sock)


def read_reply(sock: socket.socket) -> Reply:
    """Read an HTTP/1.1 response from ``sock`` until the server closes the connection."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    sock.close()
    return reply


def wait_for(condition, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
