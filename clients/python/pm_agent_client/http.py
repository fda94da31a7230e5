"""`HTTPClient`: the REST API (API.md, "REST endpoints") for submitters, admins and REST agents.

Blocking and thread-safe: one client can be shared by many threads, its connections come
from a keep-alive pool. Resending is decided per call, because the server acts on a POST as
soon as it has read it: only GET/HEAD and submissions carrying an idempotency key are resent
after a dropped connection or (with `max_retries`) a 429/503 with `Retry-After`.
"""
from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

from ._pool import ConnectionPool
from .errors import ApiError, TransportError, error_from_response

FINISHED = frozenset({"succeeded", "dead", "cancelled"})
"""Statuses after which a task never changes again (API.md, "Timing, attempts, retention")."""

_ID = re.compile(r"[A-Za-z0-9._~-]+")
_RESENDABLE = (http.client.RemoteDisconnected, http.client.BadStatusLine,
               ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


@dataclass(frozen=True)
class Registration:
    """What `register` (or the WebSocket `registered` frame) tells a new agent."""
    agent_id: str
    token: str
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    lease_timeout_s: float

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "Registration":
        return cls(body["agent_id"], body["token"], body["heartbeat_interval_s"],
                   body["heartbeat_timeout_s"], body["lease_timeout_s"])


@dataclass(frozen=True)
class _Response:
    status: int
    headers: dict[str, str]
    body: Any


class HTTPClient:
    """Client of one server (or of the nginx in front of several).

    `token` is sent as `Authorization: Bearer` on every call that does not name its own
    (agent calls take the agent's token). `max_retries` > 0 makes idempotent calls wait out
    429/503 answers that carry `Retry-After`, sleeping at most `max_retry_wait` each time.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0, *,
                 pool_size: int = 4, max_retries: int = 0, max_retry_wait: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port], got {base_url!r}")
        self._prefix = url.path.rstrip("/")
        self._host_header = url.netloc
        self.token = token
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        default_port = 443 if url.scheme == "https" else 80
        self._pool = ConnectionPool(url.scheme, url.hostname, url.port or default_port,
                                    pool_size, timeout, ssl_context)

    @property
    def connections_opened(self) -> int:
        """TCP connections opened so far: a measure of how well keep-alive works."""
        return self._pool.opened

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> "HTTPClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Submitters -------------------------------------------------------------------------

    def submit(self, type: str, payload: Any = None, *, idempotency_key: str | None = None,
               **fields: Any) -> str:
        """Submits one task and returns its id, also for an idempotent repeat (200).

        `fields` are the other optional task fields of API.md (`queue`, `priority`,
        `required_capabilities`, `max_attempts`, `timeout_s`, `delay_s`, `run_at`); the
        server rejects unknown ones with a 400 naming them."""
        body: dict[str, Any] = {"type": type, **fields}
        if payload is not None:
            body["payload"] = payload
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        answer = self._call("POST", "/api/v1/tasks", body, idempotent=idempotency_key is not None)
        return answer["task_id"]

    def submit_batch(self, tasks: Iterable[Mapping[str, Any]]) -> list[str]:
        """Submits up to 1000 tasks all-or-nothing; ids come back in order. Resent only when
        every task carries an idempotency key (otherwise a resend could duplicate some)."""
        task_list = [dict(t) for t in tasks]
        idempotent = bool(task_list) and all(t.get("idempotency_key") for t in task_list)
        answer = self._call("POST", "/api/v1/tasks/batch", {"tasks": task_list},
                            idempotent=idempotent)
        return answer["task_ids"]

    def get(self, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/tasks/{_path_id(task_id)}")

    def list_tasks(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every task matching `filters` (`status`, `queue`, `type`, `agent_id`), newest
        first, fetched page by page as the iterator is consumed."""
        return self._paginate("/api/v1/tasks", page_size, filters)

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Cancels an unfinished task (409 `Conflict` for a finished one)."""
        return self._call("POST", f"/api/v1/tasks/{_path_id(task_id)}/cancel")

    def retry(self, task_id: str) -> dict[str, Any]:
        """Puts a `dead` or `cancelled` task back to `pending` (README extension)."""
        return self._call("POST", f"/api/v1/tasks/{_path_id(task_id)}/retry")

    def wait(self, task_id: str, timeout: float | None = None,
             poll: float = 0.25) -> dict[str, Any]:
        """Polls until the task is finished and returns it; `TimeoutError` after `timeout`
        seconds (None: wait for ever). The server has no completion push for submitters."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = self.get(task_id)
            if task["status"] in FINISHED:
                return task
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"task {task_id} still {task['status']} "
                                       f"after {timeout} s")
                time.sleep(min(poll, left))
            else:
                time.sleep(poll)

    # Admin ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/api/v1/stats")

    def agents(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every agent matching `filters` (`status`, `queue`), page by page."""
        return self._paginate("/api/v1/agents", page_size, filters)

    def agent(self, agent_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/agents/{_path_id(agent_id)}")

    # Agents over REST -------------------------------------------------------------------

    def register(self, name: str, *, queues: list[str] | None = None,
                 capabilities: list[str] | None = None, labels: dict[str, str] | None = None,
                 max_concurrency: int | None = None, token: str | None = None) -> Registration:
        """Registers an agent; `token` overrides the client's token (a registration token)."""
        body: dict[str, Any] = {"name": name}
        for key, value in (("queues", queues), ("capabilities", capabilities),
                           ("labels", labels), ("max_concurrency", max_concurrency)):
            if value is not None:
                body[key] = value
        return Registration.from_json(
            self._call("POST", "/api/v1/agents/register", body, token=token))

    def request_tasks(self, agent_id: str, agent_token: str, max_tasks: int = 1,
                      wait_s: float = 0) -> list[dict[str, Any]]:
        """Long-polls for up to `max_tasks` tasks, now assigned to the agent ([] when the
        wait ends empty). The socket timeout is stretched past `wait_s`."""
        body = {"agent_id": agent_id, "max_tasks": max_tasks, "wait_s": wait_s}
        answer = self._call("POST", "/api/v1/tasks/request", body, token=agent_token,
                            timeout=max(self.timeout, wait_s + 10))
        return answer["tasks"]

    def heartbeat(self, agent_id: str, agent_token: str,
                  status: str | None = None) -> list[str]:
        """Keeps the agent online and its leases alive; returns the ids of tasks it must
        stop (cancelled or timed out). `status` "draining" stops new assignments."""
        body = None if status is None else {"status": status}
        answer = self._call("POST", f"/api/v1/agents/{_path_id(agent_id)}/heartbeat", body,
                            token=agent_token)
        return answer["cancel"]

    def start(self, task_id: str, agent_token: str) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/tasks/{_path_id(task_id)}/start",
                          token=agent_token)

    def progress(self, task_id: str, agent_token: str, progress: float,
                 message: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"progress": progress}
        if message is not None:
            body["message"] = message
        return self._call("POST", f"/api/v1/tasks/{_path_id(task_id)}/progress", body,
                          token=agent_token)

    def complete(self, task_id: str, agent_token: str, result: Any = None) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/tasks/{_path_id(task_id)}/complete",
                          {"result": result}, token=agent_token)

    def fail(self, task_id: str, agent_token: str, error: str,
             retryable: bool = True) -> dict[str, Any]:
        return self._call("POST", f"/api/v1/tasks/{_path_id(task_id)}/fail",
                          {"error": error, "retryable": retryable}, token=agent_token)

    def deregister(self, agent_id: str, token: str | None = None) -> None:
        """Removes the agent (its own token, or an admin token); its unfinished tasks go
        back to pending at once."""
        self._call("DELETE", f"/api/v1/agents/{_path_id(agent_id)}", token=token)

    # Plumbing ---------------------------------------------------------------------------

    def _paginate(self, path: str, page_size: int,
                  filters: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        query = {k: v for k, v in filters.items() if v is not None}
        query["limit"] = page_size
        while True:
            page = self._call("GET", f"{path}?{urllib.parse.urlencode(query)}")
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]

    def _call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
              idempotent: bool | None = None, timeout: float | None = None) -> Any:
        """One API call: the parsed body of a 2xx, else the mapped `ApiError`."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        headers = {"Host": self._host_header, "Accept": "application/json"}
        bearer = token if token is not None else self.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            response = self._exchange(method, self._prefix + path, data, headers, idempotent,
                                      timeout or self.timeout)
            if 200 <= response.status < 300:
                return response.body
            error = error_from_response(response.status, response.body, response.headers)
            if not self._should_retry(error, idempotent, attempt):
                raise error
            attempt += 1
            time.sleep(min(error.retry_after or 0, self.max_retry_wait))

    def _should_retry(self, error: ApiError, idempotent: bool, attempt: int) -> bool:
        return (idempotent and attempt < self.max_retries and error.status in (429, 503)
                and error.retry_after is not None)

    def _exchange(self, method: str, path: str, data: bytes | None, headers: dict[str, str],
                  idempotent: bool, timeout: float) -> _Response:
        """Sends once, or again on another connection when a reused keep-alive connection
        turned out dead and the call is idempotent (a fresh connection's failure is final)."""
        while True:
            conn, reused = self._pool.acquire()
            try:
                return self._send_on(conn, method, path, data, headers, timeout)
            except _RESENDABLE as exc:
                if not (reused and idempotent):
                    raise TransportError(f"{method} {path}: {exc!r}",
                                         maybe_processed=True) from exc

    def _send_on(self, conn: http.client.HTTPConnection, method: str, path: str,
                 data: bytes | None, headers: dict[str, str], timeout: float) -> _Response:
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        sent = False
        try:
            conn.request(method, path, body=data, headers=headers)
            sent = True
            raw = conn.getresponse()
            payload = raw.read()
        except _RESENDABLE:
            conn.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if isinstance(exc, socket.timeout):
                message = f"{method} {path}: no answer within {timeout} s"
            else:
                message = f"{method} {path}: {exc!r}"
            raise TransportError(message, maybe_processed=sent) from exc
        self._pool.release(conn, not raw.will_close)
        response_headers = {k.lower(): v for k, v in raw.getheaders()}
        return _Response(raw.status, response_headers, _decode(payload, response_headers))


def _decode(payload: bytes, headers: Mapping[str, str]) -> Any:
    if not payload:
        return None
    text = payload.decode("utf-8", errors="replace")
    if headers.get("content-type", "").startswith("application/json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _path_id(value: str) -> str:
    """Ids go into paths as they are (the server never percent-decodes them), so anything
    that would change the path's meaning is refused here rather than sent."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"not a valid id: {value!r}")
    return value
