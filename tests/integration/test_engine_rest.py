"""The task/agent engine through REST, submitter side (API.md "REST endpoints"), black-box:
rate limits, queue full, idempotency, batches and validation, cancel, listing. Each test starts
its own server."""
import time
import unittest

from engine_client import (FAST_AGENTS, EngineRestTest, assert_error, get_task,
                           register_rest_agent, submit, submit_ok)
from harness import request_on

SERVER_OWNED = {"id": "t_mine", "status": "succeeded", "attempts": 2, "agent_id": "a_x",
                "result": {"r": 1}, "error": "no", "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z"}


class RateLimit(EngineRestTest):
    config = {"rate_limit": {"submit_per_s": 1, "submit_burst": 5}}

    def test_sixth_quick_submit_is_429_with_retry_after_and_ratelimit_headers(self):
        c = self.server.conn()
        answers = []
        for i in range(6):
            answers.append(request_on(c, "POST", "/api/v1/tasks", {"type": "r", "payload": i}))
        c.close()
        self.assertEqual([a[0] for a in answers[:5]], [202] * 5)
        status, headers, body = answers[5]
        assert_error(self, status, body, 429, "rate_limited")
        self.assertGreaterEqual(int(headers["retry-after"]), 1)
        self.assertEqual(headers["ratelimit-limit"], "5")
        self.assertEqual(headers["ratelimit-remaining"], "0")
        self.assertGreaterEqual(int(headers["ratelimit-reset"]), 1)
        # The refused submit created nothing.
        self.assertEqual(len(self.list_tasks()["items"]), 5)



class AgentRateLimits(EngineRestTest):
    # Task requests are limited per agent, registrations per client address (README). Both
    # keys used to be lost (the callback took the value the key was read from, and C++ leaves
    # the order of a call's arguments open): every agent and every address shared one bucket.
    config = {"rate_limit": {"agent_per_s": 0.1, "agent_burst": 3}}

    def register_from(self, address):
        """Registers an agent as a client at `address` (X-Forwarded-For from loopback, a
        trusted proxy): the HTTP status, and (agent_id, token) when registered."""
        status, _, body = self.server.request("POST", "/api/v1/agents/register", {"name": "r"},
                                              headers={"X-Forwarded-For": address})
        return status, (body["agent_id"], body["token"]) if status == 201 else None

    def test_each_agent_has_its_own_task_request_bucket(self):
        first = self.register_from("10.9.0.1")[1]
        second = self.register_from("10.9.0.2")[1]
        statuses = [self.request_tasks(*first, wait_s=0)[0] for _ in range(4)]
        self.assertEqual(statuses, [200, 200, 200, 429])
        self.assertEqual(self.request_tasks(*second, wait_s=0)[0], 200)

    def test_each_client_address_has_its_own_registration_bucket(self):
        statuses = [self.register_from("10.8.0.1")[0] for _ in range(4)]
        self.assertEqual(statuses, [201, 201, 201, 429])
        self.assertEqual(self.register_from("10.8.0.2")[0], 201)

class QueueFull(EngineRestTest):
    config = {"agents": FAST_AGENTS, "queue": {"task_queue_size": 10}}

    def drain(self, n):
        """A REST agent takes every queued task; their ids."""
        agent_id, token = register_rest_agent(self.server, "drainer", max_concurrency=n + 5)
        got = []
        deadline = time.monotonic() + 10
        while len(got) < n and time.monotonic() < deadline:
            status, body = self.request_tasks(agent_id, token, wait_s=1, max_tasks=n)
            self.assertEqual(status, 200, body)
            got += [t["id"] for t in body["tasks"]]
        status, body = self.request_tasks(agent_id, token, wait_s=0, max_tasks=n)
        self.assertEqual(body["tasks"], [])
        return got

    def test_submits_past_task_queue_size_are_503_queue_full_and_nothing_accepted_is_lost(self):
        answers = [submit(self.server, {"type": "q", "payload": {"i": i}}) for i in range(12)]
        self.assertEqual([a[0] for a in answers], [202] * 10 + [503] * 2)
        for status, headers, body in answers[10:]:
            assert_error(self, status, body, 503, "queue_full")
            self.assertGreaterEqual(int(headers["retry-after"]), 1)
        accepted = [a[2]["task_id"] for a in answers[:10]]
        got = self.drain(10)
        self.assertEqual(sorted(got), sorted(accepted))
        self.assertEqual(len(set(got)), 10)

    def test_batch_that_would_overflow_is_refused_whole(self):
        first = [submit_ok(self.server, {"type": "q", "payload": {"i": i}}) for i in range(8)]
        status, headers, body = self.server.request(
            "POST", "/api/v1/tasks/batch", {"tasks": [{"type": "b"}] * 3})
        assert_error(self, status, body, 503, "queue_full")
        self.assertIn("retry-after", headers)
        self.assertEqual(len(self.list_tasks()["items"]), 8)
        status, _, body = self.server.request(
            "POST", "/api/v1/tasks/batch", {"tasks": [{"type": "b"}] * 2})
        self.assertEqual(status, 202, body)
        self.assertEqual(sorted(self.drain(10)), sorted(first + body["task_ids"]))

    def test_draining_makes_room_again(self):
        for i in range(10):
            submit_ok(self.server, {"type": "q", "payload": {"i": i}})
        self.assertEqual(submit(self.server, {"type": "q"})[0], 503)
        self.drain(10)  # assigned tasks no longer count as queued
        self.assertEqual(submit(self.server, {"type": "q"})[0], 202)


class Idempotency(EngineRestTest):
    def test_same_key_same_body_is_200_with_the_same_task(self):
        body = {"type": "once", "payload": {"x": 1}, "idempotency_key": "k-1"}
        status, _, first = submit(self.server, body)
        self.assertEqual(status, 202, first)
        status, _, again = submit(self.server, body)
        self.assertEqual(status, 200, again)
        self.assertEqual(again["task_id"], first["task_id"])
        self.assertIn("status", again)
        self.assertEqual(len(self.list_tasks()["items"]), 1)

    def test_same_key_different_body_is_409(self):
        submit_ok(self.server, {"type": "once", "payload": {"x": 1}, "idempotency_key": "k-2"})
        status, _, body = submit(self.server, {"type": "once", "payload": {"x": 2},
                                               "idempotency_key": "k-2"})
        assert_error(self, status, body, 409, "conflict")
        self.assertEqual(len(self.list_tasks()["items"]), 1)

    def test_idempotency_key_header_works_like_the_field(self):
        headers = {"Idempotency-Key": "k-3"}
        status, _, first = submit(self.server, {"type": "h"}, headers=headers)
        self.assertEqual(status, 202, first)
        status, _, again = submit(self.server, {"type": "h"}, headers=headers)
        self.assertEqual((status, again["task_id"]), (200, first["task_id"]))
        self.assertEqual(get_task(self.server, first["task_id"])["idempotency_key"], "k-3")
        status, _, body = submit(self.server, {"type": "other"}, headers=headers)
        assert_error(self, status, body, 409, "conflict")

    def test_batch_entry_with_existing_key_yields_the_existing_id(self):
        existing = submit_ok(self.server, {"type": "k", "idempotency_key": "k-4"})
        status, _, body = self.server.request("POST", "/api/v1/tasks/batch", {"tasks": [
            {"type": "new"}, {"type": "k", "idempotency_key": "k-4"}]})
        self.assertEqual(status, 202, body)
        self.assertEqual(body["task_ids"][1], existing)
        self.assertNotEqual(body["task_ids"][0], existing)


    def test_batch_with_an_idempotency_key_header_is_refused_not_repeated(self):
        # A header that was silently ignored made a retried batch a second batch.
        for _ in range(2):
            status, _, body = self.server.request(
                "POST", "/api/v1/tasks/batch", {"tasks": [{"type": "b"}]},
                headers={"Idempotency-Key": "batch-1"})
            assert_error(self, status, body, 400, "bad_request", "Idempotency-Key")
        self.assertEqual(self.list_tasks()["items"], [])

class Validation(EngineRestTest):
    def test_batch_with_one_invalid_task_is_400_naming_it_and_creates_nothing(self):
        status, _, body = self.server.request("POST", "/api/v1/tasks/batch", {"tasks": [
            {"type": "ok"}, {"type": "ok"}, {"type": "bad", "priority": "high"}]})
        assert_error(self, status, body, 400, "bad_request", "tasks[2].priority")
        self.assertEqual(self.list_tasks()["items"], [])

    def test_batch_answers_ids_in_order(self):
        status, _, body = self.server.request("POST", "/api/v1/tasks/batch", {"tasks": [
            {"type": f"t{i}"} for i in range(5)]})
        self.assertEqual(status, 202, body)
        self.assertEqual([get_task(self.server, t)["type"] for t in body["task_ids"]],
                         [f"t{i}" for i in range(5)])

    def test_a_number_json_cannot_carry_is_400_and_creates_nothing(self):
        # 1e400 parsed as infinity and went out as `Infinity`, which no JSON parser reads.
        status, _, body = self.server.request(
            "POST", "/api/v1/tasks", b'{"type": "inf", "payload": {"x": 1e400}}')
        assert_error(self, status, body, 400, "bad_request", "number")
        self.assertEqual(self.list_tasks()["items"], [])

    def test_server_owned_fields_in_a_submit_are_400(self):
        for field, value in SERVER_OWNED.items():
            with self.subTest(field=field):
                status, _, body = submit(self.server, {"type": "x", field: value})
                assert_error(self, status, body, 400, "bad_request", field)
        self.assertEqual(self.list_tasks()["items"], [])

    def test_missing_type_is_400_naming_type(self):
        status, _, body = submit(self.server, {"payload": {}})
        assert_error(self, status, body, 400, "bad_request", "type")

    def test_priority_out_of_range_is_400(self):
        status, _, body = submit(self.server, {"type": "x", "priority": 101})
        assert_error(self, status, body, 400, "bad_request", "priority")

    def test_unknown_task_is_404(self):
        status, _, body = self.server.request("GET", "/api/v1/tasks/t_doesnotexist")
        assert_error(self, status, body, 404, "not_found")

    def test_batch_over_1000_tasks_is_400(self):
        status, _, body = self.server.request("POST", "/api/v1/tasks/batch",
                                              {"tasks": [{"type": "x"}] * 1001})
        assert_error(self, status, body, 400, "bad_request", "tasks")
        self.assertEqual(self.list_tasks()["items"], [])

    def test_wait_s_over_60_is_400(self):
        agent_id, token = register_rest_agent(self.server)
        status, body = self.request_tasks(agent_id, token, wait_s=61)
        assert_error(self, status, body, 400, "bad_request", "wait_s")

    def test_submitted_task_has_the_documented_defaults(self):
        task = get_task(self.server, submit_ok(self.server, {"type": "d"}))
        expected = {"queue": "default", "priority": 0, "status": "pending", "attempts": 0,
                    "max_attempts": 3, "required_capabilities": [], "agent_id": None,
                    "result": None, "error": None, "idempotency_key": None, "type": "d"}
        self.assertEqual({k: task[k] for k in expected}, expected)
        for key in ("id", "payload", "timeout_s", "run_at", "created_at", "updated_at"):
            self.assertIn(key, task)


class Cancel(EngineRestTest):
    def test_cancel_of_a_pending_task_is_200_cancelled(self):
        task_id = submit_ok(self.server, {"type": "c"})
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel")
        self.assertEqual(status, 200, body)
        self.assertEqual((body["id"], body["status"]), (task_id, "cancelled"))

    def test_cancel_body_is_empty_or_an_empty_object(self):
        task_id = submit_ok(self.server, {"type": "c"})
        for body, field in (("{not json", None), ({"reason": "x"}, "reason"), ([], None)):
            status, _, answer = self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel",
                                                    body)
            assert_error(self, status, answer, 400, "bad_request")
            if field:
                self.assertIn(field, answer["error"]["message"])
        self.assertEqual(get_task(self.server, task_id)["status"], "pending")  # nothing changed
        status, _, answer = self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel", {})
        self.assertEqual((status, answer["status"]), (200, "cancelled"), answer)

    def test_retry_puts_a_cancelled_task_back_to_pending_and_a_pending_one_is_409(self):
        task_id = submit_ok(self.server, {"type": "again"})
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/retry")
        assert_error(self, status, body, 409, "conflict")
        self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel")
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/retry", {})
        self.assertEqual(status, 200, body)
        self.assertEqual((body["id"], body["status"], body["attempts"]),
                         (task_id, "pending", 0))
        status, _, body = self.server.request("POST", "/api/v1/tasks/t_nosuchtask0/retry")
        assert_error(self, status, body, 404, "not_found")

    def test_cancel_of_a_finished_task_is_409(self):
        task_id = submit_ok(self.server, {"type": "c"})
        self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel")
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel")
        assert_error(self, status, body, 409, "conflict")

    def test_cancel_of_a_held_task_is_reported_to_a_rest_agent_on_heartbeat(self):
        a_id, a_token = register_rest_agent(self.server, "a")
        task_id = submit_ok(self.server, {"type": "c"})
        self.take_one(a_id, a_token)
        self.assertEqual(self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel")[0], 200)
        status, _, body = self.server.request("POST", f"/api/v1/agents/{a_id}/heartbeat", {},
                                              token=a_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["cancel"], [task_id])


class Listing(EngineRestTest):
    def setUp(self):
        super().setUp()
        self.a_ids = [submit_ok(self.server, {"type": "a", "queue": "q1"}) for _ in range(4)]
        self.b_ids = [submit_ok(self.server, {"type": "b", "queue": "q2"}) for _ in range(3)]
        self.agent_id, token = register_rest_agent(self.server, "lister", queues=["q1"],
                                                   max_concurrency=2)
        status, body = self.request_tasks(self.agent_id, token, max_tasks=2)
        self.taken = [t["id"] for t in body["tasks"]]
        self.assertEqual(len(self.taken), 2)

    def ids(self, query):
        return [t["id"] for t in self.list_tasks(query)["items"]]

    def test_filter_by_type(self):
        self.assertEqual(sorted(self.ids("?type=a")), sorted(self.a_ids))

    def test_filter_by_queue(self):
        self.assertEqual(sorted(self.ids("?queue=q2")), sorted(self.b_ids))

    def test_filter_by_status_and_queue(self):
        self.assertEqual(sorted(self.ids("?status=assigned")), sorted(self.taken))
        pending_q1 = set(self.a_ids) - set(self.taken)
        self.assertEqual(sorted(self.ids("?status=pending&queue=q1")), sorted(pending_q1))

    def test_filter_by_agent_id(self):
        self.assertEqual(sorted(self.ids(f"?agent_id={self.agent_id}")), sorted(self.taken))

    def test_newest_first(self):
        self.assertEqual(self.ids(""), list(reversed(self.a_ids + self.b_ids)))

    def test_cursor_paging_visits_every_task_once_newest_first(self):
        seen, cursor, pages = [], None, 0
        while True:
            query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = self.list_tasks(query)
            pages += 1
            self.assertLessEqual(len(page["items"]), 3)
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            self.assertLess(pages, 10, "paging does not end")
        self.assertEqual(seen, list(reversed(self.a_ids + self.b_ids)))

    def test_paging_with_a_filter(self):
        seen, cursor = [], None
        for _ in range(5):
            page = self.list_tasks("?type=a&limit=2" + (f"&cursor={cursor}" if cursor else ""))
            self.assertLessEqual(len(page["items"]), 2)
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        self.assertIsNone(cursor, "paging does not end")
        self.assertEqual(seen, list(reversed(self.a_ids)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
