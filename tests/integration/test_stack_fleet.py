"""Through nginx with 2 workers on PostgreSQL + Redis (scripts/stack.sh): WebSocket agents
connected through nginx land on both workers, 2,000 tasks submitted through nginx are each
done exactly once and read back as succeeded through nginx; an idle agent survives twice the
ping interval behind nginx and still gets work; X-Request-ID is passed through or made. The
claim poll is slowed to 5 s, so tasks reach agents on the other worker promptly only through
the Redis wake-ups."""
import asyncio
import collections
import time
import unittest

from engine_client import Fleet, next_task, run, ws_agent
from pg_harness import NO_RATE_LIMIT, KeepAlive, get_all_tasks, parallel
from stack_harness import Stack

TASKS = 2000
AGENTS = 10
SLOTS = 4
PING_S = 2
CONFIG = dict(NO_RATE_LIMIT, agents={"heartbeat_interval_s": PING_S, "heartbeat_timeout_s": 6},
              database={"poll_interval_ms": 5000})


def setUpModule():
    global stack
    stack = Stack(workers=2, config=CONFIG)


def tearDownModule():
    stack.down()


def ws_connections(endpoint):
    return endpoint.request("GET", "/api/v1/stats")[2]["connections"]["ws"]


class ThroughNginx(unittest.TestCase):
    def test_2000_tasks_agents_on_both_workers_each_task_once(self):
        fleet = Fleet()

        submitted = [None] * TASKS

        def submit_all():
            conns = [KeepAlive(stack.nginx) for _ in range(8)]
            try:
                def one(t, n):
                    status, _, body = conns[t].request(
                        "POST", "/api/v1/tasks", {"type": "fleet", "queue": "fleet",
                                                  "payload": {"n": n}})
                    submitted[n] = (status, body)
                parallel(range(TASKS), one, 8)
            finally:
                for c in conns:
                    c.close()

        async def scenario():
            stop = asyncio.Event()
            agents = [await ws_agent(stack.nginx, f"a{i}", queues=["fleet"],
                                     max_concurrency=SLOTS) for i in range(AGENTS)]
            split = [ws_connections(w) for w in stack.workers]
            loops = [asyncio.create_task(fleet.run_agent(a, f"a{i}", stop, SLOTS))
                     for i, a in enumerate(agents)]
            await asyncio.to_thread(submit_all)
            accepted = {b["task_id"] for s, b in submitted if s == 202}
            deadline = time.monotonic() + 60
            while (time.monotonic() < deadline and not accepted <= fleet.acks.keys()
                   and not fleet.unexpected):
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # a second delivery would show up here
            stop.set()
            await asyncio.gather(*loops, return_exceptions=True)
            for a in agents:
                await a.close()
            return split

        split = run(scenario(), timeout=150)
        self.assertEqual(sum(split), AGENTS)
        self.assertTrue(all(n > 0 for n in split), f"agents per worker: {split}")
        self.assertEqual(collections.Counter(s for s, _ in submitted), {202: TASKS})
        ids = [b["task_id"] for _, b in submitted]
        self.assertEqual(fleet.unexpected, [])
        never = [t for t in ids if t not in fleet.received]
        self.assertEqual(never, [], f"{len(never)} never delivered\n{stack.logs()}")
        twice = {t: n for t, n in fleet.received.items() if len(n) != 1}
        self.assertEqual(twice, {}, "delivered more than once")
        self.assertEqual({t: a for t, a in fleet.acks.items() if a != ["succeeded"]}, {})
        answers = get_all_tasks([stack.nginx], ids, 4)[0]
        self.assertEqual({(s, b["status"]) for s, b in answers.values()}, {(200, "succeeded")})

    def test_idle_agent_stays_connected_past_twice_the_ping_interval(self):
        async def scenario():
            agent = await ws_agent(stack.nginx, "idle", queues=["idle"], max_concurrency=1)
            await agent.ready(1)
            await asyncio.sleep(2 * PING_S + 2)
            status, _, body = stack.nginx.request("POST", "/api/v1/tasks",
                                                  {"type": "wake", "queue": "idle"})
            self.assertEqual(status, 202, body)
            task = await next_task(agent, timeout=3)
            self.assertEqual(task["id"], body["task_id"])
            await agent.close()
        run(scenario(), timeout=30)

    def test_request_id_passed_through_or_made(self):
        _, headers, _ = stack.nginx.request("GET", "/health", headers={"X-Request-ID": "rid-42"})
        self.assertEqual(headers.get("x-request-id"), "rid-42")
        _, headers, _ = stack.nginx.request("GET", "/health")
        self.assertRegex(headers.get("x-request-id", ""), r"^[0-9a-f]{32}$")


if __name__ == "__main__":
    unittest.main()
