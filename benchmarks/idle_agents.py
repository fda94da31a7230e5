#!/usr/bin/python3
"""Idle-agent memory: N WebSocket agents register on one pm-agent-server worker and stay idle;
prints the server's RSS growth per agent (agent record included) and appends it to
benchmark_results.json. One client process holds up to ~19,500 agents (20,000 open files).

Usage: benchmarks/idle_agents.py [N=19000] [server binary=build/pm-agent-server]
Needs Debian's python3-websockets (scripts/bootstrap.sh installs it)."""
import asyncio
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

import websockets

N = int(sys.argv[1]) if len(sys.argv) > 1 else 19000
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BINARY = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "build", "pm-agent-server")
OUT = os.environ.get("PM_AGENT_BENCH_OUT", os.path.join(ROOT, "benchmark_results.json"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


async def hold_agents(port):
    agents = []
    for i in range(N):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/agent", ping_interval=None,
                                      compression=None)
        await ws.send(json.dumps({"type": "register", "name": f"idle-{i}"}))
        answer = json.loads(await ws.recv())
        if answer.get("type") != "registered":
            raise RuntimeError(f"agent {i}: {answer}")
        agents.append(ws)
    return agents


def main():
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as cfg:
        json.dump({"server": {"max_connections": N + 100},
                   "rate_limit": {"agent_per_s": 1e9, "agent_burst": 1e9}}, cfg)
    server = subprocess.Popen([BINARY, "serve", "--port", "0", "--config", cfg.name],
                              stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in server.stderr:
            match = re.search(r"event=listening host=\S+ port=(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        before = rss_kib(server.pid)
        loop = asyncio.new_event_loop()
        agents = loop.run_until_complete(hold_agents(port))
        loop.run_until_complete(asyncio.sleep(1))
        after = rss_kib(server.pid)
        per_agent = (after - before) / N
        result = {
            "scenario": "idle_agents_one_worker",
            "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "agents": N, "rss_before_kib": before, "rss_after_kib": after,
            "rss_per_agent_kib": round(per_agent, 2),
        }
        print(json.dumps(result, indent=2))
        results = json.load(open(OUT)) if os.path.exists(OUT) else []
        results.append(result)
        with open(OUT, "w") as f:
            json.dump(results, f, indent=2)
        for ws in agents:
            loop.run_until_complete(ws.close())
    finally:
        server.terminate()
        server.wait()
        os.unlink(cfg.name)


if __name__ == "__main__":
    main()
