"""A fleet under load, black-box: 20 WebSocket agents (some with `gpu`) and 2,000 tasks submitted
over HTTP from several threads; every task is delivered exactly once, capability-matched, and
its result is stored."""
import asyncio
import threading
import unittest

from engine_client import CLOSED, run, ws_agent
from harness import Server, request_on

AGENTS = 20
GPU_AGENTS = {0, 5, 10, 15}
SLOTS = 4
SUBMITTERS = 5
PER_SUBMITTER = 400
TOTAL = SUBMITTERS * PER_SUBMITTER
BATCH = 25  # the last submitter uses batches, the others single submits


def is_gpu_task(n):
    return n % 5 == 0


def task_body(n):
    body = {"type": "fleet", "payload": {"n": n}}
    if is_gpu_task(n):
        body["required_capabilities"] = ["gpu"]
    return body


class Fleet(unittest.TestCase):
    def setUp(self):
        self.server = Server(config={
            "agents": {"heartbeat_interval_s": 1, "heartbeat_timeout_s": 5, "lease_timeout_s": 30},
            "rate_limit": {"submit_per_s": 100000, "submit_burst": 100000}})
        self.addCleanup(self.server.stop)

    def submitter(self, k):
        """Submits this thread's share over one keep-alive connection -> [(n, task_id)]."""
        out = []
        c = self.server.conn(timeout=30)
        numbers = list(range(k * PER_SUBMITTER, (k + 1) * PER_SUBMITTER))
        try:
            if k == SUBMITTERS - 1:
                for i in range(0, len(numbers), BATCH):
                    chunk = numbers[i:i + BATCH]
                    status, _, body = request_on(c, "POST", "/api/v1/tasks/batch",
                                                 {"tasks": [task_body(n) for n in chunk]})
                    if status != 202:
                        raise AssertionError(f"batch: {status} {body}")
                    out += list(zip(chunk, body["task_ids"]))
            else:
                for n in numbers:
                    status, _, body = request_on(c, "POST", "/api/v1/tasks", task_body(n))
                    if status != 202:
                        raise AssertionError(f"submit {n}: {status} {body}")
                    out.append((n, body["task_id"]))
        finally:
            c.close()
        return out

    async def fleet(self):
        agents = []
        for i in range(AGENTS):
            caps = ["gpu"] if i in GPU_AGENTS else []
            agents.append(await ws_agent(self.server, f"w{i}", capabilities=caps,
                                         max_concurrency=SLOTS))
        deliveries = []  # (task_id, receiving agent id, pushed task)
        problems = []
        acked = 0
        all_acked = asyncio.Event()

        async def work(agent):
            nonlocal acked
            await agent.ready(SLOTS)
            while True:
                msg = await agent.messages.get()
                if msg["type"] == "task":
                    task = msg["task"]
                    deliveries.append((task["id"], agent.agent_id, task))
                    await agent.complete(task["id"], {"n": task["payload"]["n"],
                                                      "by": agent.agent_id})
                elif msg["type"] == "ack":
                    if msg["status"] != "succeeded":
                        problems.append(msg)
                    acked += 1
                    if acked == TOTAL:
                        all_acked.set()
                elif msg["type"] == CLOSED:
                    problems.append((agent.agent_id, msg))
                    return
                else:
                    problems.append(msg)

        workers = [asyncio.create_task(work(a)) for a in agents]
        shares = await asyncio.gather(
            *[asyncio.to_thread(self.submitter, k) for k in range(SUBMITTERS)])
        try:
            await asyncio.wait_for(all_acked.wait(), 60)
        except asyncio.TimeoutError:
            problems.append(f"only {acked} of {TOTAL} completions acknowledged")
        for w in workers:
            w.cancel()
        for a in agents:
            await a.close()
        gpu_ids = {agents[i].agent_id for i in GPU_AGENTS}
        submitted = {task_id: n for share in shares for n, task_id in share}
        return submitted, deliveries, gpu_ids, problems

    def test_every_task_delivered_once_capability_matched_and_result_stored(self):
        submitted, deliveries, gpu_ids, problems = run(self.fleet(), timeout=120)
        self.assertEqual(problems, [])
        self.assertEqual(len(submitted), TOTAL)

        delivered_ids = [task_id for task_id, _, _ in deliveries]
        self.assertEqual(len(delivered_ids), len(set(delivered_ids)), "a task was delivered twice")
        self.assertEqual(set(delivered_ids), set(submitted), "tasks missing or unknown")

        receiver = {}
        for task_id, agent_id, task in deliveries:
            receiver[task_id] = agent_id
            self.assertEqual(task["agent_id"], agent_id)
            self.assertEqual(task["status"], "assigned")
            self.assertEqual(task["payload"], {"n": submitted[task_id]})
            if is_gpu_task(submitted[task_id]):
                self.assertIn(agent_id, gpu_ids, f"gpu task {task_id} went to a non-gpu agent")

        errors = []
        lock = threading.Lock()

        def check(ids):
            c = self.server.conn(timeout=30)
            try:
                for task_id in ids:
                    status, _, task = request_on(c, "GET", f"/api/v1/tasks/{task_id}")
                    want = {"n": submitted[task_id], "by": receiver[task_id]}
                    if (status != 200 or task["status"] != "succeeded" or task["result"] != want
                            or task["agent_id"] != receiver[task_id] or task["attempts"] != 1):
                        with lock:
                            errors.append((task_id, status, task))
            finally:
                c.close()

        ids = list(submitted)
        threads = [threading.Thread(target=check, args=(ids[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors[:5], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
