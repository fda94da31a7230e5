"""The agent WebSocket protocol edges (API.md "WebSocket"), black-box: malformed and oversize
frames, reconnecting to /ws/agent/{id}, registration tokens. Each test starts its own server."""
import json
import unittest

from engine_client import (FAST_AGENTS, EngineWsTest, WsAgent, get_task, next_task,
                           resume_ws_agent, run, submit_ok, upgrade_status, ws_agent)


class MalformedMessages(EngineWsTest):
    config = {"agents": {**FAST_AGENTS, "read_message_max": 1024}}

    async def still_open(self, agent):
        await agent.send({"type": "heartbeat", "seq": 42})
        ack = await agent.expect("heartbeat_ack")
        self.assertEqual(ack["seq"], 42)
        self.assertIn("server_time", ack)

    def bad_message_answered_with_error(self, raw, field=None):
        async def scenario():
            agent = await ws_agent(self.server, "m")
            await agent.send(raw)
            msg = await agent.expect("error")
            self.assertEqual(msg["code"], "bad_request")
            self.assertIsInstance(msg["message"], str)
            if field:
                self.assertIn(field, msg["message"])
            await self.still_open(agent)
            await agent.close()

        run(scenario())

    def test_invalid_json_gets_error_and_connection_stays_open(self):
        self.bad_message_answered_with_error("{not json")

    def test_non_object_json_gets_error_and_connection_stays_open(self):
        self.bad_message_answered_with_error("[1, 2, 3]")

    def test_unknown_type_gets_error_and_connection_stays_open(self):
        self.bad_message_answered_with_error(json.dumps({"type": "dance"}))

    def test_missing_type_gets_error_and_connection_stays_open(self):
        self.bad_message_answered_with_error(json.dumps({"slots": 1}), "type")

    def test_complete_without_task_id_gets_error_naming_task_id(self):
        self.bad_message_answered_with_error(json.dumps({"type": "complete", "result": 1}),
                                             "task_id")

    def test_ready_with_bad_slots_gets_error_naming_slots(self):
        self.bad_message_answered_with_error(json.dumps({"type": "ready", "slots": "many"}),
                                             "slots")

    def test_second_register_on_one_connection_is_an_error(self):
        async def scenario():
            agent = await ws_agent(self.server, "twice")
            await agent.send({"type": "register", "name": "again"})
            msg = await agent.expect("error")
            self.assertIsInstance(msg["code"], str)
            await self.still_open(agent)
            await agent.close()

        run(scenario())

    def test_malformed_message_changes_nothing(self):
        async def scenario():
            agent = await ws_agent(self.server, "m", max_concurrency=1)
            await agent.ready(1)
            task_id = submit_ok(self.server, {"type": "x"})
            await next_task(agent)
            await agent.send('{"type": "complete", "task_id": "%s", "result": ' % task_id)
            await agent.expect("error")
            self.assertEqual(get_task(self.server, task_id)["status"], "assigned")
            await agent.close()

        run(scenario())

    def test_binary_frame_closes_with_1003(self):
        async def scenario():
            agent = await ws_agent(self.server, "bin")
            await agent.send(b"\x00\x01binary")
            return await agent.closed()

        self.assertEqual(run(scenario()), 1003)

    def test_message_over_read_message_max_closes_with_1009(self):
        async def scenario():
            agent = await ws_agent(self.server, "big")
            await agent.send(json.dumps({"type": "heartbeat", "seq": "x" * 4096}))
            return await agent.closed()

        self.assertEqual(run(scenario()), 1009)


class Reconnect(EngineWsTest):
    async def reconnect_answers_registered(self, connect):
        first = await ws_agent(self.server, "phoenix", max_concurrency=1)
        agent_id, token = first.agent_id, first.token
        self.assertTrue(token)
        await first.ready(1)
        task_id = submit_ok(self.server, {"type": "survives"})
        await next_task(first)
        await first.close()

        again = await connect(agent_id, token)
        # No `register` sent: the server speaks first.
        msg = await again.expect("registered")
        self.assertEqual(msg["agent_id"], agent_id)
        for key in ("heartbeat_interval_s", "heartbeat_timeout_s", "lease_timeout_s"):
            self.assertIn(key, msg)
        # The lease carried on, and the task (never reported on) is pushed again: the
        # reconnected agent may complete it.
        repushed = await again.expect("task")
        self.assertEqual((repushed["task"]["id"], repushed["task"]["attempts"]), (task_id, 1))
        await again.complete(task_id, {"v": 1})
        ack = await again.expect("ack")
        self.assertEqual((ack["task_id"], ack["status"]), (task_id, "succeeded"))
        await again.close()

    def test_reconnect_with_header_token_answers_registered_without_register(self):
        run(self.reconnect_answers_registered(
            lambda agent_id, token: resume_ws_agent(self.server, agent_id, token)))

    def test_reconnect_with_query_token_answers_registered_without_register(self):
        run(self.reconnect_answers_registered(
            lambda agent_id, token: WsAgent.connect(self.server,
                                                    f"/ws/agent/{agent_id}?token={token}")))


class RegistrationToken(EngineWsTest):
    config = {"agents": FAST_AGENTS,
              "auth": {"submit_tokens": ["sub"], "admin_tokens": ["adm"],
                       "registration_tokens": ["reg"]}}

    def test_registration_token_in_the_upgrade_header_registers(self):
        async def scenario():
            agent = await ws_agent(self.server, "w", reg_token="reg")
            self.assertTrue(agent.agent_id.startswith("a_"))
            self.assertTrue(agent.token)
            await agent.close()

        run(scenario())

    def test_registration_token_in_the_register_message_registers(self):
        async def scenario():
            agent = await WsAgent.connect(self.server, "/ws/agent")
            msg = await agent.register("w", token="reg")
            self.assertEqual(msg["agent_id"], agent.agent_id)
            await agent.close()

        run(scenario())

    def test_bad_token_in_register_is_an_unauthorized_error_and_the_connection_closes(self):
        async def scenario():
            agent = await WsAgent.connect(self.server, "/ws/agent")
            await agent.send({"type": "register", "name": "w", "token": "nope"})
            msg = await agent.expect("error")
            self.assertEqual(msg["code"], "unauthorized")
            await agent.closed()

        run(scenario())

    def test_another_agents_token_on_its_socket_is_refused(self):
        async def scenario():
            a = await ws_agent(self.server, "a", reg_token="reg")
            b = await ws_agent(self.server, "b", reg_token="reg")
            status = await upgrade_status(self.server, f"/ws/agent/{b.agent_id}", a.token)
            await a.close()
            await b.close()
            return status

        self.assertEqual(run(scenario()), 403)


if __name__ == "__main__":
    unittest.main(verbosity=2)
