"""permessage-deflate (agents.permessage_deflate): negotiated when configured and offered,
messages flow compressed both ways; not negotiated by default."""
import unittest

from engine_client import (FAST_AGENTS, EngineWsTest, WsAgent, get_task, run, submit_ok)


class DeflateOn(EngineWsTest):
    config = {"agents": dict(FAST_AGENTS, permessage_deflate=True)}

    def test_compressed_agent_gets_and_completes_a_large_task(self):
        big = {"text": "lorem ipsum " * 500}

        async def scenario():
            agent = await WsAgent.connect(self.server, "/ws/agent")  # offers deflate by default
            self.assertEqual([e.name for e in agent.ws.extensions], ["permessage-deflate"])
            await agent.register("zipped", max_concurrency=1)
            await agent.ready(1)
            task_id = submit_ok(self.server, {"type": "big", "payload": big})
            pushed = await agent.expect("task")
            self.assertEqual(pushed["task"]["id"], task_id)
            self.assertEqual(pushed["task"]["payload"], big)
            await agent.complete(task_id, {"echo": big})
            await agent.ws.close()
            return task_id

        task_id = run(scenario())
        task = get_task(self.server, task_id)
        self.assertEqual(task["status"], "succeeded")
        self.assertEqual(task["result"], {"echo": big})


class DeflateOff(EngineWsTest):
    def test_not_negotiated_by_default(self):
        async def scenario():
            agent = await WsAgent.connect(self.server, "/ws/agent")
            extensions = list(agent.ws.extensions)
            await agent.ws.close()
            return extensions

        self.assertEqual(run(scenario()), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
