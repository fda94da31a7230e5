"""PostgreSQL store, durability: a 2xx on submit means the task is committed. 1,000 submits
each answered 2xx, kill -9 at once, a new server on the same database has every one of them."""
import unittest

from pg_harness import (NO_RATE_LIMIT, PgCluster, connections, close_all, get_all_tasks,
                        kill_server, parallel, pg_server, stats, wait_for)

THREADS = 8


def setUpModule():
    global cluster
    cluster = PgCluster()


def tearDownModule():
    cluster.stop()


class Durability(unittest.TestCase):
    def test_every_acknowledged_submit_survives_kill_9(self):
        db = cluster.create_database()
        server = pg_server(db, config=NO_RATE_LIMIT)
        self.addCleanup(server.stop)
        self.assertEqual(stats(server)["store"], "postgres")

        conns = connections([server], THREADS)
        try:
            answers = parallel(
                range(1000),
                lambda t, n: conns[t].request("POST", "/api/v1/tasks",
                                              {"type": "durable", "queue": "dur",
                                               "payload": {"n": n}}),
                THREADS)
        finally:
            close_all(conns)
        ids = {}
        for n, (status, _, body) in enumerate(answers):
            self.assertEqual(status, 202, body)
            self.assertEqual(body["status"], "pending", body)
            ids[body["task_id"]] = n
        self.assertEqual(len(ids), 1000, "every submit has its own id")

        kill_server(server)  # right after the last 202: nothing gets to flush or drain

        again = pg_server(db, config=NO_RATE_LIMIT)
        self.addCleanup(again.stop)
        found = get_all_tasks([again], list(ids), THREADS)[0]
        missing = [tid for tid, (status, _) in found.items() if status != 200]
        self.assertEqual(missing, [], f"{len(missing)} acknowledged tasks lost")
        for tid, (_, task) in found.items():
            self.assertEqual(task["id"], tid)
            self.assertEqual(task["status"], "pending", task)
            self.assertEqual(task["payload"], {"n": ids[tid]}, task)
            self.assertEqual(task["queue"], "dur", task)
            self.assertEqual(task["attempts"], 0, task)
        # Stats may be computed a moment late (cached); they must settle on the database's count.
        wait_for(lambda: stats(again)["tasks"]["pending"] == 1000, 10)
        s = stats(again)
        self.assertEqual(s["store"], "postgres")
        self.assertEqual(s["tasks"]["pending"], 1000, s)
        self.assertEqual(s["queues"]["dur"]["pending"], 1000, s)

    def test_batch_and_idempotency_key_survive_kill_9(self):
        db = cluster.create_database()
        server = pg_server(db, config=NO_RATE_LIMIT)
        self.addCleanup(server.stop)
        status, _, body = server.request(
            "POST", "/api/v1/tasks/batch",
            {"tasks": [{"type": "b", "payload": {"i": i}} for i in range(1000)]})
        self.assertEqual(status, 202, body)
        batch_ids = body["task_ids"]
        self.assertEqual(len(set(batch_ids)), 1000)
        status, _, body = server.request("POST", "/api/v1/tasks", {"type": "once"},
                                         headers={"Idempotency-Key": "key-1"})
        self.assertEqual(status, 202, body)
        keyed_id = body["task_id"]

        kill_server(server)

        again = pg_server(db, config=NO_RATE_LIMIT)
        self.addCleanup(again.stop)
        # The key is held by the database: a repeat is the same task, 200 instead of 202.
        status, _, body = again.request("POST", "/api/v1/tasks", {"type": "once"},
                                        headers={"Idempotency-Key": "key-1"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["task_id"], keyed_id)
        found = get_all_tasks([again], batch_ids, THREADS)[0]
        for i, tid in enumerate(batch_ids):
            status, task = found[tid]
            self.assertEqual(status, 200, (tid, task))
            self.assertEqual(task["payload"], {"i": i})
            self.assertEqual(task["status"], "pending")
        wait_for(lambda: stats(again)["tasks"]["pending"] == 1001, 10)
        self.assertEqual(stats(again)["tasks"]["pending"], 1001)


if __name__ == "__main__":
    unittest.main()
