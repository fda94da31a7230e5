"""Operating the real binary: CLI, configuration errors, protected mode, /metrics (auth and
promtool), and the graceful drain on SIGTERM."""
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import Server, parse_raw_response, read_all, run_cli


class Cli(unittest.TestCase):
    def test_version(self):
        r = run_cli(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("pm-agent-server", r.stdout)

    def test_check_config_masks_secrets_and_applies_precedence(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump({"server": {"port": 7001, "max_connections": 55},
                       "auth": {"admin_tokens": ["file-admin-secret"]}}, f)
            f.flush()
            r = run_cli(["check-config", "--config", f.name, "--port", "7003"],
                        env={"PM_AGENT_PORT": "7002", "MAX_CONNECTIONS": "66",
                             "PM_AGENT_SUBMIT_TOKENS": "env-secret-1,env-secret-2",
                             "DATABASE_URL": "postgres://u:hunter2@db:5432/pm"})
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = json.loads(r.stdout)
        self.assertEqual(cfg["server"]["port"], 7003)             # flag beats env and file
        self.assertEqual(cfg["server"]["max_connections"], 66)    # env beats file
        self.assertEqual(len(cfg["auth"]["submit_tokens"]), 2)
        for secret in ("env-secret-1", "env-secret-2", "file-admin-secret", "hunter2"):
            self.assertNotIn(secret, r.stdout)
        self.assertIn("db:5432", r.stdout)

    def test_unknown_key_is_exit_2_naming_the_key(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump({"server": {"prot": 1}}, f)
            f.flush()
            r = run_cli(["check-config", "--config", f.name])
        self.assertEqual(r.returncode, 2)
        self.assertIn("server.prot", r.stderr)

    def test_bad_value_is_exit_2_naming_the_key(self):
        r = run_cli(["serve", "--port", "99999"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("server.port", r.stderr)
        r = run_cli(["serve"], env={"TASK_QUEUE_SIZE": "lots"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("TASK_QUEUE_SIZE", r.stderr)

    def test_unusable_redis_url_is_exit_2_without_the_password(self):
        r = run_cli(["serve", "--port", "0"], env={"REDIS_URL": "redis://:hunter2@cache:99999"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("redis.url", r.stderr)
        self.assertNotIn("hunter2", r.stderr)

    def test_protected_mode_refuses_public_address_without_tokens(self):
        r = run_cli(["serve", "--host", "0.0.0.0", "--port", "0"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("PM_AGENT_SUBMIT_TOKENS", r.stderr)

    def test_public_address_with_tokens_starts(self):
        with Server(host="0.0.0.0", env={"PM_AGENT_ADMIN_TOKENS": "a1",
                                          "PM_AGENT_SUBMIT_TOKENS": "s1",
                                          "PM_AGENT_REGISTRATION_TOKENS": "r1"}) as s:
            status, _, _ = s.request("GET", "/health")
            self.assertEqual(status, 200)


class Metrics(unittest.TestCase):
    def test_metrics_public_by_default_and_promtool_accepts_it(self):
        with Server() as s:
            s.request("GET", "/health")
            s.request("GET", "/nope")
            status, headers, text = s.request("GET", "/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
            for name in ("pm_agent_active_connections{kind=\"http\"}",
                         "pm_agent_connection_errors_total",
                         "pm_agent_connection_duration_seconds_bucket",
                         "pm_agent_request_duration_seconds_bucket",
                         "pm_agent_requests_total{route=\"/health\",method=\"GET\",code=\"200\"} 1"):
                self.assertIn(name, text)
            # Raw paths never become label values.
            self.assertNotIn("/nope", text)
            promtool = shutil.which("promtool")
            if promtool is None:
                self.skipTest("promtool not installed")
            r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_private_metrics_need_an_admin_token(self):
        with Server(config={"server": {"metrics_public": False},
                            "auth": {"admin_tokens": ["adm"], "submit_tokens": ["sub"]}}) as s:
            status, headers, body = s.request("GET", "/metrics")
            self.assertEqual(status, 401)
            self.assertEqual(body["error"]["code"], "unauthorized")
            status, _, body = s.request("GET", "/metrics", token="wrong")
            self.assertEqual(status, 401)
            status, _, body = s.request("GET", "/metrics", token="sub")
            self.assertEqual(status, 403)
            self.assertEqual(body["error"]["code"], "forbidden")
            status, _, text = s.request("GET", "/metrics", token="adm")
            self.assertEqual(status, 200)
            self.assertIn("pm_agent_requests_total", text)


class Drain(unittest.TestCase):
    def test_sigterm_finishes_the_request_in_flight_then_exits(self):
        s = Server(config={"server": {"shutdown_timeout_s": 5}})
        idle = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        busy = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        busy.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\n")  # a request half-way in
        time.sleep(0.2)
        started = time.monotonic()
        s.signal(signal.SIGTERM)
        time.sleep(0.3)
        # The idle keep-alive connection is closed by the drain.
        self.assertEqual(read_all(idle), b"")
        # New connections are refused: the listener is closed.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", s.port), timeout=1).recv(1)
        busy.sendall(b"\r\n")
        status, headers, body = parse_raw_response(read_all(busy))
        # The request in flight is answered (and reports the drain), then the connection closes.
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["status"], "draining")
        self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(s.wait(10), 0)
        self.assertLess(time.monotonic() - started, 5)
        log = "".join(s.log_lines)
        self.assertIn("event=drain_started", log)
        self.assertIn("event=drain_complete", log)
        s.stop()

    def test_drain_gives_up_at_shutdown_timeout(self):
        s = Server(config={"server": {"shutdown_timeout_s": 1, "read_timeout_s": 30}})
        busy = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        busy.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
        time.sleep(0.2)
        started = time.monotonic()
        s.signal(signal.SIGTERM)
        self.assertEqual(s.wait(10), 0)
        elapsed = time.monotonic() - started
        self.assertGreater(elapsed, 0.9)
        self.assertLess(elapsed, 3)
        self.assertIn("event=drain_timeout", "".join(s.log_lines))
        busy.close()
        s.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
