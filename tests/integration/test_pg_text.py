"""Text a store cannot keep gets the same 400 on every store. PostgreSQL's text holds no U+0000
(libpq cut such values short, silently storing "a" for "a\\u0000b", or the server refused them:
a 500) and no invalid UTF-8 (a filter or a raw path byte like 0xFF was a 500). Each case runs
against the memory store and PostgreSQL, which must answer alike; the valid request beside each
still succeeds, and nothing half-written is left behind."""
import json
import socket
import unittest

from engine_client import register_rest_agent, submit_ok
from harness import Server
from pg_harness import NO_RATE_LIMIT, PgCluster, pg_server

NUL = "a\u0000b"


def setUpModule():
    global cluster, servers
    cluster = PgCluster()
    servers = {"memory": Server(config=NO_RATE_LIMIT),
               "postgres": pg_server(cluster.create_database(), config=NO_RATE_LIMIT)}


def tearDownModule():
    for s in servers.values():
        s.stop()
    cluster.stop()


def raw_status(server, request_line):
    """Status and JSON body of one request whose target holds raw bytes."""
    s = socket.create_connection((server.host, server.port), timeout=10)
    try:
        s.sendall(request_line + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


class UnstorableText(unittest.TestCase):
    def each(self, check):
        for name, server in servers.items():
            with self.subTest(store=name):
                check(server)

    def expect_400(self, answer, field):
        status, _, body = answer
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["code"], "bad_request")
        self.assertTrue(body["error"]["message"].startswith(field), body)

    def test_submits_and_batches_refuse_nul(self):
        def check(server):
            for fields, field in [({"type": NUL}, "type"), ({"type": "t", "queue": NUL}, "queue"),
                                  ({"type": "t", "idempotency_key": NUL}, "idempotency_key"),
                                  ({"type": "t", "required_capabilities": [NUL]},
                                   "required_capabilities")]:
                self.expect_400(server.request("POST", "/api/v1/tasks", fields), field)
            self.expect_400(server.request("POST", "/api/v1/tasks/batch", {
                "tasks": [{"type": "nul-batch"}, {"type": NUL}]}), "tasks[1].type")
            status, _, page = server.request("GET", "/api/v1/tasks?type=nul-batch")
            self.assertEqual((status, page["items"]), (200, []))  # all or nothing
            # A payload is JSON and kept as JSON text: U+0000 stays, escaped.
            task_id = submit_ok(server, {"type": "t", "payload": {"k": NUL}})
            status, _, task = server.request("GET", f"/api/v1/tasks/{task_id}")
            self.assertEqual((status, task["payload"]), (200, {"k": NUL}))
        self.each(check)

    def test_agents_refuse_nul_in_what_they_register_and_report(self):
        def check(server):
            for fields, field in [({"name": NUL}, "name"), ({"name": "n", "queues": [NUL]}, "queues"),
                                  ({"name": "n", "labels": {"zone": NUL}}, "labels")]:
                self.expect_400(server.request("POST", "/api/v1/agents/register", fields), field)
            agent_id, token = register_rest_agent(server, queues=["text-q"])
            submit_ok(server, {"type": "t", "queue": "text-q"})
            status, _, got = server.request("POST", "/api/v1/tasks/request",
                                            {"agent_id": agent_id}, token=token)
            self.assertEqual(status, 200, got)
            task_id = got["tasks"][0]["id"]
            self.expect_400(server.request("POST", f"/api/v1/tasks/{task_id}/progress",
                                           {"progress": 0.5, "message": NUL}, token=token),
                            "message")
            self.expect_400(server.request("POST", f"/api/v1/tasks/{task_id}/fail",
                                           {"error": NUL}, token=token), "error")
            status, _, task = server.request("GET", f"/api/v1/tasks/{task_id}")
            self.assertEqual(task["status"], "assigned")  # nothing changed
            status, _, done = server.request("POST", f"/api/v1/tasks/{task_id}/complete", {},
                                             token=token)
            self.assertEqual((status, done["status"]), (200, "succeeded"))
        self.each(check)

    def test_filters_and_paths_that_are_not_utf8_are_refused(self):
        def check(server):
            for query in ("type=%ff", "queue=a%00b", "type=%c3"):
                status, _, body = server.request("GET", f"/api/v1/tasks?{query}")
                self.assertEqual((status, body["error"]["code"]), (400, "bad_request"), query)
            status, _, body = server.request("GET", "/api/v1/agents?queue=%ff")
            self.assertEqual(status, 400, body)
            for line in (b"GET /api/v1/tasks/t_\xff", b"GET /api/v1/agents/a_\xff",
                         b"POST /api/v1/tasks/t_\xff/cancel"):
                status, body = raw_status(server, line)
                self.assertEqual((status, body["error"]["code"]), (400, "bad_request"), line)
            status, _, body = server.request("GET", "/api/v1/tasks?type=%c3%a9")
            self.assertEqual(status, 200, body)
        self.each(check)


if __name__ == "__main__":
    unittest.main()
