"""Agent over WebSocket against the real server: end to end, failures, progress, concurrency,
cancels, reconnects (dropped socket, restarted server), drain and the fatal close codes."""
import asyncio
import signal
import subprocess
import sys
import unittest

import support
from pm_agent_client import Agent, AgentError, HTTPClient, NonRetryableError, NotFound

STEP = 10  # seconds any single expected event may take on a loaded machine


async def call(fn, *args, **kwargs):
    """Blocking HTTPClient calls run off the loop, which the agent under test shares."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def until(predicate, timeout=STEP):
    async def poll():
        while not await predicate():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


class AgentCase(unittest.IsolatedAsyncioTestCase):
    config = {}

    async def asyncSetUp(self):
        self.server = support.fast_server(**self.config)
        self.client = HTTPClient(self.server.base)
        self.runs = []

    async def asyncTearDown(self):
        for agent, run in self.runs:
            agent.request_stop(drain=False)
            await asyncio.gather(run, return_exceptions=True)
        self.client.close()
        self.server.stop()

    async def start_agent(self, handler, url=None, **options):
        options.setdefault("backoff_base", 0.1)
        options.setdefault("backoff_cap", 0.5)
        agent = Agent(url or self.server.base, handler, **options)
        run = asyncio.create_task(agent.run())
        self.runs.append((agent, run))
        await agent.wait_connected(STEP)
        return agent, run

    async def status_of(self, task_id):
        return (await call(self.client.get, task_id))["status"]


class EndToEndTest(AgentCase):
    config = {"queue": {"retry_base_s": 60, "retry_max_s": 120}}

    async def test_submit_and_wait(self):
        async def handle(task):
            return {"echo": task.payload, "type": task.type, "attempts": task.attempts}

        agent, _ = await self.start_agent(handle, name="e2e")
        task_id = await call(self.client.submit, "echo", {"x": [1, 2]})
        task = await call(self.client.wait, task_id, STEP, 0.05)
        self.assertEqual(task["status"], "succeeded")
        self.assertEqual(task["result"], {"echo": {"x": [1, 2]}, "type": "echo", "attempts": 1})
        self.assertEqual(task["agent_id"], agent.agent_id)

    async def test_exception_fails_retryable_and_non_retryable_is_dead(self):
        async def handle(task):
            if task.payload == "permanent":
                raise NonRetryableError("bad input")
            raise ValueError("flaky")

        await self.start_agent(handle)
        flaky = await call(self.client.submit, "x", "transient", max_attempts=3)
        permanent = await call(self.client.submit, "x", "permanent", max_attempts=3)
        await until(lambda: self._status_in(flaky, {"scheduled"}))
        task = await call(self.client.get, flaky)
        self.assertEqual((task["error"], task["attempts"]), ("flaky", 1))
        self.assertIsNotNone(task["run_at"])
        task = await call(self.client.wait, permanent, STEP, 0.05)
        self.assertEqual((task["status"], task["error"], task["attempts"]),
                         ("dead", "bad input", 1))

    async def _status_in(self, task_id, statuses):
        return await self.status_of(task_id) in statuses

    async def test_unserializable_result_fails_the_task_not_the_agent(self):
        async def handle(task):
            return {"value": object()} if task.payload == "odd" else "fine"

        await self.start_agent(handle)
        odd = await call(self.client.submit, "x", "odd", max_attempts=1)
        task = await call(self.client.wait, odd, STEP, 0.05)
        self.assertEqual(task["status"], "dead")
        self.assertIn("not JSON", task["error"])
        ok = await call(self.client.submit, "x", "plain")
        self.assertEqual((await call(self.client.wait, ok, STEP, 0.05))["result"], "fine")

    async def test_progress_is_reported_and_completion_still_acknowledged(self):
        release = asyncio.Event()

        async def handle(task):
            await task.progress(0.5, "half way")
            await release.wait()
            return "done"

        agent, _ = await self.start_agent(handle)
        task_id = await call(self.client.submit, "x")

        async def has_progress():
            task = await call(self.client.get, task_id)
            return task["status"] == "running" and task["progress"] == {
                "value": 0.5, "message": "half way"}

        await until(has_progress)
        release.set()
        self.assertEqual((await call(self.client.wait, task_id, STEP, 0.05))["result"], "done")
        await until(lambda: _async(not agent._unacked))

    async def test_at_most_max_concurrency_handlers_run_at_once(self):
        active, peak = 0, 0

        async def handle(task):
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.3)
            active -= 1
            return task.payload

        await self.start_agent(handle, max_concurrency=2)
        ids = await call(self.client.submit_batch, [{"type": "x", "payload": n} for n in range(5)])
        results = [(await call(self.client.wait, i, STEP, 0.05))["result"] for i in ids]
        self.assertEqual(results, list(range(5)))
        self.assertEqual(peak, 2)


async def _async(value):
    return value


class CancelTest(AgentCase):
    async def test_cancel_cancels_the_handler_and_frees_the_slot(self):
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def handle(task):
            if task.payload != "block":
                return "next"
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        agent, _ = await self.start_agent(handle, max_concurrency=1)
        blocked = await call(self.client.submit, "x", "block")
        await asyncio.wait_for(started.wait(), STEP)
        self.assertEqual((await call(self.client.cancel, blocked))["status"], "cancelled")
        await asyncio.wait_for(cancelled.wait(), STEP)
        self.assertEqual(agent.running, frozenset())
        follow = await call(self.client.submit, "x", "after")
        task = await call(self.client.wait, follow, STEP, 0.05)
        self.assertEqual((task["status"], task["result"]), ("succeeded", "next"))
        self.assertEqual((await call(self.client.get, blocked))["status"], "cancelled")


class ReconnectTest(AgentCase):
    async def test_dropped_socket_reconnects_with_the_same_identity_and_lease(self):
        proxy = await support.Proxy(self.server.port).start()
        self.addAsyncCleanup(proxy.close)
        started, release = asyncio.Event(), asyncio.Event()

        async def handle(task):
            if task.payload == "first":
                started.set()
                await release.wait()
            return task.payload

        agent, _ = await self.start_agent(handle, url=proxy.base)
        agent_id = agent.agent_id
        first = await call(self.client.submit, "x", "first")
        await asyncio.wait_for(started.wait(), STEP)
        proxy.drop()
        release.set()  # finishes while disconnected: the outcome waits for the next connection
        task = await call(self.client.wait, first, STEP, 0.05)
        self.assertEqual((task["status"], task["result"], task["attempts"]),
                         ("succeeded", "first", 1))
        self.assertGreaterEqual(agent.connections, 2)
        self.assertEqual(agent.agent_id, agent_id)
        self.assertEqual([a["id"] for a in await call(lambda: list(self.client.agents()))],
                         [agent_id])
        second = await call(self.client.submit, "x", "second")
        self.assertEqual((await call(self.client.wait, second, STEP, 0.05))["result"], "second")

    async def test_restarted_server_gets_a_new_registration(self):
        proxy = await support.Proxy(self.server.port).start()
        self.addAsyncCleanup(proxy.close)

        async def handle(task):
            return "ok"

        agent, _ = await self.start_agent(handle, url=proxy.base)
        old_id = agent.agent_id
        await asyncio.to_thread(self.server.stop)  # drains: `draining`, then close 1001
        self.server = support.fast_server()
        self.client.close()
        self.client = HTTPClient(self.server.base)
        proxy.upstream_port = self.server.port
        task_id = await call(self.client.submit, "x")
        task = await call(self.client.wait, task_id, STEP, 0.05)
        self.assertEqual(task["status"], "succeeded")
        self.assertNotEqual(agent.agent_id, old_id)
        self.assertEqual(task["agent_id"], agent.agent_id)


class StopTest(AgentCase):
    async def test_drain_finishes_running_work_takes_nothing_new_and_deregisters(self):
        started = asyncio.Event()

        async def handle(task):
            started.set()
            await asyncio.sleep(0.5)
            return task.payload

        agent, run = await self.start_agent(handle, max_concurrency=1)
        first = await call(self.client.submit, "x", "first")
        second = await call(self.client.submit, "x", "second")
        await asyncio.wait_for(started.wait(), STEP)
        await asyncio.wait_for(agent.stop(drain=True), STEP)
        self.assertTrue(run.done())
        self.assertEqual((await call(self.client.get, first))["status"], "succeeded")
        left = await call(self.client.get, second)
        self.assertEqual((left["status"], left["agent_id"], left["attempts"]),
                         ("pending", None, 0))  # never assigned, not handed back
        with self.assertRaises(NotFound):
            await call(self.client.agent, agent.agent_id)

    async def test_stop_without_drain_hands_running_work_back(self):
        started = asyncio.Event()

        async def handle(task):
            started.set()
            await asyncio.Event().wait()

        agent, _ = await self.start_agent(handle)
        task_id = await call(self.client.submit, "x")
        await asyncio.wait_for(started.wait(), STEP)
        await asyncio.wait_for(agent.stop(drain=False), STEP)
        self.assertEqual(await self.status_of(task_id), "pending")


class FatalTest(AgentCase):
    config = {"auth": {"registration_tokens": ["reg"]}}

    async def test_replaced_connection_ends_run_with_agent_error(self):
        async def handle(task):
            return None

        first, first_run = await self.start_agent(handle, token="reg")
        await self.start_agent(handle, agent_id=first.agent_id, agent_token=first.agent_token)
        with self.assertRaisesRegex(AgentError, "4001"):
            await asyncio.wait_for(first_run, STEP)

    async def test_refused_registration_token_ends_run_with_agent_error(self):
        async def handle(task):
            return None

        for token in (None, "wrong"):
            agent = Agent(self.server.base, handle, token=token)
            with self.assertRaises(AgentError):
                await asyncio.wait_for(agent.run(), STEP)


class RunAgentTest(unittest.TestCase):
    """`run_agent` is what a script calls: it serves until SIGTERM, then drains and exits."""

    SCRIPT = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from pm_agent_client import run_agent\n"
        "async def handle(task):\n"
        "    return task.payload\n"
        "run_agent(sys.argv[1], handle, name='script')\n")

    def test_script_serves_until_sigterm(self):
        with support.fast_server() as server, HTTPClient(server.base) as client:
            proc = subprocess.Popen([sys.executable, "-c", self.SCRIPT, server.base,
                                     support.PACKAGE_ROOT])
            try:
                task = client.wait(client.submit("x", "from a script"), timeout=STEP, poll=0.05)
                self.assertEqual(task["result"], "from a script")
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(STEP), 0)
                self.assertEqual(list(client.agents()), [])
            finally:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    unittest.main()
