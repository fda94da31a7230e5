"""PostgreSQL store: a REST long poll whose client leaves gets no task. On PostgreSQL the poll
first waits for its agent's authentication (a store round trip), so the client may leave
before the poll waits, while it waits, or on a keep-alive connection right after an earlier
poll was answered. In every case the next task goes to the agent's next poll (attempts 1),
and the answer the departed poll still gets is dropped (the ASan pass of scripts/test.sh
aborts the server on a use-after-free)."""
import json
import socket
import time
import unittest

from engine_client import register_rest_agent, submit_ok
from pg_harness import NO_RATE_LIMIT, PgCluster, pg_server


def setUpModule():
    global cluster
    cluster = PgCluster()


def tearDownModule():
    cluster.stop()


def poll_bytes(agent_id, token, wait_s):
    body = json.dumps({"agent_id": agent_id, "wait_s": wait_s}).encode()
    return (b"POST /api/v1/tasks/request HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n\r\n" + body)


def read_response(sock):
    """One HTTP response with Content-Length: (status, parsed body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed mid-response: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split(b" ")[1]), json.loads(rest[:length])


class RestGone(unittest.TestCase):
    def setUp(self):
        self.server = pg_server(cluster.create_database(), config=NO_RATE_LIMIT)
        self.addCleanup(self.server.stop)
        self.agent_id, self.token = register_rest_agent(self.server, max_concurrency=1)

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.server.port), timeout=10)

    def next_poll_gets(self, task_id):
        status, _, answer = self.server.request(
            "POST", "/api/v1/tasks/request",
            {"agent_id": self.agent_id, "wait_s": 5}, token=self.token, timeout=15)
        self.assertEqual(status, 200, answer)
        self.assertEqual([t["id"] for t in answer["tasks"]], [task_id])
        self.assertEqual(answer["tasks"][0]["attempts"], 1)
        status, _, done = self.server.request(
            "POST", f"/api/v1/tasks/{task_id}/complete", {"result": {}}, token=self.token)
        self.assertEqual(status, 200, done)

    def test_a_client_leaving_while_its_poll_waits(self):
        for round_ in range(3):
            gone = self.connect()
            gone.sendall(poll_bytes(self.agent_id, self.token, 30))
            time.sleep(0.3)
            gone.close()
            time.sleep(0.3)
            self.next_poll_gets(submit_ok(self.server, {"type": "after", "payload": round_}))

    def test_a_client_leaving_before_its_poll_waits(self):
        for round_ in range(10):
            gone = self.connect()
            gone.sendall(poll_bytes(self.agent_id, self.token, 30))
            gone.close()  # at once: the agent's authentication is still in flight
            time.sleep(0.2)
            self.next_poll_gets(submit_ok(self.server, {"type": "early", "payload": round_}))

    def test_a_client_leaving_right_after_an_earlier_poll_on_its_connection(self):
        for round_ in range(10):
            first = submit_ok(self.server, {"type": "first", "payload": round_})
            conn = self.connect()
            conn.sendall(poll_bytes(self.agent_id, self.token, 5))
            status, answer = read_response(conn)
            self.assertEqual((status, [t["id"] for t in answer["tasks"]]), (200, [first]))
            status, _, _ = self.server.request(
                "POST", f"/api/v1/tasks/{first}/complete", {"result": {}}, token=self.token)
            self.assertEqual(status, 200)
            conn.sendall(poll_bytes(self.agent_id, self.token, 30))
            conn.close()
            time.sleep(0.2)
            self.next_poll_gets(submit_ok(self.server, {"type": "second", "payload": round_}))
        status, _, _ = self.server.request("GET", "/health")
        self.assertEqual(status, 200)
        self.assertIsNone(self.server.proc.poll(), "the server is still running")


if __name__ == "__main__":
    unittest.main()
