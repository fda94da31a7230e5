"""HTTP edges of the real binary: limits, deadlines, keep-alive, connection cap, error shape."""
import email.utils
import json
import socket
import time
import unittest

from harness import Server, parse_raw_response, read_all, request_on


def assert_error_shape(test, body, code):
    test.assertIsInstance(body, dict, body)
    test.assertEqual(set(body.keys()), {"error"})
    test.assertEqual(body["error"]["code"], code)
    test.assertIsInstance(body["error"]["message"], str)
    test.assertTrue(body["error"]["message"])


class HttpEdges(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(config={
            "server": {"read_timeout_s": 1, "connection_timeout_s": 2,
                       "header_limit_bytes": 2048, "body_limit_bytes": 4096,
                       "max_connections": 8}})

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_health_and_ready(self):
        status, _, body = self.server.request("GET", "/health")
        self.assertEqual((status, body), (200, {"status": "ok"}))
        status, _, body = self.server.request("GET", "/ready")
        self.assertEqual((status, body), (200, {"status": "ready"}))

    def test_unknown_path_is_404_json(self):
        status, _, body = self.server.request("GET", "/no/such/thing")
        self.assertEqual(status, 404)
        assert_error_shape(self, body, "not_found")

    def test_wrong_method_is_405_with_allow(self):
        status, headers, body = self.server.request("DELETE", "/health")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        assert_error_shape(self, body, "method_not_allowed")

    def test_head_has_no_body(self):
        data = self.server.raw(b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = parse_raw_response(data)
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-length"], "15")
        self.assertEqual(body, b"")

    def test_oversized_header_is_431(self):
        big = "x" * 4000
        data = self.server.raw(
            f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n".encode())
        status, _, body = parse_raw_response(data)
        self.assertEqual(status, 431)
        assert_error_shape(self, json.loads(body), "header_too_large")

    def test_oversized_body_is_413_without_reading_it(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        # Announce 10 MB, send only the header: the answer must come without the body.
        s.sendall(b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 10000000\r\n\r\n")
        data = read_all(s)
        s.close()
        status, headers, body = parse_raw_response(data)
        self.assertEqual(status, 413)
        assert_error_shape(self, json.loads(body), "payload_too_large")
        self.assertEqual(headers.get("connection"), "close")

    def test_expect_100_continue_is_answered_before_the_body(self):
        # RFC 9110 10.1.1: the client waits for "100 Continue" (curl: 1 s) before its body.
        body = json.dumps({"type": "expecting"}).encode()
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        s.sendall(b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        s.settimeout(0.5)
        interim = s.recv(4096)
        self.assertEqual(interim, b"HTTP/1.1 100 Continue\r\n\r\n")
        s.settimeout(5)
        s.sendall(body + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_all(s)
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 202 "), data)
        self.assertNotIn(b"100 Continue", data)
        self.assertIn(b'{"status":"ok"}', data)  # the connection went on as usual
        # A body the server would refuse is refused at once, with no 100 before it.
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        s.sendall(b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 10000000\r\n\r\n")
        data = read_all(s)
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "), data)

    def test_204_has_no_content_length_and_keeps_the_connection(self):
        # RFC 9110 8.6: no Content-Length in a 204 (a strict client refuses one).
        status, _, reg = self.server.request("POST", "/api/v1/agents/register", {"name": "gone"})
        self.assertEqual(status, 201, reg)
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        s.sendall(b"DELETE /api/v1/agents/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s"
                  b"\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                  % (reg["agent_id"].encode(), reg["token"].encode()))
        data = read_all(s)
        s.close()
        head, _, rest = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 204 "), data)
        self.assertNotIn(b"content-length", head.lower())
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 "), data)  # the next answer follows

    def test_chunked_body_over_limit_is_413(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        s.sendall(b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * 3000
        for _ in range(3):
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                break
        data = read_all(s)
        s.close()
        status, _, body = parse_raw_response(data)
        self.assertEqual(status, 413)

    def test_malformed_request_is_400(self):
        data = self.server.raw(b"THIS IS NOT HTTP\r\n\r\n")
        status, _, body = parse_raw_response(data)
        self.assertEqual(status, 400)
        assert_error_shape(self, json.loads(body), "bad_request")

    def test_host_must_come_exactly_once_in_http11(self):
        # RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host or
        # with more than one; HTTP/1.0 has no such rule.
        for head in (b"GET /health HTTP/1.1\r\n\r\n",
                     b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"):
            status, headers, body = parse_raw_response(self.server.raw(head))
            self.assertEqual(status, 400, head)
            self.assertEqual(headers.get("connection"), "close")
            assert_error_shape(self, json.loads(body), "bad_request")
            self.assertIn("Host", json.loads(body)["error"]["message"])
        status, _, _ = parse_raw_response(self.server.raw(b"GET /health HTTP/1.0\r\n\r\n"))
        self.assertEqual(status, 200)

    def test_absolute_form_target_is_served(self):
        # RFC 9112 3.2.2: a server MUST accept the absolute form.
        status, _, body = parse_raw_response(self.server.raw(
            b"GET http://x:1/api/v1/tasks?limit=1 HTTP/1.1\r\nHost: x:1\r\n"
            b"Connection: close\r\n\r\n"))
        self.assertEqual(status, 200, body)
        self.assertIn("items", json.loads(body))

    def test_transfer_coding_other_than_chunked_is_refused_and_nothing_is_created(self):
        _, _, before = self.server.request("GET", "/api/v1/tasks?type=te-probe")
        # "identity" leaves the body's length unknown (RFC 9112 6.3: 400 and close); before
        # this check the body was parsed as the next request on the connection.
        data = self.server.raw(
            b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n"
            b"Content-Type: application/json\r\n\r\n{\"type\": \"te-probe\"}")
        self.assertEqual(data.count(b"HTTP/1.1 "), 1, data)
        status, headers, body = parse_raw_response(data)
        self.assertEqual((status, headers.get("connection")), (400, "close"))
        assert_error_shape(self, json.loads(body), "bad_request")
        # A coding under chunked that we cannot decode: 501 (RFC 9112 6.1).
        payload = b'{"type": "te-probe"}'
        data = self.server.raw(
            b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
            b"Content-Type: application/json\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
            % (len(payload), payload))
        status, _, body = parse_raw_response(data)
        self.assertEqual(status, 501)
        assert_error_shape(self, json.loads(body), "not_implemented")
        _, _, after = self.server.request("GET", "/api/v1/tasks?type=te-probe")
        self.assertEqual(after["items"], before["items"])

    def test_responses_carry_a_date(self):
        # RFC 9110 6.6.1: an origin server with a clock sends Date.
        status, headers, _ = self.server.request("GET", "/health")
        self.assertEqual(status, 200)
        parsed = email.utils.parsedate_to_datetime(headers["date"])
        self.assertLess(abs(parsed.timestamp() - time.time()), 5)
        self.assertTrue(headers["date"].endswith(" GMT"), headers["date"])

    def test_unknown_method_is_named_in_the_405(self):
        status, headers, body = parse_raw_response(
            self.server.raw(b"BREW /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        self.assertEqual(status, 405)
        self.assertIn("method BREW", json.loads(body)["error"]["message"])

    def test_keep_alive_serves_many_requests_on_one_connection(self):
        c = self.server.conn()
        for _ in range(20):
            status, _, body = request_on(c, "GET", "/health")
            self.assertEqual(status, 200)
        c.close()

    def test_pipelined_requests_are_answered_in_order(self):
        data = self.server.raw(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                               b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(data.count(b"HTTP/1.1 "), 2)
        first = data.index(b"200 OK")
        second = data.index(b"404 Not Found")
        self.assertLess(first, second)

    def test_slowloris_is_cut_at_read_deadline_while_others_are_served(self):
        slow = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        started = time.monotonic()
        slow.sendall(b"GET /health HTTP/1.1\r\n")
        closed_at = None
        # Trickle one header byte every 200 ms; the 1 s read deadline must end it.
        for i in range(40):
            try:
                slow.sendall(b"X")
            except OSError:
                closed_at = time.monotonic()
                break
            # Meanwhile another client is served promptly.
            if i == 2:
                t0 = time.monotonic()
                status, _, _ = self.server.request("GET", "/health")
                self.assertEqual(status, 200)
                self.assertLess(time.monotonic() - t0, 0.5)
            slow.settimeout(0.2)
            try:
                data = slow.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 408"):
                    closed_at = time.monotonic()
                    break
            except socket.timeout:
                pass
        slow.close()
        self.assertIsNotNone(closed_at, "slow client was never cut off")
        self.assertLess(closed_at - started, 2.5)
        self.assertGreater(closed_at - started, 0.8)

    def test_idle_keep_alive_connection_closed_after_connection_timeout(self):
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=6)
        started = time.monotonic()
        data = s.recv(10)
        self.assertEqual(data, b"")
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 4)
        s.close()

    def test_connections_past_max_connections_get_503(self):
        held = [socket.create_connection(("127.0.0.1", self.server.port)) for _ in range(8)]
        try:
            time.sleep(0.2)
            status, headers, body = self.server.request("GET", "/health")
            self.assertEqual(status, 503)
            assert_error_shape(self, body, "unavailable")
            self.assertIn("retry-after", headers)
        finally:
            for s in held:
                s.close()
        time.sleep(0.2)
        status, _, _ = self.server.request("GET", "/health")
        self.assertEqual(status, 200)

    def test_request_id_is_echoed(self):
        _, headers, _ = self.server.request("GET", "/health", headers={"X-Request-ID": "abc-1"})
        self.assertEqual(headers.get("x-request-id"), "abc-1")


if __name__ == "__main__":
    unittest.main(verbosity=2)
