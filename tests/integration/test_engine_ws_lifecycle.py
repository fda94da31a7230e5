"""WebSocket connection lifecycle of API.md: `draining` + close 1001 on SIGTERM, close 1013
past the connection limit, close 4000 for a peer silent past heartbeat_timeout_s, close 4001
for a connection its agent replaced by connecting again, and tasks pushed again to an agent
that reconnects without having reported on them."""
import base64
import os
import signal
import socket
import struct
import time
import unittest

from engine_client import (FAST_AGENTS, CLOSED, EngineWsTest, WsAgent, next_task,
                           resume_ws_agent, run, submit_ok, ws_agent)
from harness import Server


def raw_upgrade(port):
    """A WebSocket handshake by hand; returns the socket, handshake done, nothing else read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws/agent HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def server_frames(data):
    """(opcode, payload) of each unmasked server frame in data."""
    frames, i = [], 0
    while i + 2 <= len(data):
        op, n = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n = struct.unpack(">H", data[i:i + 2])[0]
            i += 2
        elif n == 127:
            n = struct.unpack(">Q", data[i:i + 8])[0]
            i += 8
        frames.append((op, data[i:i + n]))
        i += n
    return frames


class Drain(unittest.TestCase):
    def test_sigterm_sends_draining_then_closes_1001(self):
        server = Server(config={"agents": FAST_AGENTS, "server": {"shutdown_timeout_s": 5}})
        self.addCleanup(server.stop)

        async def scenario():
            agent = await ws_agent(server, "leaving")
            server.signal(signal.SIGTERM)
            msg = await agent.expect("draining")
            self.assertIn("reconnect_after_s", msg)
            closed = await agent.expect(CLOSED)
            return closed["code"]

        self.assertEqual(run(scenario()), 1001)
        self.assertEqual(server.wait(10), 0)


class ConnectionLimit(EngineWsTest):
    config = {"agents": FAST_AGENTS, "server": {"max_connections": 2}}

    def test_websocket_past_the_limit_is_closed_1013(self):
        async def scenario():
            held = [await ws_agent(self.server, f"w{i}") for i in range(2)]
            extra = await WsAgent.connect(self.server, "/ws/agent")
            closed = await extra.expect(CLOSED)
            for agent in held:
                await agent.close()
            return closed["code"]

        self.assertEqual(run(scenario()), 1013)

    def test_a_connection_that_never_registers_is_closed_1008_and_frees_its_slot(self):
        # It answers pings (the client library does), so only the register deadline ends it;
        # without one, two such connections held the limit against every real agent.
        async def scenario():
            idle = [await WsAgent.connect(self.server, "/ws/agent") for _ in range(2)]
            started = time.monotonic()
            codes = [(await agent.closed(timeout=10)) for agent in idle]
            took = time.monotonic() - started
            agent = await ws_agent(self.server, "real")  # a slot is free again
            await agent.close()
            return codes, took

        codes, took = run(scenario())
        self.assertEqual(codes, [1008, 1008])
        self.assertLess(took, FAST_AGENTS["heartbeat_timeout_s"] + 3)


class Takeover(EngineWsTest):
    def test_reconnecting_closes_the_older_connection_4001_and_tasks_go_to_the_new_one(self):
        async def scenario():
            old = await ws_agent(self.server, "phoenix")
            await old.ready(1)
            new = await resume_ws_agent(self.server, old.agent_id, old.token)
            await new.expect("registered")
            code = await old.closed()
            await new.ready(1)
            task_id = submit_ok(self.server, {"type": "after-takeover"})
            task = await next_task(new)
            await new.close()
            return code, task_id, task["id"]

        code, submitted, pushed = run(scenario())
        self.assertEqual(code, 4001)
        self.assertEqual(pushed, submitted)


class Repush(EngineWsTest):
    def test_a_task_the_agent_never_reported_on_is_pushed_again_after_a_reconnect(self):
        # Its first push may have died unread with the connection; before, the task stayed
        # assigned for good (every heartbeat renewed its lease) and, with max_concurrency 1,
        # the agent never got work again.
        async def scenario():
            agent = await ws_agent(self.server, "flaky-net", max_concurrency=1)
            await agent.ready(1)
            task_id = submit_ok(self.server, {"type": "lost"})
            await next_task(agent)
            agent.drop()
            again = await resume_ws_agent(self.server, agent.agent_id, agent.token)
            await again.expect("registered")
            task = await next_task(again)  # no `ready`: it holds this slot already
            await again.complete(task["id"], {"ok": True})
            await again.expect("ack")
            await again.close()
            return task_id, task

        task_id, task = run(scenario())
        self.assertEqual((task["id"], task["attempts"]), (task_id, 1))


class Silence(EngineWsTest):
    def test_a_peer_that_never_answers_is_closed_4000(self):
        s = raw_upgrade(self.server.port)
        started = time.monotonic()
        time.sleep(FAST_AGENTS["heartbeat_timeout_s"] + 1.5)  # pings go unanswered meanwhile
        s.settimeout(2)
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
                if any(op == 0x8 for op, _ in server_frames(data)):
                    break
        except socket.timeout:
            pass
        s.close()
        closes = [payload for op, payload in server_frames(data) if op == 0x8]
        self.assertTrue(closes, f"no close frame in {data!r}")
        self.assertEqual(struct.unpack(">H", closes[0][:2])[0], 4000)
        self.assertLess(time.monotonic() - started, 8)


if __name__ == "__main__":
    unittest.main(verbosity=2)
