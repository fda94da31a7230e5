"""PostgreSQL store, two server processes on one database: 20 WebSocket agents split between
them, 5,000 tasks submitted to both alternately; every task runs exactly once (no lease is
lost here, so at-least-once delivery must deliver once), its result is stored, and both
servers report it succeeded."""
import asyncio
import collections
import time
import unittest

from engine_client import Fleet, register_rest_agent, run, submit_ok, ws_agent
from pg_harness import (NO_RATE_LIMIT, KeepAlive, PgCluster, get_all_tasks, parallel,
                        pg_server, stats, wait_for)

TASKS = 5000
AGENTS_PER_SERVER = 10
SLOTS = 8
SUBMIT_THREADS = 8
QUEUE = "two"
DONE_TIMEOUT = 90  # seconds for all 5,000 to be acknowledged once submitted


def setUpModule():
    global cluster
    cluster = PgCluster()


def tearDownModule():
    cluster.stop()


class TwoServers(unittest.TestCase):
    def test_a_rest_agent_alternating_servers_keeps_getting_tasks(self):
        # Behind nginx a REST agent's polls and completions land on either server. Its poll on
        # one server must see the slot its completion on the other freed (it used to wait out
        # wait_s with the task pending: that server still counted the task as running).
        db = cluster.create_database()
        first = pg_server(db, config=NO_RATE_LIMIT)
        self.addCleanup(first.stop)
        second = pg_server(db, config=NO_RATE_LIMIT)
        self.addCleanup(second.stop)
        agent_id, token = register_rest_agent(first, queues=["alternating"], max_concurrency=1)
        for round_ in range(4):
            task_id = submit_ok(second, {"type": "t", "queue": "alternating"})
            started = time.monotonic()
            status, _, got = first.request("POST", "/api/v1/tasks/request",
                                           {"agent_id": agent_id, "wait_s": 5}, token=token)
            self.assertEqual(status, 200, got)
            self.assertEqual([t["id"] for t in got["tasks"]], [task_id], f"round {round_}")
            self.assertLess(time.monotonic() - started, 2)  # the claim poll is 200 ms
            status, _, done = second.request("POST", f"/api/v1/tasks/{task_id}/complete", {},
                                             token=token)
            self.assertEqual((status, done["status"]), (200, "succeeded"))

    def test_5000_tasks_20_agents_two_servers_each_task_once(self):
        db = cluster.create_database()
        servers = [pg_server(db, config=NO_RATE_LIMIT)]
        self.addCleanup(servers[0].stop)
        servers.append(pg_server(db, config=NO_RATE_LIMIT))  # after the first migrated
        self.addCleanup(servers[1].stop)
        self.assertNotEqual(stats(servers[0])["worker"], stats(servers[1])["worker"])

        fleet = Fleet()
        submitted = [None] * TASKS

        def submit_all():
            # Each thread keeps one connection to each server; task n goes to server n % 2.
            conns = [(KeepAlive(servers[0]), KeepAlive(servers[1]))
                     for _ in range(SUBMIT_THREADS)]
            try:
                def one(t, n):
                    status, _, body = conns[t][n % 2].request(
                        "POST", "/api/v1/tasks", {"type": "two", "queue": QUEUE,
                                                  "payload": {"n": n}})
                    submitted[n] = (status, body)
                parallel(range(TASKS), one, SUBMIT_THREADS)
            finally:
                for pair in conns:
                    for c in pair:
                        c.close()

        async def scenario():
            stop = asyncio.Event()
            agents, loops = [], []
            for si, server in enumerate(servers):
                for i in range(AGENTS_PER_SERVER):
                    name = f"s{si}-a{i}"
                    agent = await ws_agent(server, name, queues=[QUEUE],
                                           max_concurrency=SLOTS)
                    fleet.agent_ids[name] = agent.agent_id
                    agents.append(agent)
                    loops.append(asyncio.create_task(fleet.run_agent(agent, name, stop, SLOTS)))
            started = time.monotonic()
            await asyncio.to_thread(submit_all)
            submit_s = time.monotonic() - started
            accepted = {body["task_id"] for status, body in submitted if status == 202}
            deadline = time.monotonic() + DONE_TIMEOUT
            while time.monotonic() < deadline and not accepted <= fleet.acks.keys():
                if fleet.unexpected:
                    break
                await asyncio.sleep(0.1)
            # A little longer: a second delivery of a finished task would show up here.
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*loops, return_exceptions=True)
            for agent in agents:
                await agent.close()
            return submit_s, time.monotonic() - started

        submit_s, total_s = run(scenario(), timeout=DONE_TIMEOUT + 120)
        print(f"\n5000 tasks: submitted in {submit_s:.1f} s, all done in {total_s:.1f} s")

        statuses = collections.Counter(status for status, _ in submitted)
        self.assertEqual(statuses, {202: TASKS}, [s for s in submitted if s[0] != 202][:5])
        ids = [body["task_id"] for _, body in submitted]
        self.assertEqual(len(set(ids)), TASKS, "every submit has its own id")
        self.assertEqual(fleet.unexpected, [])

        never = [tid for tid in ids if tid not in fleet.received]
        self.assertEqual(len(never), 0, f"{len(never)} tasks never delivered, e.g. {never[:5]}")
        twice = {tid: names for tid, names in fleet.received.items() if len(names) != 1}
        self.assertEqual(twice, {}, "tasks delivered more than once")
        self.assertEqual(set(fleet.received), set(ids), "a task nobody submitted was delivered")
        bad_acks = {tid: a for tid, a in fleet.acks.items() if a != ["succeeded"]}
        self.assertEqual(bad_acks, {}, "every completion acknowledged once, as succeeded")
        for si in range(2):
            got = sum(1 for names in fleet.received.values() if names[0].startswith(f"s{si}-"))
            self.assertGreater(got, 0, f"the agents of server {si} got no task")

        # Each server reads every task back from the shared database.
        answers = get_all_tasks(servers, ids, SUBMIT_THREADS)
        for si in range(2):
            for n, tid in enumerate(ids):
                status, task = answers[si][tid]
                self.assertEqual(status, 200, (si, tid, task))
                name = fleet.received[tid][0]
                self.assertEqual(task["status"], "succeeded", (si, task))
                self.assertEqual(task["result"], {"task_id": tid, "agent": name}, (si, task))
                self.assertEqual(task["agent_id"], fleet.agent_ids[name], (si, task))
                self.assertEqual(task["attempts"], 1, (si, task))
                self.assertEqual(task["payload"], {"n": n}, (si, task))
        for server in servers:
            wait_for(lambda: stats(server)["tasks"]["succeeded"] == TASKS, 10)
            s = stats(server)
            self.assertEqual(s["tasks"]["succeeded"], TASKS, s)
            self.assertEqual(s["queues"][QUEUE]["succeeded"], TASKS, s)
            self.assertEqual(s["tasks"]["pending"] + s["tasks"]["assigned"]
                             + s["tasks"]["running"], 0, s)


if __name__ == "__main__":
    unittest.main()
