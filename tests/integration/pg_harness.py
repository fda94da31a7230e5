"""PostgreSQL for the integration tests: a private throwaway cluster (scripts/pg_cluster.sh),
fresh databases in it, a server on one of them, and keep-alive HTTP load helpers.

Every PostgreSQL test file starts its own cluster (initdb takes a second or two), so the tests
need nothing from the environment and never skip: without PostgreSQL binaries they fail,
saying why. Python has no PostgreSQL driver here; SQL goes through the `psql` binary.
"""
import atexit
import http.client
import itertools
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse

from harness import SOURCE_DIR, Server, request_on

PG_CLUSTER = os.path.join(SOURCE_DIR, "scripts", "pg_cluster.sh")

# Submit rate limits out of the way: these tests measure the store, not the limiter.
NO_RATE_LIMIT = {"rate_limit": {"submit_per_s": 1000000, "submit_burst": 1000000,
                                "agent_per_s": 1000000, "agent_burst": 1000000}}


def _run_cluster_script(*args, timeout=120):
    r = subprocess.run([PG_CLUSTER, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"pg_cluster.sh {' '.join(args)} failed ({r.returncode}):\n"
                           f"{r.stderr}{r.stdout}")
    return r.stdout.strip()


class PgCluster:
    """A private PostgreSQL cluster in a temporary directory, removed by stop() (and at exit
    of the interpreter if a test forgot)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pm-agent-pg.")
        atexit.register(self.stop)
        try:
            self.url = _run_cluster_script("start", self.dir)
        except Exception:
            self.stop()
            raise
        parsed = urllib.parse.urlsplit(self.url)
        self.host, self.port, self.user = parsed.hostname, parsed.port, parsed.username

    def create_database(self, prefix="pmtest"):
        """A new empty database in this cluster; its libpq URL."""
        return create_database(self.url, prefix)

    def url_of(self, database):
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def psql(self, sql, database="postgres", timeout=60):
        """Runs SQL with psql; stdout (unaligned, tuples only)."""
        return psql(self.url_of(database), sql, timeout)

    def restart(self, down_s=0):
        """Fast shutdown, `down_s` seconds down, start on the same port (data kept)."""
        _run_cluster_script("restart", self.dir, str(down_s))

    def kill(self):
        """Immediate shutdown (a crash): `start()` brings it back on the same port."""
        _run_cluster_script("kill", self.dir)

    def start(self):
        _run_cluster_script("start", self.dir)

    def stop(self):
        if self.dir and os.path.isdir(self.dir):
            try:
                _run_cluster_script("stop", self.dir)
            finally:
                if os.path.isdir(self.dir):
                    shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


_database_names = itertools.count(1)


def create_database(cluster_url, prefix="pmtest"):
    """A new empty database in the cluster of `cluster_url` (e.g. PM_AGENT_TEST_DATABASE_URL,
    the cluster scripts/test.sh starts); the new database's URL."""
    name = f"{prefix}_{os.getpid()}_{next(_database_names)}_{int(time.time() * 1000) % 10**8}"
    psql(cluster_url, f'CREATE DATABASE "{name}"')
    parts = urllib.parse.urlsplit(cluster_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def psql(url, sql, timeout=60):
    """Runs SQL against a libpq URL with the psql binary; stdout (unaligned, tuples only)."""
    exe = shutil.which("psql") or "/usr/bin/psql"
    r = subprocess.run([exe, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url,
                        "-c", sql], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed: {r.stderr}")
    return r.stdout


def pg_server(database_url, config=None, args=(), env=None):
    """A server on `database_url`, applying the schema at start-up (`serve --migrate`)."""
    full_env = {"DATABASE_URL": database_url}
    full_env.update(env or {})
    return Server(config=config, args=("--migrate", *args), env=full_env)


def kill_server(server):
    """kill -9 (no drain, nothing flushed) and reap; server.stop() (its cleanup) still closes
    its pipes and removes its config file."""
    server.proc.kill()
    server.proc.wait(30)


class KeepAlive:
    """One keep-alive HTTP connection for one thread; reconnects (on the next request) only
    after the server closed it in an orderly way, as http.client does."""

    def __init__(self, server, timeout=30):
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)

    def request(self, method, path, body=None, token=None, headers=None):
        return request_on(self.conn, method, path, body, token, headers)

    def close(self):
        self.conn.close()


def parallel(items, worker, threads=8):
    """Runs worker(connection_index, item) over items on `threads` threads; results in order.
    The first exception is re-raised after every thread ended."""
    items = list(items)
    results = [None] * len(items)
    errors = []
    lock = threading.Lock()
    next_index = itertools.count()

    def loop(t):
        while True:
            with lock:
                if errors:
                    return
                i = next(next_index)
            if i >= len(items):
                return
            try:
                results[i] = worker(t, items[i])
            except BaseException as e:  # noqa: BLE001 - reported to the caller
                with lock:
                    errors.append(e)
                return

    ts = [threading.Thread(target=loop, args=(t,), daemon=True) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return results


def connections(servers, threads):
    """threads keep-alive connections, spread round-robin over servers, closed by close_all."""
    return [KeepAlive(servers[i % len(servers)]) for i in range(threads)]


def close_all(conns):
    for c in conns:
        c.close()


def get_all_tasks(servers, ids, threads=8):
    """GET /api/v1/tasks/{id} for every id on every server (keep-alive, threads);
    {server index: {id: (status, body)}}."""
    out = {}
    for si, server in enumerate(servers):
        conns = connections([server], threads)
        try:
            answers = parallel(ids, lambda t, tid: conns[t].request("GET", f"/api/v1/tasks/{tid}"),
                               threads)
        finally:
            close_all(conns)
        out[si] = {tid: (a[0], a[2]) for tid, a in zip(ids, answers)}
    return out


def list_all_tasks(server, query=""):
    """Every task GET /api/v1/tasks lists (newest first), following next_cursor; query is
    extra filters such as "status=pending"."""
    tasks, cursor = [], None
    while True:
        params = ["limit=1000"] + ([query] if query else [])
        if cursor:
            params.append("cursor=" + urllib.parse.quote(cursor, safe=""))
        status, _, body = server.request("GET", "/api/v1/tasks?" + "&".join(params), timeout=30)
        if status != 200:
            raise AssertionError(f"list tasks: {status} {body}")
        tasks.extend(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            return tasks


def stats(server):
    status, _, body = server.request("GET", "/api/v1/stats")
    if status != 200:
        raise AssertionError(f"stats: {status} {body}")
    return body


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
