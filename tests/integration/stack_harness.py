"""The local production topology for integration tests: scripts/stack.sh up (PostgreSQL, Redis,
N workers, nginx in front) in a private state directory, torn down at the end."""
import atexit
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse

from harness import BINARY, SOURCE_DIR, Server

STACK = os.path.join(SOURCE_DIR, "scripts", "stack.sh")
REDIS = os.path.join(SOURCE_DIR, "scripts", "redis_server.sh")


class Endpoint(Server):
    """An already running HTTP endpoint (nginx or one worker) with Server's client helpers."""

    def __init__(self, url):  # noqa: super().__init__ starts a process; not wanted here
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.proc = None


class Stack:
    """`workers` workers behind nginx; `config` is merged into the workers' configuration."""

    def __init__(self, workers=2, config=None):
        self.parent = tempfile.mkdtemp(prefix="pm-agent-stack.")
        os.chmod(self.parent, 0o755)  # PostgreSQL inside runs as the postgres user under root
        self.dir = os.path.join(self.parent, "s")
        atexit.register(self.down)
        env = dict(os.environ, PM_AGENT_BINARY=BINARY,
                   STACK_CONFIG_JSON=json.dumps(config or {}))
        r = subprocess.run([STACK, "up", "--workers", str(workers), "--dir", self.dir],
                           capture_output=True, text=True, env=env, timeout=180)
        if r.returncode != 0:
            self.down()
            raise RuntimeError(f"stack.sh up failed ({r.returncode}):\n{r.stderr}{r.stdout}")
        with open(os.path.join(self.dir, "stack.json")) as f:
            self.info = json.load(f)
        self.nginx = Endpoint(self.info["url"])
        self.workers = [Endpoint(w["url"]) for w in self.info["workers"]]

    def redis(self, action):
        """scripts/redis_server.sh halt|start on the stack's Redis (same port)."""
        subprocess.run([REDIS, action, self.info["redis_dir"]], check=True,
                       capture_output=True, timeout=30)

    def logs(self):
        out = []
        for w in self.info["workers"]:
            with open(w["log"]) as f:
                out.append(f.read()[-3000:])
        return "\n".join(out)

    def down(self):
        if self.parent and os.path.isdir(self.parent):
            subprocess.run([STACK, "down", "--dir", self.dir], capture_output=True, timeout=120)
            shutil.rmtree(self.parent, ignore_errors=True)
        self.parent = None
