"""`--workers N` on PostgreSQL: two worker processes under one supervisor serve one port
(SO_REUSEPORT) and share the database; a worker killed with SIGKILL is restarted while the
port keeps serving; SIGTERM to the supervisor stops everything with exit code 0. Without a
database, `--workers 2` is a start-up error."""
import os
import signal
import subprocess
import time
import unittest

from harness import BINARY
from pg_harness import NO_RATE_LIMIT, PgCluster, pg_server, stats, wait_for

SHUTDOWN_TIMEOUT_S = 5


def pid_of(worker):
    """The pid in a `worker` field ("host:pid")."""
    return int(worker.rsplit(":", 1)[1])


def alive(pid):
    """True while pid runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return False
    return fields[0] != "Z"


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


class WithoutDatabase(unittest.TestCase):
    def test_workers_2_on_the_memory_store_is_exit_2_naming_database_url(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PM_AGENT_") and k != "DATABASE_URL"}
        r = subprocess.run([BINARY, "serve", "--port", "0", "--workers", "2"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("database.url", r.stderr)


class Workers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = PgCluster()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def workers_seen(self, server, until, timeout=30):
        """GET /api/v1/stats on fresh connections (the kernel spreads them over the workers)
        until until(set of worker fields seen) holds; that set."""
        seen = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen.add(stats(server)["worker"])
            if until(seen):
                break
        return seen

    def test_two_workers_share_a_port_a_killed_one_is_restarted_sigterm_stops_all(self):
        db = self.cluster.create_database()
        server = pg_server(db, config={**NO_RATE_LIMIT,
                                       "server": {"shutdown_timeout_s": SHUTDOWN_TIMEOUT_S}},
                           args=("--workers", "2"))
        self.addCleanup(server.stop)
        supervisor = server.proc.pid
        self.assertEqual(stats(server)["store"], "postgres")

        first = self.workers_seen(server, lambda seen: len(seen) >= 2)
        self.assertEqual(len(first), 2, f"two workers answer on port {server.port}: {first}")
        pids = {pid_of(w) for w in first}
        self.assertNotIn(supervisor, pids)
        for pid in pids:
            self.assertEqual(parent_of(pid), supervisor, f"worker {pid} is the supervisor's")

        # The workers share the database: a task submitted through one is read by any.
        ids = {}
        for n in range(40):
            status, _, body = server.request("POST", "/api/v1/tasks",
                                             {"type": "w", "payload": {"n": n}})
            self.assertEqual(status, 202, body)
            ids[body["task_id"]] = n
        for tid, n in ids.items():
            status, _, task = server.request("GET", f"/api/v1/tasks/{tid}")
            self.assertEqual(status, 200, task)
            self.assertEqual(task["payload"], {"n": n})

        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: not alive(victim), 10), "the killed worker is dead")
        # The port keeps serving while the worker is replaced. A connection the kernel had
        # already handed to the dying worker's listener is reset: allow a blip of a few, never
        # a gap.
        resets = 0
        for _ in range(30):
            try:
                status, _, body = server.request("GET", "/health")
            except ConnectionResetError:
                resets += 1
                time.sleep(0.05)
                continue
            self.assertEqual(status, 200, body)
        self.assertLessEqual(resets, 3, "connections refused long after the kill")
        after = self.workers_seen(server, lambda seen: len({pid_of(w) for w in seen} - pids) > 0)
        new = {pid_of(w) for w in after} - pids
        self.assertEqual(len(new), 1, f"a new worker replaces {victim}: seen {after}")
        self.assertNotIn(victim, {pid_of(w) for w in after})
        replacement = new.pop()
        self.assertEqual(parent_of(replacement), supervisor)
        self.assertEqual(server.proc.poll(), None, "the supervisor lives on")
        status, _, task = server.request("GET", f"/api/v1/tasks/{next(iter(ids))}")
        self.assertEqual(status, 200, task)

        server.signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = server.wait(SHUTDOWN_TIMEOUT_S + 15)
        except subprocess.TimeoutExpired:
            self.fail(f"supervisor still running {SHUTDOWN_TIMEOUT_S + 15} s after SIGTERM")
        self.assertEqual(code, 0, "".join(server.log_lines[-20:]))
        self.assertLessEqual(time.monotonic() - started, SHUTDOWN_TIMEOUT_S + 15)
        survivors = pids - {victim} | {replacement}
        self.assertTrue(wait_for(lambda: not any(alive(p) for p in survivors), 10),
                        f"workers {survivors} outlived the supervisor")


if __name__ == "__main__":
    unittest.main()
