"""--workers N without PostgreSQL: the start is refused (the memory store lives in one process),
and one worker runs without a supervisor. The multi-worker behaviour itself (shared port,
restart, signal forwarding) needs the PostgreSQL store: test_pg_workers.py."""
import os
import unittest

from harness import Server, run_cli


class WorkersWithoutDatabase(unittest.TestCase):
    def assert_refused(self, result):
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("server.workers", result.stderr)
        self.assertIn("database.url", result.stderr)
        self.assertIn("one process", result.stderr)   # says why, not only which key
        self.assertNotIn("event=listening", result.stderr)

    def test_workers_flag_is_refused_without_database_url(self):
        self.assert_refused(run_cli(["serve", "--port", "0", "--workers", "2"]))

    def test_workers_env_is_refused_without_database_url(self):
        self.assert_refused(run_cli(["serve", "--port", "0"], env={"PM_AGENT_WORKERS": "3"}))

    def test_check_config_refuses_too(self):
        self.assert_refused(run_cli(["check-config", "--workers", "2"]))

    def test_one_worker_runs_in_the_process_itself(self):
        with Server(args=["--workers", "1"]) as server:
            status, _, body = server.request("GET", "/api/v1/stats")
            self.assertEqual(status, 200)
            self.assertTrue(body["worker"].endswith(f":{server.proc.pid}"), body["worker"])
            children = f"/proc/{server.proc.pid}/task/{server.proc.pid}/children"
            if os.path.exists(children):
                with open(children) as f:
                    self.assertEqual(f.read().split(), [])
            self.assertFalse(any("supervisor" in line for line in server.log_lines))


if __name__ == "__main__":
    unittest.main()
