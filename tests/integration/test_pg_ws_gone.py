"""PostgreSQL store: a WebSocket agent that sends `complete` (or `heartbeat`, or reconnects)
and drops its connection at once. The store answers after the session is gone; that answer must
be dropped, not delivered to a freed session (the ASan pass of scripts/test.sh aborts the
server on such a use-after-free). The completions still count and the server keeps serving."""
import asyncio
import unittest

from engine_client import resume_ws_agent, run, submit_ok, ws_agent
from pg_harness import NO_RATE_LIMIT, PgCluster, pg_server, wait_for

ROUNDS = 20


def setUpModule():
    global cluster
    cluster = PgCluster()


def tearDownModule():
    cluster.stop()


class WsGone(unittest.TestCase):
    def test_answers_to_a_closed_connection_are_dropped(self):
        server = pg_server(cluster.create_database(), config=NO_RATE_LIMIT)
        try:
            async def scenario():
                ids = []
                for n in range(ROUNDS):
                    # A queue per round: no task of a later round goes to an earlier agent
                    # whose connection the server has not noticed is gone yet.
                    agent = await ws_agent(server, name="gone", queues=[f"q{n}"])
                    await agent.ready(1)
                    tid = submit_ok(server, {"type": "w", "queue": f"q{n}", "payload": {"n": n}})
                    ids.append(tid)
                    msg = await agent.expect("task")
                    self.assertEqual(msg["task"]["id"], tid)
                    await agent.complete(tid, {"n": n})
                    await agent.send({"type": "heartbeat", "seq": n})
                    agent.drop()  # no close frame: gone before the store answers
                    # Reconnect and vanish before `registered` (the attach answer comes late).
                    again = await resume_ws_agent(server, agent.agent_id, agent.token)
                    again.drop()
                return ids

            ids = run(scenario(), timeout=120)

            def all_succeeded():
                for tid in ids:
                    status, _, task = server.request("GET", f"/api/v1/tasks/{tid}")
                    if status != 200 or task["status"] != "succeeded":
                        return False
                return True

            self.assertTrue(wait_for(all_succeeded, 20), "every completion was stored")
            status, _, _ = server.request("GET", "/health")
            self.assertEqual(status, 200)
            self.assertIsNone(server.proc.poll(), "the server is still running")
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
