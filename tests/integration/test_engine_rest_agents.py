"""The task/agent engine through REST, agent side and auth (API.md "Auth", "REST endpoints"),
black-box: token kinds, long poll, complete/fail ownership, deregistration, liveness. Each test
starts its own server."""
import asyncio
import concurrent.futures
import json
import socket
import threading
import time
import unittest

from engine_client import (FAST_AGENTS, EngineRestTest, assert_error, get_task,
                           register_rest_agent, submit, submit_ok, upgrade_status, wait_until)


class Auth(EngineRestTest):
    config = {"agents": FAST_AGENTS,
              "auth": {"submit_tokens": ["sub"], "admin_tokens": ["adm"],
                       "registration_tokens": ["reg"]}}

    def status_of(self, method, path, token, body=None):
        status, _, resp = self.server.request(method, path, body, token=token)
        if status >= 400:
            code = {401: "unauthorized", 403: "forbidden"}.get(status)
            if code:
                self.assertEqual(resp["error"]["code"], code, resp)
        return status

    def test_submit_without_or_with_unknown_token_is_401(self):
        self.assertEqual(self.status_of("POST", "/api/v1/tasks", None, {"type": "x"}), 401)
        self.assertEqual(self.status_of("POST", "/api/v1/tasks", "nope", {"type": "x"}), 401)

    def test_registration_token_on_submit_is_403(self):
        self.assertEqual(self.status_of("POST", "/api/v1/tasks", "reg", {"type": "x"}), 403)
        self.assertEqual(self.status_of("GET", "/api/v1/tasks", "reg"), 403)

    def test_submit_and_admin_tokens_may_use_submit_routes(self):
        for token in ("sub", "adm"):
            status, _, body = submit(self.server, {"type": "x"}, token=token)
            self.assertEqual(status, 202, body)
            task_id = body["task_id"]
            self.assertEqual(self.status_of("GET", f"/api/v1/tasks/{task_id}", token), 200)
            self.assertEqual(self.status_of("GET", "/api/v1/tasks", token), 200)
            self.assertEqual(self.status_of("POST", "/api/v1/tasks/batch", token,
                                            {"tasks": [{"type": "b"}]}), 202)
            self.assertEqual(self.status_of("POST", f"/api/v1/tasks/{task_id}/cancel", token),
                             200)

    def test_submit_token_on_stats_and_agents_is_403_admin_allowed(self):
        for path in ("/api/v1/stats", "/api/v1/agents"):
            self.assertEqual(self.status_of("GET", path, "sub"), 403)
            self.assertEqual(self.status_of("GET", path, None), 401)
            self.assertEqual(self.status_of("GET", path, "adm"), 200)

    def test_register_needs_a_registration_token(self):
        body = {"name": "w"}
        self.assertEqual(self.status_of("POST", "/api/v1/agents/register", None, body), 401)
        self.assertEqual(self.status_of("POST", "/api/v1/agents/register", "nope", body), 401)
        self.assertEqual(self.status_of("POST", "/api/v1/agents/register", "sub", body), 403)
        self.assertEqual(self.status_of("POST", "/api/v1/agents/register", "reg", body), 201)

    def test_heartbeat_needs_that_agents_own_token(self):
        a_id, a_token = register_rest_agent(self.server, "a", token="reg")
        b_id, _ = register_rest_agent(self.server, "b", token="reg")
        path = f"/api/v1/agents/{a_id}/heartbeat"
        status, _, body = self.server.request("POST", path, {}, token=a_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"ok": True, "cancel": []})
        self.assertEqual(self.status_of("POST", path, None, {}), 401)
        self.assertEqual(self.status_of("POST", path, "nope", {}), 401)
        self.assertEqual(self.status_of("POST", path, "sub", {}), 403)
        # A's token on B's heartbeat: acting on another agent's resource.
        self.assertEqual(self.status_of("POST", f"/api/v1/agents/{b_id}/heartbeat", a_token, {}),
                         403)

    def test_request_needs_that_agents_own_token(self):
        a_id, a_token = register_rest_agent(self.server, "a", token="reg")
        b_id, b_token = register_rest_agent(self.server, "b", token="reg")
        body = {"agent_id": a_id, "wait_s": 0}
        self.assertEqual(self.status_of("POST", "/api/v1/tasks/request", None, body), 401)
        self.assertEqual(self.status_of("POST", "/api/v1/tasks/request", "sub", body), 403)
        self.assertEqual(self.status_of("POST", "/api/v1/tasks/request", b_token, body), 403)
        self.assertEqual(self.status_of("POST", "/api/v1/tasks/request", a_token, body), 200)

    def test_deregistration_by_that_agent_or_admin_only(self):
        a_id, a_token = register_rest_agent(self.server, "a", token="reg")
        b_id, b_token = register_rest_agent(self.server, "b", token="reg")
        path = f"/api/v1/agents/{a_id}"
        self.assertEqual(self.status_of("DELETE", path, None), 401)
        self.assertEqual(self.status_of("DELETE", path, "sub"), 403)
        self.assertEqual(self.status_of("DELETE", path, b_token), 403)
        self.assertEqual(self.status_of("DELETE", path, a_token), 204)
        self.assertEqual(self.status_of("DELETE", f"/api/v1/agents/{b_id}", "adm"), 204)

    def test_ws_upgrade_with_a_bad_token_is_401(self):
        a_id, a_token = register_rest_agent(self.server, "a", token="reg")

        async def scenario():
            return [await upgrade_status(self.server, "/ws/agent", "nope"),
                    await upgrade_status(self.server, f"/ws/agent/{a_id}", None),
                    await upgrade_status(self.server, f"/ws/agent/{a_id}", "nope"),
                    await upgrade_status(self.server, f"/ws/agent/{a_id}", a_token)]

        self.assertEqual(asyncio.run(scenario()), [401, 401, 401, None])


class LongPoll(EngineRestTest):
    def test_long_poll_returns_promptly_when_a_task_is_submitted_during_the_wait(self):
        agent_id, token = register_rest_agent(self.server)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            polled_at = time.monotonic()
            poll = pool.submit(self.request_tasks, agent_id, token, 5)
            time.sleep(1.5)  # the scenario: the submit comes 1-2 s into the wait
            self.assertFalse(poll.done(), "the long poll returned before anything was submitted")
            submitted_at = time.monotonic()
            task_id = submit_ok(self.server, {"type": "wake"})
            status, body = poll.result(timeout=10)
            answered_at = time.monotonic()
        self.assertEqual(status, 200, body)
        self.assertEqual([t["id"] for t in body["tasks"]], [task_id])
        task = body["tasks"][0]
        self.assertEqual(task["status"], "assigned")
        self.assertEqual(task["agent_id"], agent_id)
        self.assertEqual(task["attempts"], 1)
        self.assertLess(answered_at - submitted_at, 1.0)
        self.assertGreater(answered_at - polled_at, 1.4)

    def test_long_poll_ends_empty_at_wait_s(self):
        agent_id, token = register_rest_agent(self.server)
        started = time.monotonic()
        status, body = self.request_tasks(agent_id, token, wait_s=2)
        elapsed = time.monotonic() - started
        self.assertEqual((status, body), (200, {"tasks": []}))
        self.assertGreater(elapsed, 1.8)
        self.assertLess(elapsed, 3.5)

    def test_a_long_poll_whose_client_left_gets_no_task(self):
        agent_id, token = register_rest_agent(self.server)
        body = json.dumps({"agent_id": agent_id, "wait_s": 30}).encode()
        gone = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        gone.sendall(b"POST /api/v1/tasks/request HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + token.encode() + b"\r\n"
                     b"Content-Type: application/json\r\nContent-Length: " +
                     str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(0.3)
        gone.close()  # the client leaves while its poll waits
        time.sleep(0.3)
        task_id = submit_ok(self.server, {"type": "after-leave"})
        # The task is not handed to the vanished poll: the next poll gets it at once.
        status, answer = self.request_tasks(agent_id, token, wait_s=2)
        self.assertEqual(status, 200, answer)
        self.assertEqual([t["id"] for t in answer["tasks"]], [task_id])
        self.assertEqual(answer["tasks"][0]["attempts"], 1)

    def test_request_without_wait_returns_at_once_with_available_tasks(self):
        agent_id, token = register_rest_agent(self.server, max_concurrency=3)
        ids = [submit_ok(self.server, {"type": "now", "payload": {"i": i}}) for i in range(3)]
        started = time.monotonic()
        status, body = self.request_tasks(agent_id, token, wait_s=0, max_tasks=5)
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted(t["id"] for t in body["tasks"]), sorted(ids))


class CompletionOwnership(EngineRestTest):
    def test_completion_by_another_agent_is_409_and_changes_nothing(self):
        a_id, a_token = register_rest_agent(self.server, "a")
        b_id, b_token = register_rest_agent(self.server, "b")
        task_id = submit_ok(self.server, {"type": "mine"})
        self.assertEqual(self.take_one(a_id, a_token)["id"], task_id)
        before = get_task(self.server, task_id)
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/complete",
                                              {"result": "stolen"}, token=b_token)
        assert_error(self, status, body, 409, "conflict")
        after = get_task(self.server, task_id)
        self.assertEqual(after, before)
        self.assertEqual((after["status"], after["agent_id"]), ("assigned", a_id))

    def test_completion_without_a_token_is_401_and_changes_nothing(self):
        a_id, a_token = register_rest_agent(self.server, "a")
        task_id = submit_ok(self.server, {"type": "mine"})
        self.take_one(a_id, a_token)
        before = get_task(self.server, task_id)
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/complete",
                                              {"result": 1})
        assert_error(self, status, body, 401, "unauthorized")
        self.assertEqual(get_task(self.server, task_id), before)

    def test_completion_by_the_holder_stores_the_result(self):
        a_id, a_token = register_rest_agent(self.server, "a")
        task_id = submit_ok(self.server, {"type": "mine"})
        self.take_one(a_id, a_token)
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/complete",
                                              {"result": {"n": [1, "two"]}}, token=a_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "succeeded")
        self.assertEqual(get_task(self.server, task_id)["result"], {"n": [1, "two"]})

    def test_a_typo_in_a_holders_call_is_400_and_changes_nothing(self):
        # "reslt" used to complete the task without its result, "retriable" to retry it anyway.
        a_id, a_token = register_rest_agent(self.server, "a")
        task_id = submit_ok(self.server, {"type": "mine"})
        self.take_one(a_id, a_token)
        for op, body, field in [("complete", {"reslt": 1}, "reslt"),
                                ("fail", {"error": "x", "retriable": False}, "retriable"),
                                ("progress", {"progress": 0.5, "msg": "half"}, "msg"),
                                ("start", {"now": True}, "now")]:
            status, _, answer = self.server.request("POST", f"/api/v1/tasks/{task_id}/{op}", body,
                                                    token=a_token)
            assert_error(self, status, answer, 400, "bad_request", field)
        self.assertEqual(get_task(self.server, task_id)["status"], "assigned")

    def test_completing_a_finished_task_is_409(self):
        a_id, a_token = register_rest_agent(self.server, "a")
        task_id = submit_ok(self.server, {"type": "mine"})
        self.take_one(a_id, a_token)
        path = f"/api/v1/tasks/{task_id}/complete"
        self.assertEqual(self.server.request("POST", path, {"result": 1}, token=a_token)[0], 200)
        status, _, body = self.server.request("POST", path, {"result": 2}, token=a_token)
        assert_error(self, status, body, 409, "conflict")
        self.assertEqual(get_task(self.server, task_id)["result"], 1)


class Failure(EngineRestTest):
    config = {"agents": FAST_AGENTS, "queue": {"retry_base_s": 1, "retry_max_s": 1}}

    def test_retryable_failure_is_scheduled_with_run_at_then_redelivered(self):
        a_id, a_token = register_rest_agent(self.server, "a")
        task_id = submit_ok(self.server, {"type": "flaky"})
        self.take_one(a_id, a_token)
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/fail",
                                              {"error": "boom", "retryable": True}, token=a_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "scheduled")
        self.assertIsInstance(body["run_at"], str)
        self.assertEqual(body["error"], "boom")
        again = self.take_one(a_id, a_token, wait_s=5)
        self.assertEqual(again["id"], task_id)
        self.assertEqual(again["attempts"], 2)

    def test_non_retryable_failure_is_dead(self):
        a_id, a_token = register_rest_agent(self.server, "a")
        task_id = submit_ok(self.server, {"type": "fatal"})
        self.take_one(a_id, a_token)
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/fail",
                                              {"error": "no", "retryable": False}, token=a_token)
        self.assertEqual(status, 200, body)
        self.assertEqual((body["status"], body["error"]), ("dead", "no"))

    def test_a_dead_task_retried_runs_again(self):
        a_id, a_token = register_rest_agent(self.server, "r")
        task_id = submit_ok(self.server, {"type": "flaky", "max_attempts": 1})
        self.take_one(a_id, a_token)
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/fail",
                                              {"error": "boom"}, token=a_token)
        self.assertEqual((status, body["status"]), (200, "dead"), body)
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/retry")
        self.assertEqual((status, body["status"], body["error"]), (200, "pending", None), body)
        task = self.take_one(a_id, a_token)
        self.assertEqual((task["id"], task["attempts"]), (task_id, 1))

    def test_failure_at_max_attempts_is_dead(self):
        a_id, a_token = register_rest_agent(self.server, "a")
        task_id = submit_ok(self.server, {"type": "flaky", "max_attempts": 1})
        self.take_one(a_id, a_token)
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/fail",
                                              {"error": "boom"}, token=a_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "dead")


class Deregister(EngineRestTest):
    def test_deregister_puts_the_agents_tasks_back_to_pending(self):
        a_id, a_token = register_rest_agent(self.server, "a", max_concurrency=2)
        ids = [submit_ok(self.server, {"type": "held"}) for _ in range(2)]
        status, body = self.request_tasks(a_id, a_token, max_tasks=2)
        self.assertEqual(sorted(t["id"] for t in body["tasks"]), sorted(ids))
        status, _, body = self.server.request("DELETE", f"/api/v1/agents/{a_id}", token=a_token)
        self.assertEqual(status, 204, body)
        for task_id in ids:
            task = get_task(self.server, task_id)
            self.assertEqual((task["status"], task["agent_id"]), ("pending", None))

    def test_released_tasks_go_to_the_next_agent(self):
        a_id, a_token = register_rest_agent(self.server, "a")
        task_id = submit_ok(self.server, {"type": "held"})
        self.take_one(a_id, a_token)
        self.server.request("DELETE", f"/api/v1/agents/{a_id}", token=a_token)
        b_id, b_token = register_rest_agent(self.server, "b")
        task = self.take_one(b_id, b_token)
        self.assertEqual((task["id"], task["agent_id"], task["attempts"]), (task_id, b_id, 2))


class Liveness(EngineRestTest):
    def agent_status(self, agent_id):
        status, _, body = self.server.request("GET", f"/api/v1/agents/{agent_id}")
        self.assertEqual(status, 200, body)
        return body["status"]

    def test_silent_rest_agent_goes_offline_and_its_task_back_to_pending(self):
        a_id, a_token = register_rest_agent(self.server, "quiet")
        registered_at = time.monotonic()
        task_id = submit_ok(self.server, {"type": "held"})
        self.take_one(a_id, a_token)
        self.assertEqual(self.agent_status(a_id), "online")
        self.assertTrue(wait_until(lambda: get_task(self.server, task_id)["status"] == "pending",
                                   6), "the task was never released")
        self.assertGreaterEqual(time.monotonic() - registered_at, 1.9)  # heartbeat_timeout_s 2
        self.assertEqual(self.agent_status(a_id), "offline")
        task = get_task(self.server, task_id)
        self.assertEqual((task["agent_id"], task["attempts"]), (None, 1))

    def test_heartbeats_keep_a_rest_agent_and_its_lease_alive(self):
        a_id, a_token = register_rest_agent(self.server, "chatty")
        task_id = submit_ok(self.server, {"type": "held"})
        self.take_one(a_id, a_token)
        # 4 s is past both heartbeat_timeout_s (2) and lease_timeout_s (3).
        for _ in range(8):
            time.sleep(0.5)
            status, _, body = self.server.request("POST", f"/api/v1/agents/{a_id}/heartbeat", {},
                                                  token=a_token)
            self.assertEqual(status, 200, body)
        self.assertEqual(self.agent_status(a_id), "online")
        task = get_task(self.server, task_id)
        self.assertEqual((task["status"], task["agent_id"]), ("assigned", a_id))

    def test_progress_reports_and_polls_keep_a_rest_agent_alive_without_heartbeats(self):
        # API.md: offline means silent past heartbeat_timeout_s. An agent reporting progress
        # on one task while it polls for more is not silent (it used to go offline after 2 s
        # here and lose its task). Cancel notices stay for its heartbeat.
        a_id, a_token = register_rest_agent(self.server, "busy", max_concurrency=2)
        task_id = submit_ok(self.server, {"type": "held"})
        self.take_one(a_id, a_token)
        for i in range(8):  # 4 s: past heartbeat_timeout_s (2) and lease_timeout_s (3)
            time.sleep(0.5)
            if i % 2:
                status, body = self.request_tasks(a_id, a_token)
            else:
                status, _, body = self.server.request(
                    "POST", f"/api/v1/tasks/{task_id}/progress", {"progress": i / 10},
                    token=a_token)
            self.assertEqual(status, 200, body)
        self.assertEqual(self.agent_status(a_id), "online")
        task = get_task(self.server, task_id)
        self.assertEqual((task["status"], task["agent_id"]), ("running", a_id))
        status, _, _ = self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel")
        self.assertEqual(status, 200)
        status, body = self.request_tasks(a_id, a_token)  # counts, but takes no notice
        self.assertEqual(status, 200, body)
        status, _, body = self.server.request("POST", f"/api/v1/agents/{a_id}/heartbeat", {},
                                              token=a_token)
        self.assertEqual((status, body["cancel"]), (200, [task_id]))

    def test_a_poll_longer_than_the_heartbeat_timeout_keeps_its_agent_online(self):
        a_id, a_token = register_rest_agent(self.server, "patient")
        answer = {}
        poller = threading.Thread(target=lambda: answer.update(
            zip(("status", "body"), self.request_tasks(a_id, a_token, wait_s=5))))
        poller.start()
        time.sleep(3.5)  # heartbeat_timeout_s is 2
        self.assertEqual(self.agent_status(a_id), "online")
        task_id = submit_ok(self.server, {"type": "late"})
        poller.join(10)
        self.assertEqual(answer["status"], 200)
        self.assertEqual([t["id"] for t in answer["body"]["tasks"]], [task_id])

    def test_draining_agent_gets_no_new_tasks(self):
        a_id, a_token = register_rest_agent(self.server, "leaving")
        status, _, body = self.server.request("POST", f"/api/v1/agents/{a_id}/heartbeat",
                                              {"status": "draining"}, token=a_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.agent_status(a_id), "draining")
        submit_ok(self.server, {"type": "x"})
        status, body = self.request_tasks(a_id, a_token, wait_s=1)
        self.assertEqual((status, body), (200, {"tasks": []}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
