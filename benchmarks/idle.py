#!/usr/bin/python3
"""Idle WebSocket agents: server RSS per agent and heartbeat latency, engine beside the bare
baseline (benchmarks/baseline/) in the same run, on one worker or a fleet of workers.

  benchmarks/idle.py BUILD_DIR AGENTS [WORKERS]     (normally through benchmarks/run.sh idle)

One worker: the engine on the memory store. WORKERS > 1: scripts/stack.sh up --workers N
(PostgreSQL, Redis, N worker processes), the agents connecting to the workers directly, as
many per worker (nginx, capped at 20,000 open files per process here, cannot hold 100k
proxied connections); the baseline side is N baseline processes on N ports.

Each server gets AGENTS / WORKERS agents, from as many pm-agent-bench processes as the
20,000-file limit per process asks (at most PER_PROCESS agents each). Every client process sets
up its agents, then waits at a barrier until all are set up (pm-agent-bench --barrier-dir), so
that their windows overlap and the heartbeats are timed in the steady state. The servers' RSS
is read from /proc before anything connects and when every client has passed the barrier.
Heartbeat p99 over all processes is reported as the worst process's p99: an upper bound of the
fleet's p99 (if no process has more than 1 % of its samples above M, neither has the fleet).

Environment: PM_AGENT_BENCH_SECONDS (window, default 10 s on one worker, 20 s on a fleet),
PM_AGENT_BENCH_HEARTBEAT_MS (default 2000 on one worker, 10000 on a fleet), PM_AGENT_BENCH_OUT.
"""
import datetime
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# 20,000 open files per process, less the process's own (smaller in the self-test, to split).
PER_PROCESS = int(os.environ.get("PM_AGENT_BENCH_AGENTS_PER_PROCESS") or 18000)
SETUP_LIMIT_S = 900  # all agents registered by then, or the side is reported as failed


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def wait_health(url, proc, what):
    for _ in range(300):
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"idle: {what} exited with {proc.returncode}")
        try:
            with socket.create_connection(url.removeprefix("http://").split(":"), 1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"idle: {what} did not answer /health at {url}")


def engine_config(max_connections):
    # Production limits that would be what is measured are lifted, as in run.sh.
    return {"server": {"max_connections": max_connections},
            "rate_limit": {"agent_per_s": 1e9, "agent_burst": 1e9},
            "log": {"level": "warn"}}


class Servers:
    """The servers of one side: a list of (url, pid); stop() ends them."""

    def __init__(self, side, build, workers, agents_each, work):
        self.side, self.procs, self.stack_dir, self.endpoints = side, [], None, []
        if side == "baseline":
            for i in range(workers):
                port = free_port()
                proc = subprocess.Popen([os.path.join(build, "benchmarks", "pm-agent-baseline"),
                                         "--port", str(port)], stdout=subprocess.DEVNULL,
                                        stderr=open(os.path.join(work, f"baseline-{i}.log"), "w"))
                self.procs.append(proc)
                self.endpoints.append((f"http://127.0.0.1:{port}", proc.pid))
        elif workers == 1:
            port = free_port()
            cfg = os.path.join(work, "engine.json")
            json.dump(engine_config(agents_each + 1000), open(cfg, "w"))
            env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
            proc = subprocess.Popen([os.path.join(build, "pm-agent-server"), "serve", "--port",
                                     str(port), "--config", cfg], env=env,
                                    stdout=subprocess.DEVNULL,
                                    stderr=open(os.path.join(work, "engine.log"), "w"))
            self.procs.append(proc)
            self.endpoints.append((f"http://127.0.0.1:{port}", proc.pid))
        else:
            self.stack_dir = os.path.join(work, "stack")
            env = dict(os.environ, PM_AGENT_BINARY=os.path.join(build, "pm-agent-server"),
                       STACK_CONFIG_JSON=json.dumps(engine_config(agents_each + 1000)))
            up = subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "up", "--workers",
                                 str(workers), "--dir", self.stack_dir], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if up.returncode != 0:
                raise SystemExit(f"idle: stack.sh up failed:\n{up.stderr}")
            info = json.load(open(os.path.join(self.stack_dir, "stack.json")))
            self.endpoints = [(w["url"], w["pid"]) for w in info["workers"]]
        for (url, _), proc in zip(self.endpoints, self.procs or [None] * workers):
            wait_health(url, proc, side)

    def pids(self):
        return [pid for _, pid in self.endpoints]

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait()
        if self.stack_dir:
            subprocess.run([os.path.join(ROOT, "scripts", "stack.sh"), "down", "--dir",
                            self.stack_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_side(side, build, agents, workers, heartbeat_ms, seconds, work):
    """Sets up one side, holds the agents, returns its figures."""
    work = os.path.join(work, side)
    os.makedirs(work)
    each = [agents // workers + (1 if i < agents % workers else 0) for i in range(workers)]
    servers = Servers(side, build, workers, max(each), work)
    try:
        time.sleep(0.5)  # let start-up allocations settle before the reading
        pids = servers.pids()
        rss_before = sum(rss_kib(p) for p in pids)
        cpu_before = sum(cpu_s(p) for p in pids)
        barrier = os.path.join(work, "barrier")
        os.makedirs(barrier)
        plan = []  # (url, agents) per client process
        for (url, _), n in zip(servers.endpoints, each):
            parts = math.ceil(n / PER_PROCESS)
            plan += [(url, n // parts + (1 if k < n % parts else 0)) for k in range(parts)]
        clients = []
        for i, (url, count) in enumerate(plan):
            out = os.path.join(work, f"client-{i}.json")
            clients.append((out, subprocess.Popen(
                [os.path.join(build, "benchmarks", "pm-agent-bench"), "--url", url,
                 "--agents", str(count), "--submitters", "0", "--mode", "ws",
                 "--concurrency", "1", "--heartbeat-ms", str(heartbeat_ms),
                 "--duration", str(seconds), "--drain", "0", "--label", f"idle-{side}",
                 "--barrier-dir", barrier, "--barrier-count", str(len(plan)), "--out", out],
                stdout=open(out + ".txt", "w"), stderr=subprocess.STDOUT)))
        started = time.monotonic()
        rss_connected = None
        while any(p.poll() is None for _, p in clients):
            ready = sum(1 for name in os.listdir(barrier) if name.endswith(".ready"))
            if rss_connected is None and ready == len(clients):
                setup_s = time.monotonic() - started
                time.sleep(0.5)  # the last registrations' answers are out of the server
                rss_connected = sum(rss_kib(p) for p in pids)
            elif rss_connected is None and (
                    any(p.poll() not in (None, 0) for _, p in clients)
                    or time.monotonic() - started > SETUP_LIMIT_S):
                for _, p in clients:  # the others would wait at the barrier for ever
                    p.kill()
            time.sleep(0.1)
        cpu_used = sum(cpu_s(p) for p in pids) - cpu_before
    finally:
        servers.stop()
    runs, failed = [], []
    for out, proc in clients:
        try:
            runs.append(json.load(open(out))[-1])
        except (OSError, ValueError, IndexError):
            failed.append(open(out + ".txt").read()[-2000:])
        if proc.returncode != 0:
            failed.append(f"client exit {proc.returncode}: {open(out + '.txt').read()[-2000:]}")
    registered = sum(r["agents_registered"] for r in runs)
    hb = [r["latency_ms"]["heartbeat"] for r in runs]
    errors = {}
    for r in runs:
        for kind, count in r["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    figures = {
        "workers": workers, "client_processes": len(clients), "agents_registered": registered,
        "setup_s": round(setup_s, 2) if rss_connected is not None else None,
        "rss_before_kib": rss_before, "rss_connected_kib": rss_connected,
        "rss_per_agent_kib": round((rss_connected - rss_before) / registered, 2)
        if rss_connected is not None and registered else None,
        "server_cpu_s": round(cpu_used, 2),
        "heartbeats": sum(h["count"] for h in hb),
        "heartbeat_p50_ms_median_process": sorted(h["p50"] for h in hb)[len(hb) // 2] if hb else None,
        "heartbeat_p99_ms_worst_process": max((h["p99"] for h in hb), default=None),
        "heartbeat_max_ms": max((h["max"] for h in hb), default=None),
        "errors": errors, "client_failures": failed,
    }
    return figures


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    build, agents = os.path.abspath(sys.argv[1]), int(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    if agents < 1 or workers < 1:
        raise SystemExit("idle: AGENTS and WORKERS must be positive")
    fleet = workers > 1
    seconds = float(os.environ.get("PM_AGENT_BENCH_SECONDS") or (20 if fleet else 10))
    heartbeat_ms = float(os.environ.get("PM_AGENT_BENCH_HEARTBEAT_MS") or (10000 if fleet else 2000))
    out = os.environ.get("PM_AGENT_BENCH_OUT", os.path.join(ROOT, "benchmark_results.json"))
    result = {
        "scenario": "idle_agents",
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "agents": agents, "workers": workers, "heartbeat_ms": heartbeat_ms, "window_s": seconds,
        "engine_store": "postgres (durable) + redis" if fleet else "memory",
    }
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o755)  # stack.sh runs PostgreSQL as another user under it
        for side in ("engine", "baseline"):
            print(f"idle: {agents} agents over {workers} {side} process(es)", flush=True)
            result[side] = run_side(side, build, agents, workers, heartbeat_ms, seconds, work)
    e, b = result["engine"], result["baseline"]
    if e["rss_per_agent_kib"] and b["rss_per_agent_kib"]:
        result["rss_per_agent_engine_vs_baseline"] = round(
            e["rss_per_agent_kib"] / b["rss_per_agent_kib"], 3)
    results = json.load(open(out)) if os.path.exists(out) else []
    results.append(result)
    with open(out + ".tmp", "w") as f:
        json.dump(results, f, indent=2)
    os.replace(out + ".tmp", out)

    print(f"\nidle, {agents} WebSocket agents over {workers} worker(s), heartbeat every "
          f"{heartbeat_ms / 1000:g} s, {seconds:g} s window")
    print(f"{'':34}{'engine':>16}{'baseline':>16}")
    for title, key in [("client processes", "client_processes"),
                       ("agents registered", "agents_registered"), ("set-up (s)", "setup_s"),
                       ("RSS before (KiB)", "rss_before_kib"),
                       ("RSS all connected (KiB)", "rss_connected_kib"),
                       ("RSS per agent (KiB)", "rss_per_agent_kib"),
                       ("server CPU, whole run (s)", "server_cpu_s"),
                       ("heartbeats timed", "heartbeats"),
                       ("heartbeat p50 (ms, median proc.)", "heartbeat_p50_ms_median_process"),
                       ("heartbeat p99 (ms, worst proc.)", "heartbeat_p99_ms_worst_process"),
                       ("heartbeat max (ms)", "heartbeat_max_ms")]:
        print(f"{title:34}{str(e[key]):>16}{str(b[key]):>16}")
    bad = False
    for side in ("engine", "baseline"):
        f = result[side]
        if f["errors"] or f["client_failures"] or f["agents_registered"] != agents:
            bad = True
            print(f"{side}: {f['agents_registered']} of {agents} registered, errors {f['errors']}")
            for failure in f["client_failures"]:
                print(f"  {failure}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
