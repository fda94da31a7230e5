"""A REST agent built from HTTPClient's agent calls, against the real server: the request /
start / progress / complete loop, long polls, failures, cancels, and another agent's tokens."""
import threading
import time
import unittest

import support
from pm_agent_client import Conflict, Forbidden, HTTPClient, NotFound


class RestAgentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = support.fast_server(queue={"retry_base_s": 60, "retry_max_s": 120})
        cls.client = HTTPClient(cls.server.base, timeout=1)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def setUp(self):
        # Each test serves its own queue, so leftovers of one never reach another.
        self.queue = self.id().rsplit(".", 1)[-1]
        self.reg = self.client.register("rest", queues=[self.queue], max_concurrency=2)

    def submit(self, payload=None, **fields):
        return self.client.submit("job", payload, queue=self.queue, **fields)

    def take(self, n=1):
        tasks = self.client.request_tasks(self.reg.agent_id, self.reg.token, n, wait_s=2)
        self.assertEqual(len(tasks), n)
        return tasks

    def test_request_start_progress_complete_loop(self):
        ids = {self.submit({"n": n}): n for n in range(3)}
        done = 0
        while done < 3:
            for task in self.client.request_tasks(self.reg.agent_id, self.reg.token, 2, wait_s=2):
                self.assertEqual(task["status"], "assigned")
                self.assertEqual(self.client.start(task["id"], self.reg.token)["status"],
                                 "running")
                shown = self.client.progress(task["id"], self.reg.token, 0.5, "half")
                self.assertEqual(shown["progress"], {"value": 0.5, "message": "half"})
                finished = self.client.complete(task["id"], self.reg.token,
                                                {"double": task["payload"]["n"] * 2})
                self.assertEqual(finished["status"], "succeeded")
                done += 1
        for task_id, n in ids.items():
            task = self.client.wait(task_id, timeout=5)
            self.assertEqual((task["status"], task["result"], task["agent_id"]),
                             ("succeeded", {"double": n * 2}, self.reg.agent_id))

    def test_long_poll_outlasts_the_client_timeout_and_ends_empty(self):
        started = time.monotonic()
        tasks = self.client.request_tasks(self.reg.agent_id, self.reg.token, 1, wait_s=1.5)
        self.assertEqual(tasks, [])
        self.assertGreaterEqual(time.monotonic() - started, 1.3)

    def test_long_poll_wakes_on_submit(self):
        threading.Timer(0.3, self.submit, ("wake",)).start()
        started = time.monotonic()
        tasks = self.client.request_tasks(self.reg.agent_id, self.reg.token, 1, wait_s=10)
        self.assertEqual([t["payload"] for t in tasks], ["wake"])
        self.assertLess(time.monotonic() - started, 5)

    def test_fail_retryable_is_scheduled_and_not_retryable_is_dead(self):
        retry = self.submit("retry", max_attempts=3)
        final = self.submit("final", max_attempts=3)
        for task in self.take(2):
            retryable = task["payload"] == "retry"
            self.client.fail(task["id"], self.reg.token, f"{task['payload']} broke", retryable)
        scheduled = self.client.get(retry)
        self.assertEqual((scheduled["status"], scheduled["error"]), ("scheduled", "retry broke"))
        self.assertIsNotNone(scheduled["run_at"])
        dead = self.client.get(final)
        self.assertEqual((dead["status"], dead["error"]), ("dead", "final broke"))

    def test_cancel_reaches_the_agent_by_heartbeat_and_completion_conflicts(self):
        task_id = self.submit()
        self.take()
        self.client.cancel(task_id)
        self.assertEqual(self.client.heartbeat(self.reg.agent_id, self.reg.token), [task_id])
        with self.assertRaises(Conflict):
            self.client.complete(task_id, self.reg.token, "late")
        self.assertEqual(self.client.get(task_id)["status"], "cancelled")

    def test_another_agents_resources(self):
        other = self.client.register("other", queues=[self.queue])
        task_id = self.submit()
        self.take()
        with self.assertRaises(Forbidden) as caught:
            self.client.heartbeat(self.reg.agent_id, other.token)
        self.assertEqual(caught.exception.status, 403)
        with self.assertRaises(Conflict):
            self.client.complete(task_id, other.token, "stolen")
        self.assertEqual(self.client.get(task_id)["status"], "assigned")

    def test_deregister_hands_held_tasks_back(self):
        task_id = self.submit()
        self.take()
        self.client.deregister(self.reg.agent_id, self.reg.token)
        with self.assertRaises(NotFound):
            self.client.agent(self.reg.agent_id)
        self.assertEqual(self.client.get(task_id)["status"], "pending")


if __name__ == "__main__":
    unittest.main()
