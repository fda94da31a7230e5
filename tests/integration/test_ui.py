"""The dashboard at /ui in headless Chromium, driven over the DevTools protocol: with the admin
token entered it shows queues with depth by status, agents with their heartbeat age and running
tasks, dead and recent tasks; Retry and Cancel act on tasks; server text is shown as text (an
error holding HTML stays text); the page throws nothing and the CSP blocks nothing."""
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request

import websockets

from engine_client import register_rest_agent, submit_ok
from harness import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKENS = {"submit_tokens": ["sub"], "admin_tokens": ["adm"], "registration_tokens": ["reg"]}
HOSTILE = '<img src=x onerror="document.title=\'owned\'">'


class Page:
    """One browser tab over the DevTools protocol: evaluate JavaScript, collect problems."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.answers = {}
        self.problems = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg:
                self.answers[msg["id"]].set_result(msg)
            elif msg.get("method") == "Runtime.exceptionThrown":
                self.problems.append(msg["params"]["exceptionDetails"])
            elif msg.get("method") == "Log.entryAdded":
                entry = msg["params"]["entry"]
                if entry["source"] in ("security", "javascript") or "Content Security" in entry.get(
                        "text", ""):
                    self.problems.append(entry)

    async def call(self, method, **params):
        self.next_id += 1
        answer = asyncio.get_running_loop().create_future()
        self.answers[self.next_id] = answer
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        msg = await asyncio.wait_for(answer, 10)
        if "error" in msg:
            raise AssertionError(f"{method}: {msg['error']}")
        return msg["result"]

    async def eval(self, expression):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # False, not an error, while the page is still loading (no such element yet).
            if await self.eval(f"(() => {{ try {{ return Boolean({expression}); }} "
                               "catch (e) { return false; } })()"):
                return
            await asyncio.sleep(0.1)
        page = await self.eval("document.body.innerText")
        raise AssertionError(f"never true: {expression}\nthe page:\n{page}")


class Browser:
    """Headless Chromium on a free DevTools port, with a throwaway profile."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="pm-agent-ui-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (lines := self._read(port_file)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        self.port = int(lines[0])

    @staticmethod
    def _read(path):
        """The lines of a file Chromium may still be writing ([] until it has some)."""
        try:
            with open(path) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def page_socket_url(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5) as r:
            targets = json.load(r)
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (scripts/bootstrap.sh test)")
class Dashboard(unittest.TestCase):
    def setUp(self):
        self.server = Server(config={"auth": TOKENS})
        self.addCleanup(self.server.stop)
        self.browser = Browser()
        self.addCleanup(self.browser.stop)

    def task(self, task_id):
        status, _, body = self.server.request("GET", f"/api/v1/tasks/{task_id}", token="sub")
        self.assertEqual(status, 200, body)
        return body

    def until_status(self, task_id, status):
        deadline = time.monotonic() + 10
        while self.task(task_id)["status"] != status:
            self.assertLess(time.monotonic(), deadline, f"{task_id} never became {status}")
            time.sleep(0.1)

    def test_the_dashboard_shows_the_fleet_and_retries_and_cancels(self):
        waiting = submit_ok(self.server, {"type": "mail", "queue": "emails"}, token="sub")
        agent_id, agent_token = register_rest_agent(self.server, "gpu-box", token="reg",
                                                    queues=["render"])
        doomed = submit_ok(self.server, {"type": "frame", "queue": "render", "max_attempts": 1},
                           token="sub")
        status, _, body = self.server.request(
            "POST", "/api/v1/tasks/request", {"agent_id": agent_id, "wait_s": 5},
            token=agent_token)
        self.assertEqual([t["id"] for t in body["tasks"]], [doomed])
        status, _, body = self.server.request("POST", f"/api/v1/tasks/{doomed}/fail",
                                              {"error": HOSTILE, "retryable": False},
                                              token=agent_token)
        self.assertEqual((status, body["status"]), (200, "dead"), body)

        async def scenario():
            async with websockets.connect(self.browser.page_socket_url(), max_size=2 ** 24) as ws:
                page = Page(ws)
                for domain in ("Runtime", "Log", "Page"):
                    await page.call(f"{domain}.enable")
                await page.call("Page.navigate", url=f"{self.server.base}/ui")
                # No token yet: the page says what it needs.
                await page.wait_for(
                    "document.getElementById('status').textContent.includes('admin token')")
                await page.eval("document.getElementById('token').value = 'adm';"
                                "document.getElementById('auth').requestSubmit()")
                await page.wait_for("document.body.dataset.loaded === 'true'")
                header = await page.eval(
                    "[...document.querySelectorAll('#queues thead th')].map(c => c.textContent)")
                render = await page.eval(
                    "[...document.querySelector('#queues tr[data-queue=\"render\"]').cells]"
                    ".map(c => c.textContent)")
                emails = await page.eval(
                    "[...document.querySelector('#queues tr[data-queue=\"emails\"]').cells]"
                    ".map(c => c.textContent)")
                agent = await page.eval(
                    f"[...document.querySelector('#agents tr[data-agent=\"{agent_id}\"]').cells]"
                    ".map(c => c.textContent)")
                error_text = await page.eval(
                    f"document.querySelector('#dead tr[data-task=\"{doomed}\"] td.error')"
                    ".textContent")
                injected = await page.eval("document.querySelectorAll('img').length")
                title = await page.eval("document.title")
                # Retry the dead task, cancel the waiting one, from their buttons.
                await page.eval(f"document.querySelector('#dead button[data-retry=\"{doomed}\"]')"
                                ".click()")
                await asyncio.to_thread(self.until_status, doomed, "pending")
                await page.wait_for(
                    f"document.querySelector('#recent button[data-cancel=\"{waiting}\"]')")
                await page.eval(
                    f"document.querySelector('#recent button[data-cancel=\"{waiting}\"]').click()")
                await asyncio.to_thread(self.until_status, waiting, "cancelled")
                await page.wait_for("document.querySelectorAll('#dead tbody tr').length === 0")
                await page.wait_for(
                    f"document.querySelector('#recent tr[data-task=\"{waiting}\"] "
                    "button[data-retry]')")
                await asyncio.sleep(0.3)  # any late error reaches us
                page.reader.cancel()
                return header, render, emails, agent, error_text, injected, title, page.problems

        header, render, emails, agent, error_text, injected, title, problems = asyncio.run(
            asyncio.wait_for(scenario(), 60))
        by_status = dict(zip(header[1:], render[1:]))
        self.assertEqual(render[0], "render")
        self.assertEqual(by_status["dead"], "1")
        self.assertEqual(dict(zip(header[1:], emails[1:]))["pending"], "1")
        self.assertEqual(agent[0], "gpu-box")
        self.assertIn("0 / 1", agent)  # running / max_concurrency
        self.assertTrue(agent[5].endswith(" s"), agent)  # heartbeat age
        self.assertEqual(error_text, HOSTILE)  # shown as text
        self.assertEqual((injected, title), (0, "pm-agent-server"))
        self.assertEqual(problems, [])
        self.assertEqual(self.task(doomed)["attempts"], 0)


class Files(unittest.TestCase):
    def test_files_are_served_with_their_types_and_a_strict_policy(self):
        with Server() as server:
            for path, kind in (("/ui", "text/html"), ("/ui/app.js", "text/javascript"),
                               ("/ui/app.css", "text/css")):
                status, headers, body = server.request("GET", path)
                self.assertEqual(status, 200, path)
                self.assertTrue(headers["content-type"].startswith(kind), headers)
                self.assertIn("default-src 'self'", headers["content-security-policy"])
                self.assertEqual(headers["x-content-type-options"], "nosniff")
                self.assertTrue(body)
            status, _, body = server.request("GET", "/ui/secrets.txt")
            self.assertEqual((status, body["error"]["code"]), (404, "not_found"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
