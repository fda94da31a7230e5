"""Starts the real pm-agent-server binary on a free port and talks to it as a client would.

Used by every integration test; no test binds a fixed port. The binary comes from
PM_AGENT_BINARY (set by ctest), else build/pm-agent-server.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time

SOURCE_DIR = os.environ.get(
    "PM_AGENT_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BINARY = os.environ.get("PM_AGENT_BINARY", os.path.join(SOURCE_DIR, "build", "pm-agent-server"))

_LISTENING = re.compile(r"event=listening host=\S+ port=(\d+)")


class Server:
    """One server process. `config` is written to a JSON file and passed with --config."""

    def __init__(self, config=None, args=(), env=None, host="127.0.0.1"):
        self.config_path = None
        cmd = [BINARY, "serve", "--host", host, "--port", "0"]
        if config is not None:
            fd, self.config_path = tempfile.mkstemp(suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(config, f)
            cmd += ["--config", self.config_path]
        cmd += list(args)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PM_AGENT_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=full_env, text=True)
        self.log_lines = []
        self.port = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.log_lines.append(line)
                m = _LISTENING.search(line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not ready.wait(20) or self.port is None:
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.log_lines))
        self.host = "127.0.0.1" if host in ("0.0.0.0", "127.0.0.1") else host

    @property
    def base(self):
        return f"http://{self.host}:{self.port}"

    def conn(self, timeout=10):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, token=None, headers=None, timeout=10):
        """One request on a fresh connection -> (status, headers dict, parsed JSON or text)."""
        c = self.conn(timeout)
        try:
            return request_on(c, method, path, body, token, headers)
        finally:
            c.close()

    def raw(self, data, timeout=5):
        """Sends raw bytes, returns everything read until the server closes or timeout."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            return read_all(s)
        finally:
            s.close()

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._pump.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        if self.config_path:
            os.unlink(self.config_path)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def request_on(c, method, path, body=None, token=None, headers=None):
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    c.request(method, path, body=payload, headers=h)
    r = c.getresponse()
    data = r.read()
    ctype = r.getheader("Content-Type", "")
    parsed = data.decode()
    if ctype.startswith("application/json") and data:
        parsed = json.loads(data)
    return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed


def read_all(s):
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse_raw_response(data):
    """(status, headers, body bytes) of the first HTTP response in data."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", len(body)))
    return status, headers, body[:length]


def run_cli(args, env=None, timeout=20):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PM_AGENT_")}
    full_env.update(env or {})
    return subprocess.run([BINARY] + list(args), capture_output=True, text=True, env=full_env,
                          timeout=timeout)
