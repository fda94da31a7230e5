"""Exceptions of the client.

Every non-2xx answer of the server carries `{"error": {"code", "message"}}` (API.md,
"Errors"); `error_from_response` turns it into one class per code so that callers catch what
they can act on (`Conflict`, `RateLimited`, ...) instead of comparing status numbers.
"""
from __future__ import annotations

from typing import Any, Mapping


class PmAgentError(Exception):
    """Base class of everything this package raises on purpose."""


class TransportError(PmAgentError, ConnectionError):
    """The request did not get an answer (refused, reset, timed out).

    `maybe_processed` is true when the request had been sent: the server may have acted on it,
    which is why a non-idempotent call is never resent automatically.
    """

    def __init__(self, message: str, *, maybe_processed: bool) -> None:
        super().__init__(message)
        self.maybe_processed = maybe_processed


class ApiError(PmAgentError):
    """A non-2xx answer. `code` is the contract's snake_case code, `message` its text."""

    def __init__(self, status: int, code: str, message: str,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class BadRequest(ApiError):
    """400: the message names the offending field."""


class Unauthorized(ApiError):
    """401: missing or unknown token."""


class Forbidden(ApiError):
    """403: a valid token of the wrong kind, or another agent's resource."""


class NotFound(ApiError):
    """404: no such task or agent."""


class MethodNotAllowed(ApiError):
    """405."""


class Conflict(ApiError):
    """409: finished task, lease not held, idempotency key reused with another body."""


class PayloadTooLarge(ApiError):
    """413: the body exceeds `server.body_limit_bytes`."""


class RateLimited(ApiError):
    """429: wait `retry_after` seconds."""


class QueueFull(ApiError):
    """503 `queue_full`: the bounded queue is full; nothing was accepted."""


class Unavailable(ApiError):
    """503 `unavailable`: draining, at the connection limit, or the store is unreachable."""


class InternalError(ApiError):
    """500."""


class AgentError(PmAgentError):
    """The agent cannot go on: its token was refused or revoked, or it was replaced by a newer
    connection of the same agent (close 4001). Reconnecting would not help."""


class NonRetryableError(Exception):
    """Raise from a handler to report a failure with `retryable: false` (the task goes `dead`
    at once instead of being scheduled for another attempt)."""


_BY_CODE: dict[str, type[ApiError]] = {
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "method_not_allowed": MethodNotAllowed,
    "conflict": Conflict,
    "payload_too_large": PayloadTooLarge,
    "rate_limited": RateLimited,
    "queue_full": QueueFull,
    "unavailable": Unavailable,
    "internal": InternalError,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    409: Conflict, 413: PayloadTooLarge, 429: RateLimited, 500: InternalError, 503: Unavailable,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header; the server sends delta-seconds only."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_response(status: int, body: Any, headers: Mapping[str, str]) -> ApiError:
    """The exception for one error answer. A body without the contract's shape (a proxy's
    HTML page, say) still maps by status, with the raw text as the message."""
    code, message = "", ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("code", ""))
        message = str(body["error"].get("message", ""))
    elif isinstance(body, str):
        message = body[:500]
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, ApiError)
    retry_after = parse_retry_after(headers.get("retry-after"))
    return cls(status, code or f"http_{status}", message, retry_after)
