"""The task/agent engine through the agent WebSocket (API.md "WebSocket"), black-box: priority
order under credit, credit caps, cancel and task timeouts reaching the agent, vanished agents,
delayed tasks, complete/progress/fail. Each test starts its own server."""
import time
import unittest

from engine_client import (FAST_AGENTS, EngineWsTest, WsAgent, get_task, next_task, no_task_for,
                           run, submit, submit_ok, ws_agent)


class PriorityOrder(EngineWsTest):
    def test_queued_tasks_are_pushed_highest_priority_first_fifo_within_priority(self):
        priorities = [0, 5, -3, 5, 10, 0, -3, 10, 0, 100, -100]

        async def scenario():
            agent = await ws_agent(self.server, "solo", max_concurrency=1)
            ids = [submit_ok(self.server, {"type": "p", "priority": p, "payload": {"i": i}})
                   for i, p in enumerate(priorities)]
            expected = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-priorities[i], i))]
            await agent.ready(1)
            got = []
            for _ in ids:
                task = await next_task(agent)
                got.append(task["id"])
                await agent.complete(task["id"], {"ok": True})
            await agent.close()
            return expected, got

        expected, got = run(scenario())
        self.assertEqual(got, expected)


class Credit(EngineWsTest):
    def test_ready_beyond_max_concurrency_is_capped(self):
        async def scenario():
            agent = await ws_agent(self.server, "capped", max_concurrency=2)
            ids = [submit_ok(self.server, {"type": "c", "payload": {"i": i}}) for i in range(5)]
            await agent.ready(10)
            held = [(await next_task(agent))["id"] for _ in range(2)]
            await no_task_for(agent, 0.5)  # running 2 == max_concurrency: no third push
            await agent.complete(held[0], None)
            third = await next_task(agent)  # the completion credited one slot back
            await no_task_for(agent, 0.5)
            await agent.close()
            return ids, held + [third["id"]]

        ids, got = run(scenario())
        self.assertEqual(got, ids[:3])

    def test_no_task_is_pushed_before_ready(self):
        async def scenario():
            agent = await ws_agent(self.server, "idle", max_concurrency=3)
            task_id = submit_ok(self.server, {"type": "c"})
            await agent.nothing_for(0.5)  # 0 credit after `registered`
            await agent.ready(1)
            self.assertEqual((await next_task(agent))["id"], task_id)
            await agent.close()

        run(scenario())


class Cancel(EngineWsTest):
    async def holding_agent(self):
        agent = await ws_agent(self.server, "holder", max_concurrency=1)
        await agent.ready(1)
        task_id = submit_ok(self.server, {"type": "long"})
        task = await next_task(agent)
        self.assertEqual(task["id"], task_id)
        return agent, task_id

    def test_cancel_returns_cancelled_task_and_reaches_the_holding_agent(self):
        async def scenario():
            agent, task_id = await self.holding_agent()
            status, _, body = self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel")
            self.assertEqual(status, 200, body)
            self.assertEqual(body["id"], task_id)
            self.assertEqual(body["status"], "cancelled")
            msg = await agent.expect("cancel")
            self.assertEqual(msg["task_id"], task_id)
            await agent.close()

        run(scenario())

    def test_complete_after_cancel_is_refused_and_task_stays_cancelled(self):
        async def scenario():
            agent, task_id = await self.holding_agent()
            status, _, _ = self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel")
            self.assertEqual(status, 200)
            await agent.expect("cancel")
            await agent.complete(task_id, {"late": True})
            msg = await agent.expect("error")
            self.assertEqual(msg["code"], "conflict")
            self.assertEqual(msg.get("task_id"), task_id)
            await agent.close()
            task = get_task(self.server, task_id)
            self.assertEqual(task["status"], "cancelled")
            self.assertIsNone(task["result"])

        run(scenario())

    def test_cancel_credits_the_slot_back(self):
        async def scenario():
            agent, task_id = await self.holding_agent()
            self.server.request("POST", f"/api/v1/tasks/{task_id}/cancel")
            await agent.expect("cancel")
            # max_concurrency 1 and no new `ready`: the next task arrives only if the
            # cancelled task's slot came back.
            next_id = submit_ok(self.server, {"type": "after"})
            task = await next_task(agent)
            self.assertEqual(task["id"], next_id)
            await agent.close()

        run(scenario())


class TaskTimeout(EngineWsTest):
    def test_task_held_past_timeout_s_is_cancelled_at_the_agent_and_released(self):
        async def scenario():
            agent = await ws_agent(self.server, "slow", max_concurrency=1)
            await agent.ready(1)
            task_id = submit_ok(self.server, {"type": "slow", "timeout_s": 1, "max_attempts": 1})
            await next_task(agent)
            msg = await agent.expect("cancel", timeout=5)
            self.assertEqual(msg["task_id"], task_id)
            await agent.close()
            task = get_task(self.server, task_id)
            self.assertEqual(task["status"], "dead")  # attempts == max_attempts
            self.assertIsInstance(task["error"], str)

        run(scenario())


class VanishedAgent(EngineWsTest):
    """heartbeat_timeout_s is 2. A is last heard no earlier than its registration and no later
    than the moment it vanishes, so its lease must be released (and the task re-delivered) no
    sooner than registration + 2 s and, allowing one ping interval and sweep, soon after
    vanish + 2 s."""

    async def redelivery(self, vanish):
        """A holds a task and vanishes -> (s from A's registration to re-delivery, s from the
        vanishing to re-delivery, the re-delivered task, B's id)."""
        registered_at = time.monotonic()
        a = await ws_agent(self.server, "a", max_concurrency=1)
        await a.ready(1)
        task_id = submit_ok(self.server, {"type": "fragile"})
        first = await next_task(a)
        self.assertEqual(first["attempts"], 1)
        b = await ws_agent(self.server, "b", max_concurrency=1)
        await b.ready(1)
        vanished_at = time.monotonic()
        vanish(a)
        task = await next_task(b, timeout=10)
        redelivered_at = time.monotonic()
        self.assertEqual(task["id"], task_id)
        a.drop()  # end the silent one's TCP connection too, so nothing lingers at shutdown
        await b.close()
        return redelivered_at - registered_at, redelivered_at - vanished_at, task, b.agent_id

    def check(self, vanish):
        since_registered, since_vanished, task, b_id = run(self.redelivery(vanish))
        self.assertEqual(task["attempts"], 2)
        self.assertEqual(task["agent_id"], b_id)
        self.assertEqual(task["status"], "assigned")
        self.assertGreaterEqual(since_registered, 1.9)  # not before the heartbeat timeout
        self.assertLess(since_vanished, 5)

    def test_tcp_drop_without_close_redelivers_after_heartbeat_timeout(self):
        self.check(WsAgent.drop)

    def test_silent_connection_redelivers_after_heartbeat_timeout(self):
        self.check(WsAgent.go_silent)


class OutboundQueue(EngineWsTest):
    # agents.outbound_queue_max bounds what waits for a peer that stopped reading; frames one
    # loop turn queues for a peer that reads are not that. A `ready` for more slots than the
    # limit, with that many tasks waiting, used to cut the agent off after one task (its
    # tasks went back to pending, an attempt spent each time).
    config = {"agents": {**FAST_AGENTS, "outbound_queue_max": 8}}

    def test_a_burst_larger_than_the_queue_limit_reaches_a_reading_agent(self):
        async def scenario():
            ids = [submit(self.server, {"type": "burst", "payload": {"i": i}})[2]["task_id"]
                   for i in range(50)]
            agent = await ws_agent(self.server, "eager", max_concurrency=50)
            await agent.ready(50)
            got = [(await next_task(agent, timeout=5))["id"] for _ in range(50)]
            self.assertEqual(sorted(got), sorted(ids))
            for task_id in got:  # 50 completions in a row: 50 acks, nothing cut off
                await agent.complete(task_id)
            acks = [await agent.expect("ack") for _ in range(50)]
            self.assertEqual({a["status"] for a in acks}, {"succeeded"})
            await agent.close()

        run(scenario())


class Delayed(EngineWsTest):
    def test_delayed_task_is_not_delivered_before_its_delay(self):
        async def scenario():
            agent = await ws_agent(self.server, "patient", max_concurrency=1)
            await agent.ready(1)
            submitted_at = time.monotonic()
            status, _, body = submit(self.server, {"type": "later", "delay_s": 1})
            self.assertEqual(status, 202, body)
            self.assertEqual(body["status"], "scheduled")
            await agent.nothing_for(0.8)
            task = await next_task(agent, timeout=4)
            arrived = time.monotonic() - submitted_at
            self.assertEqual(task["id"], body["task_id"])
            self.assertGreaterEqual(arrived, 0.95)
            self.assertLess(arrived, 4)
            await agent.close()

        run(scenario())


class CompleteOverWs(EngineWsTest):
    def test_complete_is_acked_and_result_stored(self):
        async def scenario():
            agent = await ws_agent(self.server, "w", max_concurrency=1)
            await agent.ready(1)
            task_id = submit_ok(self.server, {"type": "t", "payload": {"q": 1}})
            task = await next_task(agent)
            self.assertEqual(task["status"], "assigned")
            self.assertEqual(task["agent_id"], agent.agent_id)
            self.assertEqual(task["payload"], {"q": 1})
            await agent.complete(task_id, {"answer": [1, 2, 3]})
            ack = await agent.expect("ack")
            self.assertEqual((ack["task_id"], ack["status"]), (task_id, "succeeded"))
            await agent.close()
            stored = get_task(self.server, task_id)
            self.assertEqual(stored["status"], "succeeded")
            self.assertEqual(stored["result"], {"answer": [1, 2, 3]})

        run(scenario())

    def test_complete_of_another_agents_task_over_ws_is_conflict(self):
        async def scenario():
            a = await ws_agent(self.server, "a", max_concurrency=1)
            b = await ws_agent(self.server, "b", max_concurrency=1)
            await a.ready(1)
            task_id = submit_ok(self.server, {"type": "t"})
            await next_task(a)
            before = get_task(self.server, task_id)
            await b.complete(task_id, {"stolen": True})
            msg = await b.expect("error")
            self.assertEqual(msg["code"], "conflict")
            self.assertEqual(get_task(self.server, task_id), before)
            await a.close()
            await b.close()

        run(scenario())


class ProgressAndFail(EngineWsTest):
    def test_progress_is_acked(self):
        async def scenario():
            agent = await ws_agent(self.server, "w", max_concurrency=1)
            await agent.ready(1)
            task_id = submit_ok(self.server, {"type": "t"})
            await next_task(agent)
            await agent.send({"type": "progress", "task_id": task_id, "progress": 0.5,
                              "message": "half"})
            ack = await agent.expect("ack")
            self.assertEqual(ack["task_id"], task_id)
            self.assertIn(ack["status"], ("assigned", "running"))
            await agent.close()

        run(scenario())

    def test_non_retryable_fail_is_acked_dead_and_the_slot_comes_back(self):
        async def scenario():
            agent = await ws_agent(self.server, "w", max_concurrency=1)
            await agent.ready(1)
            task_id = submit_ok(self.server, {"type": "t"})
            await next_task(agent)
            await agent.send({"type": "fail", "task_id": task_id, "error": "broken",
                              "retryable": False})
            ack = await agent.expect("ack")
            self.assertEqual((ack["task_id"], ack["status"]), (task_id, "dead"))
            task = get_task(self.server, task_id)
            self.assertEqual((task["status"], task["error"]), ("dead", "broken"))
            next_id = submit_ok(self.server, {"type": "t"})
            self.assertEqual((await next_task(agent))["id"], next_id)
            await agent.close()

        run(scenario())


if __name__ == "__main__":
    unittest.main(verbosity=2)
