"""Through Redis, 2 workers act as one (scripts/stack.sh: PostgreSQL, Redis, nginx): a task
submitted on worker 2 reaches an idle agent on worker 1 at once, a cancel sent to worker 2
reaches the agent holding the task on worker 1 at once, an agent reconnecting to worker 2
has its older connection on worker 1 closed (4001) at once (the claim poll is 5 s and the ping
interval 10 s, so nothing but Redis can explain either), one client hitting both workers is
held to one shared limit; Redis stopped: serving continues, /ready degraded, the limit falls
back to limit / 2 per worker; Redis back: ready again, wake-ups resume, no restart."""
import asyncio
import time
import unittest

from engine_client import next_task, resume_ws_agent, run, ws_agent, wait_until
from pg_harness import KeepAlive
from stack_harness import Stack

RATE = 20
CONFIG = {
    "agents": {"heartbeat_interval_s": 10, "heartbeat_timeout_s": 30},
    "database": {"poll_interval_ms": 5000},
    "rate_limit": {"submit_per_s": RATE, "submit_burst": RATE,
                   "agent_per_s": 1000, "agent_burst": 1000},
    "redis": {"timeout_ms": 200},
}
PROMPT_S = 1.5  # well under the poll (5 s) and the ping interval (10 s)


def setUpModule():
    global stack, w1, w2
    stack = Stack(workers=2, config=CONFIG)
    w1, w2 = stack.workers


def tearDownModule():
    stack.down()


def submit(endpoint, queue):
    return endpoint.request("POST", "/api/v1/tasks", {"type": "x", "queue": queue})


def hammer(seconds):
    """One client alternating between both workers as fast as it can: (accepted, answers)."""
    conns = [KeepAlive(w1), KeepAlive(w2)]
    accepted = answers = 0
    other = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, _, _ = conns[answers % 2].request("POST", "/api/v1/tasks",
                                                  {"type": "x", "queue": "limited"})
        answers += 1
        accepted += status == 202
        if status not in (202, 429):
            other.append(status)
    for c in conns:
        c.close()
    return accepted, answers, other


def ready_status(endpoint):
    return endpoint.request("GET", "/ready")[2]


class AcrossWorkers(unittest.TestCase):
    def wake_up_crosses(self, queue):
        async def scenario():
            agent = await ws_agent(w1, "idle", queues=[queue], max_concurrency=1)
            await agent.ready(1)
            await asyncio.sleep(0.3)
            status, _, body = await asyncio.to_thread(submit, w2, queue)
            self.assertEqual(status, 202, body)
            started = time.monotonic()
            task = await next_task(agent, timeout=PROMPT_S)
            self.assertEqual(task["id"], body["task_id"])
            await agent.close()
            return time.monotonic() - started
        return run(scenario(), timeout=30)

    def test_1_wake_up_and_cancel_cross_workers(self):
        took = self.wake_up_crosses("wake")
        print(f"\nwake-up across workers: {took * 1000:.0f} ms")

        async def cancel_scenario():
            agent = await ws_agent(w1, "holder", queues=["held"], max_concurrency=1)
            await agent.ready(1)
            status, _, body = await asyncio.to_thread(submit, w2, "held")
            self.assertEqual(status, 202)
            task = await next_task(agent, timeout=PROMPT_S)
            status, _, _ = await asyncio.to_thread(
                w2.request, "POST", f"/api/v1/tasks/{task['id']}/cancel")
            self.assertEqual(status, 200)
            msg = await agent.expect("cancel", timeout=PROMPT_S)
            self.assertEqual(msg["task_id"], task["id"])
            # Its slot is free (API.md): the next task comes without another `ready`.
            status, _, body = await asyncio.to_thread(submit, w2, "held")
            self.assertEqual(status, 202)
            task = await next_task(agent, timeout=PROMPT_S)
            self.assertEqual(task["id"], body["task_id"])
            await agent.close()
        run(cancel_scenario(), timeout=30)

    def test_1b_reconnecting_elsewhere_closes_the_older_connection(self):
        # Before, worker 1 kept the stale connection (until the ping timeout, 30 s here) and
        # pushed tasks into it that the agent never saw.
        async def scenario():
            old = await ws_agent(w1, "moving", queues=["moved"], max_concurrency=1)
            await old.ready(1)
            status, _, held = await asyncio.to_thread(submit, w1, "moved")
            self.assertEqual(status, 202)
            await next_task(old, timeout=PROMPT_S)
            new = await resume_ws_agent(w2, old.agent_id, old.token)
            await new.expect("registered")
            code = await old.closed(timeout=PROMPT_S)
            # The task it held and never reported on is pushed again by worker 2.
            task = await next_task(new, timeout=PROMPT_S)
            self.assertEqual(task["id"], held["task_id"])
            await new.complete(task["id"])
            status, _, body = await asyncio.to_thread(submit, w1, "moved")
            self.assertEqual(status, 202)
            task = await next_task(new, timeout=PROMPT_S)  # its slot came back with the ack
            self.assertEqual(task["id"], body["task_id"])
            await new.close()
            return code
        self.assertEqual(run(scenario(), timeout=30), 4001)

    def test_2_rate_limit_is_shared_then_falls_back_then_recovers(self):
        self.assertEqual(ready_status(w1), {"status": "ready"})
        started = time.monotonic()
        accepted, answers, other = hammer(3.0)
        elapsed = time.monotonic() - started
        allowed = RATE + RATE * elapsed
        print(f"\nshared limit: {accepted} of {answers} accepted in {elapsed:.1f} s "
              f"(limit {allowed:.0f})")
        self.assertEqual(other, [])
        self.assertLessEqual(accepted, 1.05 * allowed + 1)
        self.assertGreater(accepted, 0.5 * allowed)

        stack.redis("halt")
        try:
            degraded = wait_until(lambda: ready_status(w1).get("status") == "degraded" and
                                  ready_status(w2).get("status") == "degraded", 10)
            self.assertTrue(degraded, ready_status(w1))
            # Serving continues; each worker holds the client to limit / 2 on its own.
            time.sleep(1.5)  # let the buckets refill
            started = time.monotonic()
            accepted, answers, other = hammer(2.0)
            elapsed = time.monotonic() - started
            self.assertEqual(other, [])
            self.assertGreater(answers, accepted)
            self.assertLessEqual(accepted, 1.05 * (RATE + RATE * elapsed) + 2)
            self.assertGreater(accepted, 0)
        finally:
            stack.redis("start")
        self.assertTrue(wait_until(lambda: ready_status(w1) == {"status": "ready"} and
                                   ready_status(w2) == {"status": "ready"}, 15),
                        ready_status(w1))
        self.wake_up_crosses("after-outage")


if __name__ == "__main__":
    unittest.main()
