"""deployment/ is real and consistent, checked without a Docker engine or a cluster:
`docker-compose config`, `nginx -t`, `promtool check config/rules`, `kubectl kustomize` (where
kubectl is installed), and against the binary itself: every environment variable the files set
is documented and changes what `check-config` reports (or is refused when invalid), every metric
and label value the alerts and the dashboard select is in the live /metrics (with PostgreSQL and
Redis, so that their families appear), the runtime image holds a package for every library the
binary links (directly or through the listed packages' dependencies), and the image's config
file is one the server accepts."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import yaml

from harness import BINARY, SOURCE_DIR
from pg_harness import PgCluster, pg_server

DEPLOY = os.path.join(SOURCE_DIR, "deployment")
COMPOSE = os.path.join(DEPLOY, "docker", "docker-compose.yml")
DOCKERFILE = os.path.join(DEPLOY, "docker", "Dockerfile")
K8S = os.path.join(DEPLOY, "kubernetes")
ALERTS = os.path.join(DEPLOY, "prometheus", "alerts.yml")
PROMETHEUS = os.path.join(DEPLOY, "prometheus", "prometheus.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "dashboards", "pm-agent.json")
GRAFANA_PROVISIONING = os.path.join(DEPLOY, "grafana", "provisioning")

# Read from the shared store: every replica exports the same fleet-wide value.
STORE_WIDE_GAUGES = ("pm_agent_task_queue_size", "pm_agent_agents")


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def read(path):
    with open(path) as f:
        return f.read()


def env_names_in_table(path, column):
    names = set()
    for line in read(path).splitlines():
        if line.startswith("| ") and "|" in line[2:]:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) > column:
                names.update(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", cells[column]))
    return names


def documented_env_names():
    """Environment names of CONFIG.md's table and the README's (CONFIG.md's plus extensions)."""
    names = env_names_in_table(os.path.join(SOURCE_DIR, "README.md"), 1)
    config_md = os.environ.get("PM_AGENT_CONFIG_MD", "/work/shared/CONFIG.md")
    if os.path.exists(config_md):
        names |= env_names_in_table(config_md, 1)
    return names


def check_config(env):
    return run(BINARY, "check-config", env={"PATH": os.environ.get("PATH", ""), **env})


def k8s_documents():
    docs = []
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            with open(os.path.join(K8S, name)) as f:
                docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def k8s_by_kind():
    return {d["kind"]: d for d in k8s_documents()}


def metric_names_in(text):
    return set(re.findall(r"\bpm_agent_[a-z0-9_]+", text))


def resolved_compose(**env):
    tool = shutil.which("docker-compose")
    if tool is None:
        raise unittest.SkipTest("docker-compose is missing (scripts/bootstrap.sh installs it)")
    r = run(tool, "-f", COMPOSE, "config", env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def dockerfile_stages():
    text = re.sub(r"\\\n", " ", read(DOCKERFILE))
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    return ["FROM " + s for s in stages]


def apt_packages(stage):
    """The packages a stage's `apt-get install` commands name (not words in its comments)."""
    packages = set()
    for args in re.findall(r"apt-get install ([^&\n]*)", stage):
        packages |= {word for word in args.split() if not word.startswith("-")}
    return packages


def image_config():
    return json.loads(read(os.path.join(DEPLOY, "docker", "pm-agent.json")))


def binary_help(*args):
    return run(BINARY, *args, "--help").stdout


class EnvironmentAssertions:
    def assert_server_reads(self, env, where):
        """Each variable is documented, its value is accepted, and the server reads it: the
        merged configuration changes, or (a value equal to the default) an invalid value is
        refused."""
        self.assertTrue(env, f"{where} sets no environment")
        unknown = set(env) - documented_env_names()
        self.assertEqual(unknown, set(), f"{where}: not in CONFIG.md's or the README's table")
        base = check_config({})
        self.assertEqual(base.returncode, 0, base.stderr)
        for name, value in env.items():
            with self.subTest(where=where, variable=name):
                r = check_config({name: str(value)})
                self.assertEqual(r.returncode, 0, f"{name}={value!r} refused: {r.stderr}")
                if r.stdout == base.stdout:
                    bad = check_config({name: "not a valid value \x7f"})
                    self.assertNotEqual(bad.returncode, 0, f"the server ignores {name}")


class Compose(unittest.TestCase, EnvironmentAssertions):
    @classmethod
    def setUpClass(cls):
        cls.compose = resolved_compose()
        cls.services = cls.compose["services"]

    def test_docker_compose_accepts_it(self):
        r = run(shutil.which("docker-compose"), "-f", COMPOSE, "config", "-q")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_services_images_and_replicas(self):
        self.assertEqual(set(self.services),
                         {"server", "nginx", "postgres", "redis", "prometheus", "grafana"})
        self.assertTrue(self.services["postgres"]["image"].startswith("postgres:15"))
        self.assertTrue(self.services["redis"]["image"].startswith("redis:7"))
        server = self.services["server"]
        self.assertGreaterEqual(server.get("scale", 1), 2)
        # One variable sets the replica count and each replica's share of the limits.
        self.assertEqual(server["environment"]["PM_AGENT_FLEET_WORKERS"], str(server["scale"]))
        three = resolved_compose(PM_AGENT_REPLICAS="3")["services"]["server"]
        self.assertEqual((three["scale"], three["environment"]["PM_AGENT_FLEET_WORKERS"]), (3, "3"))
        self.assertNotIn("ports", server, "replicas are reached through nginx")
        self.assertEqual(server["build"]["dockerfile"], "deployment/docker/Dockerfile")
        self.assertEqual(os.path.realpath(server["build"]["context"]), os.path.realpath(SOURCE_DIR))

    def test_server_command_is_options_of_serve(self):
        # The image's ENTRYPOINT is `pm-agent-server serve ...`; the command only adds options.
        command = self.services["server"]["command"]
        options = set(re.findall(r"--[a-z-]+", binary_help("serve")))
        self.assertIn("--migrate", command)
        self.assertEqual(set(command) - options, set())

    def test_healthchecks_and_ordering(self):
        for name, service in self.services.items():
            with self.subTest(service=name):
                self.assertIn("healthcheck", service)
                self.assertNotEqual(service["healthcheck"].get("disable"), True)
                for dependency, how in service.get("depends_on", {}).items():
                    self.assertEqual(how.get("condition"), "service_healthy", dependency)
        self.assertIn("/health", " ".join(self.services["server"]["healthcheck"]["test"]))
        self.assertEqual(set(self.services["server"]["depends_on"]), {"postgres", "redis"})
        self.assertIn("server", self.services["nginx"]["depends_on"])

    def test_open_file_limits(self):
        for name in ("server", "nginx"):
            with self.subTest(service=name):
                nofile = self.services[name]["ulimits"]["nofile"]
                self.assertGreaterEqual(nofile["hard"], 65536)
                self.assertGreaterEqual(nofile["soft"], 65536)

    def test_it_sets_only_variables_the_server_reads(self):
        self.assert_server_reads(self.services["server"]["environment"], "compose")

    def test_nginx_reuses_the_shared_proxy_settings(self):
        mounts = self.services["nginx"]["volumes"]
        sources = {os.path.realpath(v.split(":")[0]) for v in mounts}
        self.assertIn(os.path.realpath(os.path.join(DEPLOY, "nginx", "pm-agent-proxy.conf")), sources)
        self.assertIn("include /etc/nginx/conf.d/pm-agent-proxy.conf",
                      read(os.path.join(DEPLOY, "docker", "nginx.conf")))

    def test_nginx_accepts_its_config(self):
        # Docker's DNS name `server` and the mounted include, pointed at this machine.
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        tmp = tempfile.mkdtemp(prefix="pm-agent-nginx.")
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copy(os.path.join(DEPLOY, "nginx", "pm-agent-proxy.conf"), tmp)
        conf = read(os.path.join(DEPLOY, "docker", "nginx.conf"))
        port = image_config()["server"]["port"]
        self.assertIn(f"server server:{port}", conf)
        conf = (conf.replace("/etc/nginx/conf.d/pm-agent-proxy.conf",
                             os.path.join(tmp, "pm-agent-proxy.conf"))
                .replace(f"server server:{port}", "server 127.0.0.1:8000"))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n" + conf)
        r = run(nginx, "-t", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"),
                "-e", os.path.join(tmp, "error.log"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_monitoring_mounts_match_the_files(self):
        def mounted(service, target):
            for v in self.services[service]["volumes"]:
                parts = v.split(":")
                if parts[1] == target:
                    return os.path.realpath(parts[0])
            self.fail(f"{service} mounts nothing at {target}")

        self.assertEqual(mounted("prometheus", "/etc/prometheus/prometheus.yml"), os.path.realpath(PROMETHEUS))
        rule_files = yaml.safe_load(read(PROMETHEUS))["rule_files"]
        for rule_file in rule_files:
            self.assertEqual(mounted("prometheus", os.path.join("/etc/prometheus", rule_file)),
                             os.path.realpath(os.path.join(DEPLOY, "prometheus", rule_file)))
        self.assertEqual(mounted("grafana", "/etc/grafana/provisioning"), os.path.realpath(GRAFANA_PROVISIONING))
        dashboards_dir = mounted("grafana", "/var/lib/grafana/dashboards")
        self.assertEqual(dashboards_dir, os.path.realpath(os.path.dirname(DASHBOARD)))
        provider = yaml.safe_load(read(os.path.join(GRAFANA_PROVISIONING, "dashboards", "pm-agent.yml")))
        self.assertEqual(provider["providers"][0]["options"]["path"], "/var/lib/grafana/dashboards")


class Kubernetes(unittest.TestCase, EnvironmentAssertions):
    def test_kustomize_builds_every_resource(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not installed; the YAML checks below still run")
        r = run(kubectl, "kustomize", K8S)
        self.assertEqual(r.returncode, 0, r.stderr)
        kinds = {d["kind"] for d in yaml.safe_load_all(r.stdout) if d}
        self.assertEqual(kinds, {"Namespace", "ConfigMap", "Secret", "Deployment", "Service",
                                 "HorizontalPodAutoscaler", "PodDisruptionBudget"})

    def test_kustomization_lists_every_manifest(self):
        with open(os.path.join(K8S, "kustomization.yaml")) as f:
            listed = set(yaml.safe_load(f)["resources"])
        present = {n for n in os.listdir(K8S) if n.endswith(".yaml")} - {"kustomization.yaml"}
        self.assertEqual(listed, present)

    def test_kinds_api_versions_and_namespace(self):
        expected = {"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Deployment": "apps/v1",
                    "Service": "v1", "HorizontalPodAutoscaler": "autoscaling/v2",
                    "PodDisruptionBudget": "policy/v1"}
        docs = k8s_documents()
        self.assertEqual({d["kind"]: d["apiVersion"] for d in docs}, expected)
        namespace = k8s_by_kind()["Namespace"]["metadata"]["name"]
        for d in docs:
            if d["kind"] != "Namespace":
                self.assertEqual(d["metadata"].get("namespace"), namespace, d["kind"])

    def test_selectors_and_targets_agree(self):
        docs = k8s_by_kind()
        labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
        for kind, selector in [("Deployment", docs["Deployment"]["spec"]["selector"]["matchLabels"]),
                               ("PodDisruptionBudget", docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]),
                               ("Service", docs["Service"]["spec"]["selector"])]:
            self.assertLessEqual(selector.items(), labels.items(), kind)
        server = next(c for c in docs["Deployment"]["spec"]["template"]["spec"]["containers"]
                      if c["name"] == "server")
        container_ports = {p["name"] for p in server["ports"]} | {
            p["containerPort"] for p in server["ports"]}
        for port in docs["Service"]["spec"]["ports"]:
            self.assertIn(port["targetPort"], container_ports, "Service targetPort")
        target = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
        self.assertEqual((target["kind"], target["name"]),
                         ("Deployment", docs["Deployment"]["metadata"]["name"]))

    def test_deployment_probes_drain_security_and_scraping(self):
        docs = k8s_by_kind()
        template = docs["Deployment"]["spec"]["template"]
        pod = template["spec"]
        server = next(c for c in pod["containers"] if c["name"] == "server")
        config = json.loads(docs["ConfigMap"]["data"]["pm-agent.json"])
        port = config["server"]["port"]
        ports = {p["name"]: p["containerPort"] for p in server["ports"]}
        self.assertEqual(server["livenessProbe"]["httpGet"]["path"], "/health")
        self.assertEqual(server["readinessProbe"]["httpGet"]["path"], "/ready")
        for probe in ("livenessProbe", "readinessProbe"):
            probe_port = server[probe]["httpGet"]["port"]
            self.assertEqual(ports.get(probe_port, probe_port), port, probe)
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(pod["securityContext"].get("runAsUser", 1), 0)
        for c in pod["containers"] + pod.get("initContainers", []):
            with self.subTest(container=c["name"]):
                self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
                self.assertFalse(c["securityContext"]["allowPrivilegeEscalation"])
        self.assertIn("limits", server["resources"])
        self.assertIn("requests", server["resources"])
        # The drain (server.shutdown_timeout_s) and the preStop pause fit in the grace period.
        pre_stop = server.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pause = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
        self.assertGreater(pod["terminationGracePeriodSeconds"],
                           config["server"].get("shutdown_timeout_s", 25) + pause)
        annotations = template["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(int(annotations["prometheus.io/port"]), port)
        self.assertEqual(annotations.get("prometheus.io/path", "/metrics"), "/metrics")

    def test_containers_run_commands_the_binary_has(self):
        pod = k8s_by_kind()["Deployment"]["spec"]["template"]["spec"]
        subcommands = set(re.findall(r"^  ([a-z][a-z-]*) ", binary_help(), re.M))
        self.assertNotIn("--config", subcommands)
        self.assertIn("migrate", subcommands)
        for c in pod["containers"] + pod.get("initContainers", []):
            with self.subTest(container=c["name"]):
                # No command: the image's ENTRYPOINT (serve); args then are options of serve.
                argv = c.get("command", []) + c.get("args", [])
                if "command" in c:
                    self.assertEqual(argv[0], "pm-agent-server")
                    self.assertTrue(subcommands & set(argv), argv)
                else:
                    serve_options = set(re.findall(r"--[a-z-]+", binary_help("serve")))
                    self.assertEqual(set(argv) - serve_options, set())

    def test_secret_holds_placeholders_only(self):
        secret = k8s_by_kind()["Secret"]
        self.assertNotIn("data", secret, "example values go in stringData")
        for name, value in secret["stringData"].items():
            self.assertIn("CHANGE-ME", value, name)

    def test_environment_is_read_by_the_server(self):
        docs = k8s_by_kind()
        env = {k: v for k, v in docs["ConfigMap"]["data"].items() if k != "pm-agent.json"}
        env.update(docs["Secret"]["stringData"])
        self.assert_server_reads(env, "kubernetes")

    def test_configuration_files_are_accepted_by_the_server(self):
        configmap = k8s_by_kind()["ConfigMap"]
        for name, text in [("image", read(os.path.join(DEPLOY, "docker", "pm-agent.json"))),
                           ("configmap", configmap["data"]["pm-agent.json"])]:
            with self.subTest(config=name), tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                f.write(text)
                f.flush()
                r = run(BINARY, "--config", f.name, "check-config",
                        env={"PATH": os.environ.get("PATH", "")})
                self.assertEqual(r.returncode, 0, r.stderr + r.stdout)


def parse_series(page):
    """{family: [{label: value}]} of a /metrics page; histogram series under their family."""
    families = {}
    for line in page.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        families.setdefault(m.group(1), []).append(labels)
    return families


def selectors_in(expr):
    """(metric, label, value) for every `label="value"` equality matcher."""
    out = []
    for metric, matchers in re.findall(r"\b(pm_agent_[a-z0-9_]+)\{([^}]*)\}", expr):
        for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
            if op == "=":
                out.append((metric, label, value))
    return out


class Monitoring(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # With PostgreSQL and Redis, so that their families (pool, transactions, Redis
        # commands, limiter fallbacks) are exported too. Scraped twice: the store-wide gauges
        # (queue depth, agents by status) are refreshed by a scrape, asynchronously.
        cluster = PgCluster()
        redis_dir = tempfile.mkdtemp(prefix="pm-agent-redis.")
        redis_script = os.path.join(SOURCE_DIR, "scripts", "redis_server.sh")
        try:
            redis_url = run(redis_script, "start", redis_dir).stdout.strip()
            with pg_server(cluster.create_database(), env={"REDIS_URL": redis_url}) as server:
                for _ in range(50):
                    status, _, page = server.request("GET", "/metrics")
                    if status == 200 and re.search(r"^pm_agent_agents\{", page, re.M):
                        break
                    time.sleep(0.1)
        finally:
            run(redis_script, "stop", redis_dir)
            shutil.rmtree(redis_dir, True)
            cluster.stop()
        assert status == 200, status
        cls.exported = set(re.findall(r"^# TYPE (\S+)", page, re.M))
        cls.series = parse_series(page)

    def assert_exported(self, exprs, where, recorded=()):
        used = metric_names_in(exprs) - set(recorded)
        # A histogram's series are its name plus _bucket, _sum or _count.
        base = {re.sub(r"_(bucket|sum|count)$", "", m) if m not in self.exported else m
                for m in used}
        self.assertTrue(base, f"{where} uses no metric")
        self.assertEqual(base - self.exported, set(), f"{where} uses metrics the server lacks")
        for metric, label, value in selectors_in(exprs):
            with self.subTest(where=where, selector=f'{metric}{{{label}="{value}"}}'):
                values = {s.get(label) for s in self.series.get(metric, [])}
                self.assertIn(value, values, f"{metric} has no {label}={value!r} series")
        for gauge in STORE_WIDE_GAUGES:
            summed = re.search(r"\bsum\s*(by\s*\([^)]*\)\s*)?\(\s*" + gauge + r"\b", exprs)
            self.assertIsNone(summed, f"{where} sums the fleet-wide {gauge} over replicas")

    def alert_rules(self):
        return [r for g in yaml.safe_load(read(ALERTS))["groups"] for r in g["rules"]]

    def test_promtool_accepts_config_and_rules(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is missing (Debian package prometheus)")
        r = run(promtool, "check", "config", PROMETHEUS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(promtool, "check", "rules", ALERTS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_prometheus_scrapes_every_replica(self):
        config = yaml.safe_load(read(PROMETHEUS))
        job = next(j for j in config["scrape_configs"] if j["job_name"] == "pm-agent-server")
        sd = job["dns_sd_configs"][0]
        self.assertEqual(sd["names"], ["server"])  # the compose service: one A record per replica
        self.assertEqual(sd["port"], image_config()["server"]["port"])
        self.assertEqual(job.get("metrics_path", "/metrics"), "/metrics")
        self.assertIn("alerts.yml", config["rule_files"])

    def test_alerts_use_exported_metrics(self):
        rules = self.alert_rules()
        recorded = {r["record"] for r in rules if "record" in r}
        self.assert_exported(" ".join(r["expr"] for r in rules), "alerts.yml", recorded)

    def test_alerts_cover_the_failure_modes(self):
        rules = self.alert_rules()
        recording = {r["record"]: r["expr"] for r in rules if "record" in r}
        exprs = []
        for r in rules:
            if "alert" in r:
                expr = r["expr"]
                for name, body in recording.items():
                    expr = expr.replace(name, f"({body})")
                exprs.append(expr)
                self.assertIn("summary", r.get("annotations", {}), r["alert"])
                self.assertIn("severity", r.get("labels", {}), r["alert"])
        every = "\n".join(exprs)
        for what, pattern in [
                ("server down", r'up\{job="pm-agent-server"\}\s*==\s*0'),
                ("queue depth", r"pm_agent_task_queue_size\)?\s*>"),
                ("database pool saturation", r"pm_agent_db_pool_waiting"),
                ("HTTP 5xx rate", r'pm_agent_requests_total\{code=~"5\.\."\}'),
                ("heartbeat misses", r"pm_agent_lease_expired_total"),
                ("agents going offline", r'pm_agent_agents\{status="online"\}'),
                ("Redis down", r'pm_agent_redis_connections\{state="connected"\}'),
                ("Redis degraded", r"pm_agent_redis_subscribed")]:
            with self.subTest(alert=what):
                self.assertRegex(every, pattern)

    def test_dashboard_uses_exported_metrics(self):
        dashboard = json.loads(read(DASHBOARD))
        exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
        self.assert_exported(exprs, "the dashboard")
        for what, metric in [("submits", "pm_agent_tasks_submitted_total"),
                             ("completions", "pm_agent_task_outcomes_total"),
                             ("queue depth", "pm_agent_task_queue_size"),
                             ("agents online", "pm_agent_agents"),
                             ("DB pool busy", "pm_agent_db_pool_connections"),
                             ("DB pool waiters", "pm_agent_db_pool_waiting"),
                             ("transaction latency", "pm_agent_db_transaction_duration_seconds_bucket"),
                             ("HTTP errors", "pm_agent_requests_total"),
                             ("Redis state", "pm_agent_redis_connections"),
                             ("WebSocket connections", "pm_agent_active_connections")]:
            with self.subTest(panel=what):
                self.assertIn(metric, exprs)
        self.assertIn("histogram_quantile", exprs)

    def test_dashboard_and_data_source_agree(self):
        dashboard = json.loads(read(DASHBOARD))
        datasources = yaml.safe_load(read(os.path.join(GRAFANA_PROVISIONING, "datasources", "prometheus.yml")))
        source = datasources["datasources"][0]
        self.assertEqual(source["type"], "prometheus")
        self.assertEqual(source["url"], "http://prometheus:9090")  # the compose service
        for panel in dashboard["panels"]:
            with self.subTest(panel=panel["title"]):
                self.assertEqual(panel["datasource"]["uid"], source["uid"])
                self.assertTrue(panel["targets"])


class Image(unittest.TestCase):
    def test_stages_base_user_port_health_and_entrypoint(self):
        build, runtime = dockerfile_stages()
        self.assertRegex(build, r"^FROM debian:12-slim AS build\b")
        self.assertRegex(runtime, r"^FROM debian:12-slim\b")
        self.assertRegex(build, r"cmake [^\n]*-G Ninja[^\n]*-DCMAKE_BUILD_TYPE=Release")
        self.assertRegex(build, r"cmake --build build --target pm-agent-server\b")
        user = re.findall(r"^USER (\S+)", runtime, re.M)
        self.assertTrue(user and user[-1] not in ("root", "0"), "the runtime stage runs as root")
        self.assertIn(f"EXPOSE {image_config()['server']['port']}", runtime)
        self.assertRegex(runtime, r"HEALTHCHECK [^\n]*/health\b")
        entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])", runtime, re.M).group(1))
        self.assertEqual(entrypoint[:2], ["pm-agent-server", "serve"])
        self.assertEqual(set(entrypoint[2:]) - set(re.findall(r"--[a-z-]+", binary_help()))
                         - {"/etc/pm-agent/pm-agent.json"}, set())
        self.assertIn("COPY deployment/docker/pm-agent.json /etc/pm-agent/pm-agent.json", runtime)

    def test_build_stage_installs_the_build_packages(self):
        build = dockerfile_stages()[0]
        bootstrap = read(os.path.join(SOURCE_DIR, "scripts", "bootstrap.sh"))
        listed = re.search(r"packages=\((.*?)\)", bootstrap, re.S).group(1).split()
        needed = {p for p in listed
                  if p.endswith("-dev") or p in ("build-essential", "cmake", "ninja-build", "pkg-config")}
        self.assertTrue(needed)
        installed = apt_packages(build)
        self.assertEqual(needed - installed, set())
        # CMakeLists.txt requires a python3 interpreter to configure (the integration tests).
        self.assertIn("python3", read(os.path.join(SOURCE_DIR, "CMakeLists.txt")))
        self.assertTrue({"python3", "python3-minimal"} & installed, "no python3: cmake fails")

    def test_build_context_holds_what_is_copied(self):
        build, runtime = dockerfile_stages()
        sources = []
        for stage in (build, runtime):
            for line in re.findall(r"^COPY (?!--from)(.*)$", stage, re.M):
                sources += line.split()[:-1]
        ignore_path = os.path.join(SOURCE_DIR, ".dockerignore")
        ignore = read(ignore_path).splitlines() if os.path.exists(ignore_path) else []
        allowed = {l[1:].strip() for l in ignore if l.startswith("!")}
        excludes_all = "*" in [l.strip() for l in ignore]
        for source in sources:
            with self.subTest(copy=source):
                self.assertTrue(os.path.exists(os.path.join(SOURCE_DIR, source)))
                if excludes_all:
                    self.assertTrue(any(source == a or source.startswith(a + "/") for a in allowed),
                                    f".dockerignore leaves {source} out of the context")

    def test_runtime_stage_installs_a_package_for_every_linked_library(self):
        runtime = dockerfile_stages()[1]
        installed = apt_packages(runtime)
        closure = dependency_closure(installed) | dependency_closure(essential_packages())
        ldd = run("ldd", BINARY)
        self.assertEqual(ldd.returncode, 0, ldd.stderr)
        if "libasan" in ldd.stdout:
            # scripts/test.sh's sanitizer pass: that binary links what no image ships.
            self.skipTest("an AddressSanitizer build; the release pass checks the image")
        missing = []
        for line in ldd.stdout.splitlines():
            parts = line.split("=>")
            if len(parts) != 2 or not parts[1].strip().startswith("/"):
                continue
            path = os.path.realpath(parts[1].split()[0])
            owner = run("dpkg", "-S", path).stdout or run("dpkg", "-S", path.replace("/usr/lib", "/lib", 1)).stdout
            package = owner.split(":")[0].strip()
            if not package or package not in closure:
                missing.append(f"{parts[0].strip()} ({package or 'no package'})")
        self.assertEqual(missing, [], "not installed by the runtime stage, nor pulled in")
        # The direct ones are named, not left to another package's dependencies.
        for library, package in DIRECT_LIBRARIES.items():
            if library in ldd.stdout:
                self.assertIn(package, installed, library)


def installed_packages():
    out = run("dpkg-query", "-W", "-f", "${Package}\t${Essential}\t${Pre-Depends}, ${Depends}\n").stdout
    packages = {}
    for line in out.splitlines():
        name, essential, deps = line.split("\t")
        # Alternatives (a | b): whichever is installed here.
        names = [alt.split()[0].split(":")[0] for group in deps.split(",") if group.strip()
                 for alt in group.split("|") if alt.strip()]
        packages[name] = (essential == "yes", names)
    return packages


def essential_packages():
    # What every debian:12-slim image has: the Essential set (libc6, libgcc-s1, ... come with it).
    return {name for name, (essential, _) in installed_packages().items() if essential}


def dependency_closure(roots):
    packages = installed_packages()
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [d for d in packages.get(name, (False, []))[1] if d in packages]
    return seen


# The libraries the build links directly (CMakeLists.txt) and their Debian 12 packages.
DIRECT_LIBRARIES = {"libboost_json.so.1.81.0": "libboost-json1.81.0",
                    "libboost_url.so.1.81.0": "libboost-url1.81.0",
                    "libspdlog.so.1.10": "libspdlog1.10", "libfmt.so.9": "libfmt9",
                    "libcrypto.so.3": "libssl3", "libz.so.1": "zlib1g", "libpq.so.5": "libpq5",
                    "libhiredis.so.0.14": "libhiredis0.14", "libstdc++.so.6": "libstdc++6"}


if __name__ == "__main__":
    unittest.main()
