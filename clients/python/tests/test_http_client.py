"""HTTPClient against the real server: submissions, listings, error mapping, auth, limits and
the keep-alive pool (plus a scripted socket server for the resend policy)."""
import socket
import threading
import time
import unittest
import uuid

import support
from pm_agent_client import (BadRequest, Conflict, Forbidden, HTTPClient, NotFound, QueueFull,
                             RateLimited, TransportError, Unauthorized)


class SubmitterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = support.fast_server()
        cls.client = HTTPClient(cls.server.base, timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def test_submit_then_get_returns_the_fields_sent(self):
        task_id = self.client.submit("summarize", {"text": "hi"}, queue="nobody", priority=5,
                                     max_attempts=2)
        task = self.client.get(task_id)
        self.assertEqual((task["id"], task["type"], task["payload"], task["priority"],
                          task["max_attempts"], task["status"]),
                         (task_id, "summarize", {"text": "hi"}, 5, 2, "pending"))

    def test_unknown_field_is_bad_request_naming_it(self):
        with self.assertRaises(BadRequest) as caught:
            self.client.submit("x", priorty=1)
        self.assertEqual((caught.exception.status, caught.exception.code), (400, "bad_request"))
        self.assertIn("priorty", caught.exception.message)

    def test_batch_error_names_index_and_field_and_creates_nothing(self):
        kind = f"batch-{uuid.uuid4().hex}"
        with self.assertRaises(BadRequest) as caught:
            self.client.submit_batch([{"type": kind}, {"type": kind, "priority": "high"}])
        self.assertIn("tasks[1].priority", caught.exception.message)
        self.assertEqual(list(self.client.list_tasks(type=kind)), [])
        ids = self.client.submit_batch([{"type": kind, "queue": "nobody"}] * 3)
        self.assertEqual(len(set(ids)), 3)

    def test_unknown_task_is_not_found(self):
        with self.assertRaises(NotFound) as caught:
            self.client.get("t_doesnotexist")
        self.assertEqual(caught.exception.status, 404)

    def test_cancel_then_cancel_again_is_conflict(self):
        task_id = self.client.submit("x", queue="nobody")
        self.assertEqual(self.client.cancel(task_id)["status"], "cancelled")
        with self.assertRaises(Conflict) as caught:
            self.client.cancel(task_id)
        self.assertEqual((caught.exception.status, caught.exception.code), (409, "conflict"))

    def test_idempotent_submit_returns_the_first_id(self):
        key = uuid.uuid4().hex
        first = self.client.submit("x", {"n": 1}, idempotency_key=key, queue="nobody")
        again = self.client.submit("x", {"n": 1}, idempotency_key=key, queue="nobody")
        self.assertEqual(first, again)
        with self.assertRaises(Conflict):
            self.client.submit("x", {"n": 2}, idempotency_key=key, queue="nobody")
        self.assertEqual(self.client.get(first)["idempotency_key"], key)

    def test_list_tasks_follows_cursors_newest_first(self):
        kind = f"page-{uuid.uuid4().hex}"
        ids = [self.client.submit(kind, queue="nobody") for _ in range(5)]
        listed = [t["id"] for t in self.client.list_tasks(type=kind, page_size=2)]
        self.assertEqual(listed, ids[::-1])

    def test_wait_times_out_on_a_task_nobody_runs(self):
        task_id = self.client.submit("x", queue="nobody")
        started = time.monotonic()
        with self.assertRaises(TimeoutError):
            self.client.wait(task_id, timeout=0.4, poll=0.1)
        self.assertLess(time.monotonic() - started, 2)

    def test_wait_returns_a_cancelled_task(self):
        task_id = self.client.submit("x", queue="nobody")
        threading.Timer(0.2, self.client.cancel, (task_id,)).start()
        self.assertEqual(self.client.wait(task_id, timeout=5, poll=0.05)["status"], "cancelled")


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = support.fast_server(auth={"submit_tokens": ["sub"], "admin_tokens": ["adm"],
                                               "registration_tokens": ["reg"]})

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def call(self, token, fn):
        with HTTPClient(self.server.base, token=token) as client:
            return fn(client)

    def test_missing_or_unknown_token_is_unauthorized(self):
        for token in (None, "wrong"):
            with self.assertRaises(Unauthorized) as caught:
                self.call(token, lambda c: c.submit("x"))
            self.assertEqual((caught.exception.status, caught.exception.code),
                             (401, "unauthorized"))

    def test_token_of_another_kind_is_forbidden(self):
        with self.assertRaises(Forbidden):
            self.call("reg", lambda c: c.submit("x"))
        with self.assertRaises(Forbidden):
            self.call("sub", lambda c: c.stats())

    def test_right_tokens_pass(self):
        task_id = self.call("sub", lambda c: c.submit("x", queue="nobody"))
        self.assertEqual(self.call("adm", lambda c: c.get(task_id))["id"], task_id)
        registration = self.call("reg", lambda c: c.register("w"))
        self.assertTrue(registration.token)
        with self.assertRaises(Unauthorized):
            self.call(None, lambda c: c.register("w"))


class LimitsTest(unittest.TestCase):
    def test_full_queue_is_queue_full_with_retry_after(self):
        with support.fast_server(queue={"task_queue_size": 1}) as server, \
                HTTPClient(server.base) as client:
            client.submit("x")
            with self.assertRaises(QueueFull) as caught:
                client.submit("x")
            self.assertEqual((caught.exception.status, caught.exception.code),
                             (503, "queue_full"))
            self.assertIsNotNone(caught.exception.retry_after)

    def test_rate_limited_then_retried_only_when_idempotent(self):
        with support.fast_server(rate_limit={"submit_per_s": 1, "submit_burst": 1}) as server, \
                HTTPClient(server.base, max_retries=3) as client:
            client.submit("x")
            with self.assertRaises(RateLimited) as caught:
                client.submit("x")  # no key: not resent, whatever max_retries says
            self.assertGreaterEqual(caught.exception.retry_after, 1)
            started = time.monotonic()
            task_id = client.submit("x", idempotency_key=uuid.uuid4().hex)
            self.assertGreaterEqual(time.monotonic() - started, 0.5)
            self.assertEqual(client.get(task_id)["status"], "pending")


class PoolTest(unittest.TestCase):
    def test_sequential_calls_share_one_connection(self):
        with support.fast_server() as server, HTTPClient(server.base, pool_size=2) as client:
            for _ in range(20):
                client.submit("x", queue="nobody")
            stats = client.stats()
            self.assertEqual(stats["connections"]["http"], 1)
            self.assertEqual(client.connections_opened, 1)

    def test_threads_share_the_pool(self):
        with support.fast_server() as server, HTTPClient(server.base, pool_size=6) as client:
            errors = []

            def work():
                try:
                    for _ in range(10):
                        client.get(client.submit("x", queue="nobody"))
                except Exception as exc:  # collected for the assertion below
                    errors.append(exc)

            threads = [threading.Thread(target=work) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            self.assertLessEqual(client.connections_opened, 6)
            self.assertEqual(len(list(client.list_tasks(queue="nobody"))), 60)

    def test_connection_closed_by_idle_timeout_is_replaced_for_a_post(self):
        with support.fast_server(server={"connection_timeout_s": 1}) as server, \
                HTTPClient(server.base) as client:
            client.stats()
            time.sleep(1.6)  # the server's idle sweep closes the keep-alive connection
            task_id = client.submit("x", queue="nobody")  # no key: must not hit the dead one
            self.assertEqual(client.get(task_id)["id"], task_id)
            self.assertEqual(client.connections_opened, 2)


class ResendPolicyTest(unittest.TestCase):
    """A scripted server that answers the first request of each connection, then reads the
    second and hangs up without answering: the server may have acted on that request."""

    def setUp(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.requests = []
        threading.Thread(target=self.serve, daemon=True).start()
        self.client = HTTPClient(f"http://127.0.0.1:{self.listener.getsockname()[1]}")

    def tearDown(self):
        self.client.close()
        self.listener.close()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        with conn:
            for answered in (True, False):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.requests.append(data.split(b" ", 2)[:2])
                if answered:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 19\r\n\r\n{\"status\": \"fine\"}\n")

    def test_post_without_key_is_not_resent(self):
        self.client.stats()
        with self.assertRaises(TransportError) as caught:
            self.client.cancel("t_1")
        self.assertTrue(caught.exception.maybe_processed)
        self.assertEqual([r[0] for r in self.requests], [b"GET", b"POST"])

    def test_get_is_resent_on_a_fresh_connection(self):
        self.client.stats()
        self.assertEqual(self.client.stats(), {"status": "fine"})
        self.assertEqual([r[0] for r in self.requests], [b"GET", b"GET", b"GET"])
        self.assertEqual(self.client.connections_opened, 2)


if __name__ == "__main__":
    unittest.main()
