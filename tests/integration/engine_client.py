"""Client-side helpers for the engine integration tests: a WebSocket agent (asyncio +
websockets), REST agent registration and task submission, all strictly over the wire."""
import asyncio
import collections
import json
import time
import unittest

import websockets
import websockets.exceptions

from harness import Server

# Bounded waits: generous enough for a loaded 2-core machine, short enough to fail fast.
STEP_TIMEOUT = 5.0

CLOSED = "__closed__"


def auth_headers(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


class WsAgent:
    """One WebSocket agent connection. A reader task queues every message the server sends
    (parsed JSON for text frames); when the connection ends a `{"type": "__closed__",
    "code": <close code or None>}` marker is queued, so tests await events instead of sleeping."""

    def __init__(self, ws):
        self.ws = ws
        self.messages = asyncio.Queue()
        self.agent_id = None
        self.token = None
        self.close_code = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, server, path="/ws/agent", token=None, max_size=2 ** 24, **kwargs):
        ws = await asyncio.wait_for(
            websockets.connect(f"ws://{server.host}:{server.port}{path}",
                               extra_headers=auth_headers(token), max_size=max_size,
                               open_timeout=STEP_TIMEOUT, **kwargs),
            STEP_TIMEOUT)
        return cls(ws)

    async def _read(self):
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    await self.messages.put({"type": "__binary__", "data": raw})
                else:
                    await self.messages.put(json.loads(raw))
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.close_rcvd
            self.close_code = rcvd.code if rcvd is not None else None
            await self.messages.put({"type": CLOSED, "code": self.close_code})

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def next(self, timeout=STEP_TIMEOUT):
        """The next message; asyncio.TimeoutError when none comes in time."""
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def expect(self, type_, timeout=STEP_TIMEOUT):
        """The next message, which must have `type_`."""
        msg = await self.next(timeout)
        if msg.get("type") != type_:
            raise AssertionError(f"expected a {type_!r} message, got {msg!r}")
        return msg

    async def nothing_for(self, seconds):
        """Asserts no message arrives within `seconds` (used to prove an absence)."""
        try:
            msg = await asyncio.wait_for(self.messages.get(), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"expected no message, got {msg!r}")

    async def closed(self, timeout=STEP_TIMEOUT):
        """Waits for the end of the connection, skipping other messages; its close code."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.next(max(0.01, deadline - time.monotonic()))
            if msg["type"] == CLOSED:
                return msg["code"]

    async def register(self, name="worker", token=None, **fields):
        """Sends `register` and awaits `registered`; remembers the agent's id and token."""
        body = {"type": "register", "name": name, **fields}
        if token is not None:
            body["token"] = token
        await self.send(body)
        msg = await self.expect("registered")
        self.agent_id = msg["agent_id"]
        self.token = msg.get("token")
        return msg

    async def ready(self, slots):
        await self.send({"type": "ready", "slots": slots})

    async def complete(self, task_id, result=None):
        await self.send({"type": "complete", "task_id": task_id, "result": result})

    async def close(self):
        await self.ws.close()
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):
            pass

    def drop(self):
        """Drops the TCP connection without a close frame (a vanished peer)."""
        self.ws.transport.abort()

    def go_silent(self):
        """Stops reading the socket: pings go unanswered while TCP stays up (a hung peer)."""
        self.ws.transport.pause_reading()


async def ws_agent(server, name="worker", reg_token=None, **fields):
    """A newly registered agent on `/ws/agent`, registration token in the upgrade header."""
    agent = await WsAgent.connect(server, "/ws/agent", token=reg_token)
    await agent.register(name, **fields)
    return agent


async def resume_ws_agent(server, agent_id, token):
    """A known agent reconnecting on `/ws/agent/{id}` with its own token."""
    agent = await WsAgent.connect(server, f"/ws/agent/{agent_id}", token=token)
    agent.agent_id, agent.token = agent_id, token
    return agent


async def upgrade_status(server, path, token=None):
    """The HTTP status of a refused WebSocket upgrade (None if the upgrade succeeded)."""
    try:
        ws = await WsAgent.connect(server, path, token=token)
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    return None


def register_rest_agent(server, name="rest-worker", token=None, **fields):
    """POST /api/v1/agents/register -> (agent_id, agent token)."""
    status, _, body = server.request("POST", "/api/v1/agents/register",
                                     {"name": name, **fields}, token=token)
    if status != 201:
        raise AssertionError(f"register: {status} {body}")
    return body["agent_id"], body["token"]


def submit(server, body, token=None, headers=None):
    """POST /api/v1/tasks -> (status, headers, body)."""
    return server.request("POST", "/api/v1/tasks", body, token=token, headers=headers)


def submit_ok(server, body, token=None):
    """Submits one task that must be accepted; its id."""
    status, _, resp = submit(server, body, token)
    if status != 202:
        raise AssertionError(f"submit {body}: {status} {resp}")
    return resp["task_id"]


def get_task(server, task_id, token=None):
    status, _, body = server.request("GET", f"/api/v1/tasks/{task_id}", token=token)
    if status != 200:
        raise AssertionError(f"GET task {task_id}: {status} {body}")
    return body


def run(coro, timeout=60):
    """Runs one async scenario with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# Short liveness settings so expiry tests finish in seconds.
FAST_AGENTS = {"heartbeat_interval_s": 1, "heartbeat_timeout_s": 2, "lease_timeout_s": 3}


def assert_error(test, status, body, want_status, code, mentions=None):
    """An API.md error answer: status, `error.code`, and a message naming `mentions`."""
    test.assertEqual(status, want_status, body)
    test.assertIsInstance(body, dict, body)
    test.assertEqual(body["error"]["code"], code, body)
    if mentions:
        test.assertIn(mentions, body["error"]["message"])


def wait_until(predicate, timeout):
    """Polls a condition only observable over REST (no event exists for it); bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


async def next_task(agent, timeout=5):
    """The next pushed `task`, skipping `ack`s (an ack and the next push may come in any order)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await agent.next(max(0.01, deadline - time.monotonic()))
        if msg["type"] == "task":
            return msg["task"]
        if msg["type"] != "ack":
            raise AssertionError(f"expected a task, got {msg!r}")


async def no_task_for(agent, seconds):
    """Asserts no `task` (nor anything but an `ack`) arrives within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            msg = await agent.next(left)
        except asyncio.TimeoutError:
            return
        if msg["type"] != "ack":
            raise AssertionError(f"expected no task, got {msg!r}")


class EngineRestTest(unittest.TestCase):
    """A fresh server per test, plus REST agent helpers."""

    config = {"agents": FAST_AGENTS}

    def setUp(self):
        self.server = Server(config=self.config)
        self.addCleanup(self.server.stop)

    def request_tasks(self, agent_id, token, wait_s=0, max_tasks=1, timeout=15):
        """POST /api/v1/tasks/request -> (status, body)."""
        status, _, body = self.server.request(
            "POST", "/api/v1/tasks/request",
            {"agent_id": agent_id, "max_tasks": max_tasks, "wait_s": wait_s}, token=token,
            timeout=timeout)
        return status, body

    def take_one(self, agent_id, token, wait_s=5):
        """One task assigned to the REST agent (long poll); fails the test if none comes."""
        status, body = self.request_tasks(agent_id, token, wait_s=wait_s)
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["tasks"]), 1, body)
        return body["tasks"][0]

    def list_tasks(self, query=""):
        status, _, body = self.server.request("GET", "/api/v1/tasks" + query)
        self.assertEqual(status, 200, body)
        return body


class EngineWsTest(unittest.TestCase):
    """A fresh server per test."""

    config = {"agents": FAST_AGENTS}

    def setUp(self):
        self.server = Server(config=self.config)
        self.addCleanup(self.server.stop)


class Fleet:
    """What the agents saw: every task pushed to them, every ack, anything unexpected."""

    def __init__(self):
        self.received = collections.defaultdict(list)  # task id -> [agent name per push]
        self.acks = collections.defaultdict(list)      # task id -> [ack status]
        self.unexpected = []
        self.agent_ids = {}                            # agent name -> agent id

    async def run_agent(self, agent, name, stop, slots):
        """Grants `slots`, completes every task pushed, records it, until `stop` is set."""
        await agent.ready(slots)
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(agent.messages.get(), 0.5)
            except asyncio.TimeoutError:
                continue
            kind = msg.get("type")
            if kind == "task":
                task = msg["task"]
                self.received[task["id"]].append(name)
                await agent.complete(task["id"], {"task_id": task["id"], "agent": name})
            elif kind == "ack":
                self.acks[msg["task_id"]].append(msg.get("status"))
            elif kind == CLOSED:
                if not stop.is_set():
                    self.unexpected.append((name, msg))
                return
            else:
                self.unexpected.append((name, msg))
