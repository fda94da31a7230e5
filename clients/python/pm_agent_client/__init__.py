"""pm_agent_client: the Python SDK of pm-agent-server.

`HTTPClient` submits, reads and cancels tasks (and drives REST agents); `Agent` runs an
asyncio handler for tasks pushed over WebSocket, reconnecting with full-jitter back-off.
The wire contract is API.md; nothing here adds to it.
"""
from .agent import Agent, AgentTask, run_agent
from .backoff import backoff_delay
from .errors import (AgentError, ApiError, BadRequest, Conflict, Forbidden, InternalError,
                     MethodNotAllowed, NonRetryableError, NotFound, PayloadTooLarge,
                     PmAgentError, QueueFull, RateLimited, TransportError, Unauthorized,
                     Unavailable)
from .http import FINISHED, HTTPClient, Registration

__version__ = "0.1.0"

__all__ = [
    "Agent", "AgentTask", "run_agent", "backoff_delay", "HTTPClient", "Registration",
    "FINISHED", "PmAgentError", "ApiError", "TransportError", "AgentError",
    "NonRetryableError", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
    "MethodNotAllowed", "Conflict", "PayloadTooLarge", "RateLimited", "QueueFull",
    "Unavailable", "InternalError",
]
