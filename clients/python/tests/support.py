"""Shared by the tests: import paths for the package and the server's integration harness,
and servers tuned for short tests (1 s heartbeats) so the whole suite stays fast."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
SOURCE_DIR = os.environ.get("PM_AGENT_SOURCE_DIR",
                            os.path.abspath(os.path.join(PACKAGE_ROOT, "..", "..")))
sys.path.insert(0, PACKAGE_ROOT)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))

from harness import Server  # noqa: E402  (needs the path above)

FAST_AGENTS = {"heartbeat_interval_s": 1, "heartbeat_timeout_s": 3, "lease_timeout_s": 5}


def fast_server(**sections):
    """A memory-store server with short agent timings; `sections` add or override config."""
    config = {"agents": dict(FAST_AGENTS)}
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return Server(config=config)


class Proxy:
    """A TCP relay in front of a server, so tests can cut an agent's connection (as a dead
    NAT or load balancer would) or swap the server behind a fixed address."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self._pairs = set()
        self._listener = None

    async def start(self):
        import asyncio
        self._listener = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def drop(self):
        """Resets every relayed connection at once."""
        for writer in list(self._pairs):
            writer.transport.abort()
        self._pairs.clear()

    async def close(self):
        self.drop()
        self._listener.close()
        await self._listener.wait_closed()

    async def _relay(self, reader, writer):
        import asyncio
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._pairs.update((writer, up_writer))

        async def pump(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
