"""PostgreSQL store, the database going away under load: PostgreSQL is restarted (fast
shutdown, and a crash: immediate shutdown + crash recovery) while submits keep coming. During
the outage every submit is answered 503 `unavailable` in bounded time (nothing hangs) and
/ready is 503; afterwards the server reconnects by itself; every task acknowledged with a
2xx, before, during or after, is there."""
import random
import threading
import time
import unittest

from pg_harness import (NO_RATE_LIMIT, KeepAlive, PgCluster, get_all_tasks, list_all_tasks,
                        pg_server, stats)

SUBMIT_THREADS = 2
DOWN_S = 4          # how long PostgreSQL stays down
ANSWER_BOUND_S = 7  # no request may take longer, outage or not
RESUME_BOUND_S = 10  # after PostgreSQL is back, submits and /ready recover within this


def setUpModule():
    global cluster
    cluster = PgCluster()


def tearDownModule():
    cluster.stop()


class Load:
    """Submit loops on keep-alive connections and a /ready prober, each answer timestamped."""

    def __init__(self, server):
        self.server = server
        self.stop = threading.Event()
        self.submits = []   # (t0, t1, status, body or exception text)
        self.ready = []     # (t0, status, body)
        self.lock = threading.Lock()
        self.counter = iter(range(10 ** 9))
        self.threads = [threading.Thread(target=self._submit_loop, daemon=True)
                        for _ in range(SUBMIT_THREADS)]
        self.threads.append(threading.Thread(target=self._ready_loop, daemon=True))
        for t in self.threads:
            t.start()

    def _submit_loop(self):
        # The socket timeout is well past the bound, so a hang is measured, not cut short.
        conn = KeepAlive(self.server, timeout=ANSWER_BOUND_S * 3)
        while not self.stop.is_set():
            with self.lock:
                n = next(self.counter)
            t0 = time.monotonic()
            try:
                status, _, body = conn.request("POST", "/api/v1/tasks",
                                               {"type": "restart", "payload": {"n": n}})
            except Exception as e:  # noqa: BLE001 - an unanswered request is recorded
                status, body = None, f"{type(e).__name__}: {e}"
                conn.close()
            t1 = time.monotonic()
            with self.lock:
                self.submits.append((t0, t1, status, body, n))
            # Load, yet leave the 2 cores to the server and PostgreSQL too.
            time.sleep(0.02 if status is None or status >= 300 else 0.002)
        conn.close()

    def _ready_loop(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                status, _, body = self.server.request("GET", "/ready", timeout=ANSWER_BOUND_S * 3)
            except Exception as e:  # noqa: BLE001
                status, body = None, f"{type(e).__name__}: {e}"
            with self.lock:
                self.ready.append((t0, status, body))
            time.sleep(0.1)

    def snapshot(self):
        with self.lock:
            return list(self.submits), list(self.ready)

    def first_after(self, t, ok_status, timeout):
        """Waits until a submit started at or after t got ok_status (2xx if None): its t0."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            submits, _ = self.snapshot()
            for t0, _, status, _, _ in submits:
                if t0 >= t and status is not None and 200 <= status < 300:
                    return t0
            time.sleep(0.1)
        return None

    def first_ready_after(self, t, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, ready = self.snapshot()
            for t0, status, _ in ready:
                if t0 >= t and status == 200:
                    return t0
            time.sleep(0.1)
        return None

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(ANSWER_BOUND_S * 4)


class PostgresRestart(unittest.TestCase):
    def outage(self, take_down):
        """Runs the scenario; take_down() stops PostgreSQL, waits DOWN_S, starts it again."""
        db = cluster.create_database()
        server = pg_server(db, config=NO_RATE_LIMIT)
        self.addCleanup(server.stop)
        load = Load(server)
        self.addCleanup(load.finish)

        self.assertIsNotNone(load.first_after(0, None, 15), "no submit succeeded before")
        time.sleep(1.0)
        down_from = time.monotonic()
        take_down()
        up_at = time.monotonic()
        resumed = load.first_after(up_at, None, RESUME_BOUND_S)
        ready_again = load.first_ready_after(up_at, RESUME_BOUND_S)
        time.sleep(1.5)  # some load after recovery too
        load.finish()
        submits, ready = load.snapshot()

        unanswered = [s for s in submits if s[2] is None]
        self.assertEqual(unanswered, [], "every submit is answered")
        slowest = max(submits, key=lambda s: s[1] - s[0])
        self.assertLessEqual(slowest[1] - slowest[0], ANSWER_BOUND_S,
                             f"a submit took {slowest[1] - slowest[0]:.1f} s: {slowest}")
        for t0, t1, status, body, _ in submits:
            if status >= 300:
                self.assertEqual(status, 503, body)
                self.assertIsInstance(body, dict, body)
                self.assertEqual(set(body), {"error"}, body)
                self.assertEqual(body["error"]["code"], "unavailable", body)
                self.assertIsInstance(body["error"]["message"], str, body)
        during = [s for s in submits if down_from <= s[0] and s[1] <= up_at]
        self.assertTrue(any(s[2] == 503 for s in during),
                        f"no 503 while PostgreSQL was down ({len(during)} submits then)")
        ready_during = [r for r in ready if down_from <= r[0] <= up_at]
        unavailable = [r for r in ready_during if r[1] == 503]
        self.assertTrue(unavailable, f"/ready never 503 during the outage: {ready_during[-5:]}")
        for _, status, body in unavailable:
            self.assertEqual(body.get("status"), "unavailable", body)
        self.assertTrue(all(r[1] in (200, 503) for r in ready), [r for r in ready
                                                                 if r[1] not in (200, 503)])
        self.assertIsNotNone(resumed, f"no 2xx submit within {RESUME_BOUND_S} s of the restart")
        self.assertIsNotNone(ready_again, f"/ready not 200 within {RESUME_BOUND_S} s")
        self.assertEqual(server.request("GET", "/ready")[0], 200)

        acked = {body["task_id"]: n for _, _, status, body, n in submits
                 if 200 <= status < 300}
        ok_before = sum(1 for s in submits if s[1] < down_from and 200 <= s[2] < 300)
        ok_after = sum(1 for s in submits if s[0] > up_at and 200 <= s[2] < 300)
        print(f"\n{len(submits)} submits: {len(acked)} acknowledged ({ok_before} before, "
              f"{ok_after} after the outage), {len(during)} during it; slowest "
              f"{slowest[1] - slowest[0]:.2f} s")
        self.assertGreater(ok_before, 0)
        self.assertGreater(ok_after, 0)
        # Every acknowledged task is listed, with its payload; a sample read one by one.
        listed = {t["id"]: t for t in list_all_tasks(server)}
        lost = [tid for tid in acked if tid not in listed]
        self.assertEqual(lost, [], f"{len(lost)} of {len(acked)} acknowledged tasks lost")
        for tid, n in acked.items():
            self.assertEqual(listed[tid]["payload"], {"n": n}, listed[tid])
            self.assertEqual(listed[tid]["status"], "pending", listed[tid])
        sample = random.sample(sorted(acked), min(300, len(acked)))
        for tid, (status, task) in get_all_tasks([server], sample, 4)[0].items():
            self.assertEqual(status, 200, task)
            self.assertEqual(task["payload"], {"n": acked[tid]}, task)
        # Unacknowledged submits may or may not have been committed; nothing else appears.
        self.assertLessEqual(len(listed), len(submits))
        self.assertGreaterEqual(stats(server)["tasks"]["pending"], len(acked))

    def test_fast_restart_under_load(self):
        self.outage(lambda: cluster.restart(DOWN_S))

    def test_crash_and_recovery_under_load(self):
        def crash():
            cluster.kill()
            time.sleep(DOWN_S)
            cluster.start()
        self.outage(crash)


if __name__ == "__main__":
    unittest.main()
