"""`Agent`: an asyncio agent over the WebSocket protocol (API.md, "WebSocket").

The agent registers on `/ws/agent` once and from then on reconnects to `/ws/agent/{id}`
with its own token, so the server keeps its identity and leases across a dropped
connection or a draining worker. Local handlers keep running while the agent is away: API.md
says a reconnecting agent's leases carry on, and outcomes the server never acknowledged are
sent again on the next connection (completion is idempotent for the lease holder; if the
lease was lost meanwhile the server answers `error` and the result is dropped, which is the
at-least-once contract).

Flow control follows the credit rules: after `registered` the agent grants the slots it has
free with one `ready`; the server credits a slot back by itself on every acknowledged
completion, failure or cancel, so `ready` is only sent again for slots the server did not
credit (an outcome refused with `error`).
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import signal
import urllib.parse
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import websockets
import websockets.exceptions

from .backoff import backoff_delay
from .errors import AgentError, NonRetryableError, PmAgentError
from .http import HTTPClient

log = logging.getLogger("pm_agent_client.agent")

Handler = Callable[["AgentTask"], Awaitable[Any]]

_HELD = frozenset({"assigned", "running"})
_CLOSE_POLICY = 1008
_CLOSE_REPLACED = 4001


class AgentTask:
    """One assignment, as handed to the handler: the Task object of API.md in `data`, plus
    `progress()` to report progress (which also renews the agent's leases)."""

    def __init__(self, agent: "Agent", data: dict[str, Any]) -> None:
        self._agent = agent
        self.data = data
        self.id: str = data["id"]
        self.type: str = data["type"]
        self.payload: Any = data.get("payload")
        self.attempts: int = data.get("attempts", 0)

    async def progress(self, value: float, message: str | None = None) -> None:
        """Reports progress in [0, 1]. Dropped while disconnected: it is advisory."""
        if not 0 <= value <= 1:
            raise ValueError("progress must be between 0 and 1")
        frame: dict[str, Any] = {"type": "progress", "task_id": self.id, "progress": value}
        if message is not None:
            frame["message"] = message
        await self._agent._send_progress(frame)


@dataclass(frozen=True)
class _SessionEnd:
    registered: bool
    reconnect_after: float = 0.0


class Agent:
    """A WebSocket agent running `handler` for each task, at most `max_concurrency` at once.

    `url` is the server's base URL (`http://host:port`, or `ws://`). `token` is a registration
    token when the server wants one; `agent_id` + `agent_token` resume an agent registered
    before. A handler's return value is the task's result; an exception fails the task
    (retryable, unless it is a `NonRetryableError`); a server `cancel` cancels the handler's
    asyncio task. `run()` returns after `stop()`, or raises `AgentError` when reconnecting
    cannot help (token refused, connection replaced by another of this agent).
    """

    def __init__(self, url: str, handler: Handler, *, name: str = "python-agent",
                 queues: list[str] | None = None, capabilities: list[str] | None = None,
                 labels: dict[str, str] | None = None, max_concurrency: int = 1,
                 token: str | None = None, agent_id: str | None = None,
                 agent_token: str | None = None, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0, open_timeout: float = 10.0,
                 drain_timeout: float = 30.0, deregister_on_stop: bool = True,
                 max_message_size: int = 2 ** 24) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if (agent_id is None) != (agent_token is None):
            raise ValueError("agent_id and agent_token go together")
        backoff_delay(0, backoff_base, backoff_cap)  # validates the pair early
        self._ws_base, http_base = _bases(url)
        self._http = HTTPClient(http_base, timeout=open_timeout)
        self._handler = handler
        self._spec: dict[str, Any] = {"name": name, "max_concurrency": max_concurrency}
        for key, value in (("queues", queues), ("capabilities", capabilities),
                           ("labels", labels)):
            if value is not None:
                self._spec[key] = value
        self.max_concurrency = max_concurrency
        self._registration_token = token
        self.agent_id = agent_id
        self.agent_token = agent_token
        self._registered_here = agent_id is None
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.open_timeout = open_timeout
        self.drain_timeout = drain_timeout
        self.deregister_on_stop = deregister_on_stop
        self.max_message_size = max_message_size
        self.heartbeat_interval_s = 15.0
        self.heartbeat_timeout_s = 45.0
        self._ws: websockets.WebSocketClientProtocol | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._unacked: dict[str, dict[str, Any]] = {}
        self._progress_inflight: collections.Counter[str] = collections.Counter()
        self._settled = asyncio.Event()
        self._settled.set()
        self._connected = asyncio.Event()
        self._stop = asyncio.Event()
        self._drain_on_stop = True
        self._draining = False
        self._finished = asyncio.Event()
        self._started = False
        self._seq = 0
        self._last_rx = 0.0
        self.connections = 0

    # Public control ----------------------------------------------------------------------

    @property
    def running(self) -> frozenset[str]:
        """Ids of the tasks whose handlers are running now."""
        return frozenset(self._running)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Returns once a connection is registered (for start-up ordering and tests)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    def request_stop(self, drain: bool = True) -> None:
        """Asks `run()` to end; safe from a handler or a signal handler. With `drain`, no new
        task is taken, running ones may finish within `drain_timeout`."""
        self._drain_on_stop = drain
        self._stop.set()

    async def stop(self, drain: bool = True) -> None:
        """`request_stop` and wait until `run()` has ended (not from inside a handler)."""
        self.request_stop(drain)
        await self._finished.wait()

    async def run(self) -> None:
        """Connects, serves and reconnects until stopped; see the class docstring."""
        if self._started:
            raise RuntimeError("an Agent runs once")
        self._started = True
        connection = asyncio.create_task(self._connection_loop())
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({connection, stop}, return_when=asyncio.FIRST_COMPLETED)
            if connection.done():
                connection.result()  # only ever ends by raising AgentError
                return
            if self._drain_on_stop:
                await self._drain()
            await self._halt(connection)
            if self.deregister_on_stop and self.agent_id is not None:
                await self._deregister()
        finally:
            stop.cancel()
            await self._halt(connection)
            self._http.close()
            self._finished.set()

    # Connections -------------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        attempt = 0
        while True:
            end = await self._session()
            if end.registered:
                attempt = 0
            delay = end.reconnect_after + backoff_delay(attempt, self.backoff_base,
                                                        self.backoff_cap)
            attempt += 1
            log.info("agent %s: reconnecting in %.2f s", self.agent_id, delay)
            await asyncio.sleep(delay)

    async def _session(self) -> _SessionEnd:
        """One connection from upgrade to close. Returns how it ended; raises `AgentError`
        when the server refused the agent for good."""
        try:
            ws = await self._open()
        except websockets.exceptions.InvalidStatusCode as exc:
            return self._refused_upgrade(exc.status_code)
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as exc:
            log.warning("agent %s: cannot connect: %r", self.agent_id, exc)
            return _SessionEnd(registered=False)
        self.connections += 1
        heartbeats: asyncio.Task[None] | None = None
        reconnect_after = 0.0
        try:
            await self._handshake(ws)
            self._ws = ws
            self._connected.set()
            for frame in list(self._unacked.values()):
                await ws.send(json.dumps(frame))
            await self._grant(self.max_concurrency - len(self._running))
            heartbeats = asyncio.create_task(self._heartbeats(ws))
            async for raw in ws:
                self._last_rx = asyncio.get_running_loop().time()
                message = _parse(raw)
                if message is None:
                    log.warning("agent %s: unreadable frame ignored", self.agent_id)
                elif message.get("type") == "draining":
                    reconnect_after = float(message.get("reconnect_after_s") or 0)
                else:
                    await self._dispatch(message)
        except asyncio.TimeoutError:
            log.warning("agent %s: no 'registered' within %s s", self.agent_id,
                        self.open_timeout)
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self._ws = None
            self._connected.clear()
            self._progress_inflight.clear()
            if heartbeats is not None:
                heartbeats.cancel()
            await ws.close()
        self._check_close(ws)
        return _SessionEnd(registered=self._last_rx > 0, reconnect_after=reconnect_after)

    async def _open(self) -> websockets.WebSocketClientProtocol:
        if self.agent_id is None:
            path, bearer = "/ws/agent", self._registration_token
        else:
            path, bearer = f"/ws/agent/{self.agent_id}", self.agent_token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        self._last_rx = 0.0
        return await websockets.connect(self._ws_base + path, extra_headers=headers,
                                        open_timeout=self.open_timeout, ping_interval=None,
                                        close_timeout=2, max_size=self.max_message_size)

    def _refused_upgrade(self, status: int) -> _SessionEnd:
        """401/403 on `/ws/agent/{id}` after this process registered means the server no
        longer knows the agent (a memory store restarted): register again as a new agent.
        Anywhere else a refused token is final; other statuses (503 draining) are retried."""
        if status not in (401, 403):
            log.warning("agent %s: upgrade answered %d", self.agent_id, status)
            return _SessionEnd(registered=False)
        if self.agent_id is not None and self._registered_here:
            log.warning("agent %s: the server no longer knows this agent; registering again",
                        self.agent_id)
            self._forget_identity()
            return _SessionEnd(registered=False)
        raise AgentError(f"the server refused the agent's token ({status})")

    def _forget_identity(self) -> None:
        """The old identity's leases are gone with it: its handlers' results have nowhere
        to go, so they are cancelled."""
        self.agent_id = None
        self.agent_token = None
        self._unacked.clear()
        for task in self._running.values():
            task.cancel()
        self._update_settled()

    async def _handshake(self, ws: websockets.WebSocketClientProtocol) -> None:
        if self.agent_id is None:
            register = {"type": "register", **self._spec}
            await ws.send(json.dumps(register))
        try:
            raw = await asyncio.wait_for(ws.recv(), self.open_timeout)
        except websockets.exceptions.ConnectionClosed:
            self._check_close(ws)
            raise
        message = _parse(raw) or {}
        if message.get("type") == "error":
            raise AgentError(f"registration refused: {message.get('code')}: "
                             f"{message.get('message')}")
        if message.get("type") != "registered":
            raise AgentError(f"expected 'registered', got {raw!r}")
        self._last_rx = asyncio.get_running_loop().time()
        if self.agent_id is None:
            self.agent_id = message["agent_id"]
            self.agent_token = message["token"]
        self.heartbeat_interval_s = float(message["heartbeat_interval_s"])
        self.heartbeat_timeout_s = float(message["heartbeat_timeout_s"])
        log.info("agent %s: connected", self.agent_id)

    def _check_close(self, ws: websockets.WebSocketClientProtocol) -> None:
        """Close codes after which reconnecting is wrong (API.md, README)."""
        received = ws.close_rcvd
        if received is None:
            return
        if received.code == _CLOSE_REPLACED:
            raise AgentError("replaced by a newer connection of this agent (4001)")
        if received.code == _CLOSE_POLICY:
            raise AgentError(f"closed by the server (1008): {received.reason}")

    async def _heartbeats(self, ws: websockets.WebSocketClientProtocol) -> None:
        """Heartbeats at the announced interval; a server silent past the announced timeout
        (no ack, no frame) is taken for dead, and the connection is closed to reconnect."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            if loop.time() - self._last_rx > self.heartbeat_timeout_s:
                log.warning("agent %s: server silent, reconnecting", self.agent_id)
                await ws.close(4000, "no answer from the server")
                return
            self._seq += 1
            await self._send({"type": "heartbeat", "running": sorted(self._running),
                              "seq": self._seq})

    # Messages ----------------------------------------------------------------------------

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "task":
            self._start_task(message["task"])
        elif kind == "cancel":
            task = self._running.get(message.get("task_id", ""))
            if task is not None:  # a cancel for a task not running here is a repeat: ignored
                task.cancel()
        elif kind == "ack":
            await self._answered(message.get("task_id"), message.get("status") not in _HELD,
                                 True)
        elif kind == "error":
            if message.get("task_id"):
                await self._answered(message["task_id"], True, False)
            else:
                log.warning("agent %s: server error %s: %s", self.agent_id,
                            message.get("code"), message.get("message"))

    async def _answered(self, task_id: str | None, final: bool, accepted: bool) -> None:
        """An `ack` or `error` about a task. The server answers frames in order, so while
        progress frames of the task are unanswered this answer is theirs."""
        if task_id is None:
            return
        if self._progress_inflight[task_id] > 0:
            self._progress_inflight[task_id] -= 1
            return
        if final and self._unacked.pop(task_id, None) is not None:
            if not accepted:
                log.warning("agent %s: outcome of %s refused (lease lost)", self.agent_id,
                            task_id)
                await self._grant(1)
            self._update_settled()

    def _start_task(self, data: dict[str, Any]) -> None:
        task_id = data["id"]
        if task_id in self._running:
            return
        self._running[task_id] = asyncio.create_task(self._run_handler(AgentTask(self, data)))
        self._update_settled()

    async def _run_handler(self, task: AgentTask) -> None:
        try:
            result = await self._handler(task)
            frame = {"type": "complete", "task_id": task.id, "result": result}
            try:
                json.dumps(frame, allow_nan=False)
            except (TypeError, ValueError) as exc:
                frame = _fail_frame(task.id, f"result is not JSON: {exc}", False)
        except asyncio.CancelledError:
            return  # by the server's `cancel` (it freed the slot) or by stop(): no outcome
        except NonRetryableError as exc:
            frame = _fail_frame(task.id, _describe(exc), False)
        except Exception as exc:  # the handler's failure is the task's, not the agent's
            log.info("agent %s: task %s failed: %r", self.agent_id, task.id, exc)
            frame = _fail_frame(task.id, _describe(exc), True)
        finally:
            self._running.pop(task.id, None)
            self._update_settled()
        self._unacked[task.id] = frame
        self._update_settled()
        await self._send(frame)

    async def _grant(self, slots: int) -> None:
        if slots > 0 and not self._draining:
            await self._send({"type": "ready", "slots": slots})

    async def _send_progress(self, frame: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            return
        self._progress_inflight[frame["task_id"]] += 1
        try:
            await ws.send(json.dumps(frame))
        except websockets.exceptions.ConnectionClosed:
            pass

    async def _send(self, frame: dict[str, Any]) -> None:
        """Sends on the current connection; without one the frame waits in `_unacked` (an
        outcome) or is dropped (heartbeat, ready: the next connection sends its own)."""
        ws = self._ws
        if ws is None:
            return
        try:
            await ws.send(json.dumps(frame))
        except websockets.exceptions.ConnectionClosed:
            pass

    # Stopping ----------------------------------------------------------------------------

    def _update_settled(self) -> None:
        if self._running or self._unacked:
            self._settled.clear()
        else:
            self._settled.set()

    async def _drain(self) -> None:
        """Stops new assignments (the agent's REST heartbeat with status `draining`: WebSocket
        has no such frame), then waits for running handlers and their acknowledgements."""
        self._draining = True
        if self.agent_id is not None:
            try:
                await asyncio.to_thread(self._http.heartbeat, self.agent_id, self.agent_token,
                                        "draining")
            except (PmAgentError, OSError) as exc:
                log.warning("agent %s: could not mark draining: %r", self.agent_id, exc)
        try:
            await asyncio.wait_for(self._settled.wait(), self.drain_timeout)
        except asyncio.TimeoutError:
            log.warning("agent %s: drain timed out with %d task(s) running", self.agent_id,
                        len(self._running))

    async def _halt(self, connection: asyncio.Task[None]) -> None:
        """Closes the connection (or ends the reconnect wait), then cancels what still runs;
        no outcome is sent for those (deregistration or lease expiry hands them back)."""
        connection.cancel()
        await asyncio.gather(connection, return_exceptions=True)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _deregister(self) -> None:
        """Hands unfinished tasks back at once instead of after `heartbeat_timeout_s`."""
        try:
            await asyncio.to_thread(self._http.deregister, self.agent_id, self.agent_token)
        except (PmAgentError, OSError) as exc:
            log.warning("agent %s: deregistration failed: %r", self.agent_id, exc)


def run_agent(url: str, handler: Handler, **options: Any) -> None:
    """Runs an `Agent` until SIGINT or SIGTERM, which drain it (a script's main loop)."""

    async def main() -> None:
        agent = Agent(url, handler, **options)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.request_stop)
        await agent.run()

    asyncio.run(main())


def _bases(url: str) -> tuple[str, str]:
    """(ws base, http base) from either form of the server's URL."""
    parts = urllib.parse.urlsplit(url)
    pairs = {"http": ("ws", "http"), "https": ("wss", "https"),
             "ws": ("ws", "http"), "wss": ("wss", "https")}
    if parts.scheme not in pairs or not parts.netloc:
        raise ValueError(f"url must be http(s):// or ws(s)://host[:port], got {url!r}")
    ws_scheme, http_scheme = pairs[parts.scheme]
    path = parts.path.rstrip("/")
    return (f"{ws_scheme}://{parts.netloc}{path}", f"{http_scheme}://{parts.netloc}{path}")


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    if isinstance(raw, bytes):
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _fail_frame(task_id: str, error: str, retryable: bool) -> dict[str, Any]:
    return {"type": "fail", "task_id": task_id, "error": error, "retryable": retryable}


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
