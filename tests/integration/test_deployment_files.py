"""deployment/ is real and consistent, checked without a Docker engine or a cluster:
`docker-compose config`, `promtool check config/rules`, `kubectl kustomize` (where kubectl is
installed), and against the binary itself: every environment variable the files set is one the
server reads, every metric the alerts and the dashboard use is one the server exports, the
runtime image holds a package for every library the binary links, and the image's config file
is one the server accepts."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

from harness import BINARY, SOURCE_DIR
from pg_harness import PgCluster, pg_server

DEPLOY = os.path.join(SOURCE_DIR, "deployment")
COMPOSE = os.path.join(DEPLOY, "docker", "docker-compose.yml")
K8S = os.path.join(DEPLOY, "kubernetes")


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def documented_env_names():
    """Environment names from the README's configuration table (CONFIG.md's and extensions)."""
    with open(os.path.join(SOURCE_DIR, "README.md")) as f:
        rows = [line for line in f if line.startswith("| ") and "|" in line[2:]]
    names = set()
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) >= 2:
            names.update(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", cells[1]))
    return names


def k8s_documents():
    docs = []
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            with open(os.path.join(K8S, name)) as f:
                docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def metric_names_in(text):
    return set(re.findall(r"\bpm_agent_[a-z0-9_]+", text))


class Compose(unittest.TestCase):
    def test_docker_compose_accepts_it(self):
        tool = shutil.which("docker-compose")
        self.assertIsNotNone(tool, "docker-compose is missing (scripts/bootstrap.sh installs it)")
        r = run(tool, "-f", COMPOSE, "config", "-q")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_nginx_accepts_its_config(self):
        # Docker's DNS name `server` and the mounted include, pointed at this machine.
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        tmp = tempfile.mkdtemp(prefix="pm-agent-nginx.")
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copy(os.path.join(DEPLOY, "nginx", "pm-agent-proxy.conf"), tmp)
        with open(os.path.join(DEPLOY, "docker", "nginx.conf")) as f:
            conf = f.read()
        self.assertIn("server server:8000", conf)
        conf = (conf.replace("/etc/nginx/conf.d/pm-agent-proxy.conf",
                             os.path.join(tmp, "pm-agent-proxy.conf"))
                .replace("server server:8000", "server 127.0.0.1:8000"))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n" + conf)
        r = run(nginx, "-t", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"),
                "-e", os.path.join(tmp, "error.log"))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_it_sets_only_variables_the_server_reads(self):
        with open(COMPOSE) as f:
            compose = yaml.safe_load(f)
        env = compose["services"]["server"]["environment"]
        unknown = set(env) - documented_env_names()
        self.assertEqual(unknown, set(), "not in the README's configuration table")


class Kubernetes(unittest.TestCase):
    def test_kustomize_builds_every_resource(self):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.skipTest("kubectl is not packaged for Debian 12; the YAML checks below still run")
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

    def test_deployment_probes_drain_and_environment(self):
        docs = {d["kind"]: d for d in k8s_documents()}
        self.assertEqual(docs["HorizontalPodAutoscaler"]["apiVersion"], "autoscaling/v2")
        self.assertEqual(docs["PodDisruptionBudget"]["apiVersion"], "policy/v1")
        pod = docs["Deployment"]["spec"]["template"]["spec"]
        server = next(c for c in pod["containers"] if c["name"] == "server")
        self.assertEqual(server["livenessProbe"]["httpGet"]["path"], "/health")
        self.assertEqual(server["readinessProbe"]["httpGet"]["path"], "/ready")
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertTrue(server["securityContext"]["readOnlyRootFilesystem"])
        self.assertIn("limits", server["resources"])
        config = json.loads(docs["ConfigMap"]["data"]["pm-agent.json"])
        # The drain (server.shutdown_timeout_s) and the preStop pause fit in the grace period.
        self.assertGreater(pod["terminationGracePeriodSeconds"],
                           config["server"]["shutdown_timeout_s"] + 5)
        env = (set(docs["ConfigMap"]["data"]) - {"pm-agent.json"}) | set(
            docs["Secret"]["stringData"])
        self.assertEqual(env - documented_env_names(), set())

    def test_configuration_files_are_accepted_by_the_server(self):
        with open(os.path.join(DEPLOY, "docker", "pm-agent.json")) as f:
            image_config = f.read()
        configmap = next(d for d in k8s_documents() if d["kind"] == "ConfigMap")
        for name, text in [("image", image_config), ("configmap", configmap["data"]["pm-agent.json"])]:
            with self.subTest(config=name), tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                f.write(text)
                f.flush()
                r = run(BINARY, "--config", f.name, "check-config",
                        env={"PATH": os.environ.get("PATH", "")})
                self.assertEqual(r.returncode, 0, r.stderr + r.stdout)


class Monitoring(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # With PostgreSQL and Redis, so that their families (pool, transactions, Redis
        # commands, limiter fallbacks) are exported too.
        cluster = PgCluster()
        redis_dir = tempfile.mkdtemp(prefix="pm-agent-redis.")
        redis_script = os.path.join(SOURCE_DIR, "scripts", "redis_server.sh")
        try:
            redis_url = run(redis_script, "start", redis_dir).stdout.strip()
            with pg_server(cluster.create_database(), env={"REDIS_URL": redis_url}) as server:
                status, _, page = server.request("GET", "/metrics")
        finally:
            run(redis_script, "stop", redis_dir)
            cluster.stop()
        assert status == 200, status
        cls.exported = set(re.findall(r"^# TYPE (\S+)", page, re.M))

    def assert_exported(self, used, where):
        # A histogram's series are its name plus _bucket, _sum or _count.
        base = {re.sub(r"_(bucket|sum|count)$", "", m) if m not in self.exported else m
                for m in used}
        self.assertTrue(base, f"{where} uses no metric")
        self.assertEqual(base - self.exported, set(), f"{where} uses metrics the server lacks")

    def test_promtool_accepts_config_and_rules(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is missing (Debian package prometheus)")
        r = run(promtool, "check", "config", os.path.join(DEPLOY, "prometheus", "prometheus.yml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(promtool, "check", "rules", os.path.join(DEPLOY, "prometheus", "alerts.yml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_alerts_use_exported_metrics(self):
        with open(os.path.join(DEPLOY, "prometheus", "alerts.yml")) as f:
            rules = yaml.safe_load(f)
        exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
        recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
        self.assert_exported(metric_names_in(exprs) - recorded, "alerts.yml")

    def test_dashboard_uses_exported_metrics(self):
        with open(os.path.join(DEPLOY, "grafana", "dashboards", "pm-agent.json")) as f:
            dashboard = json.load(f)
        exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
        self.assert_exported(metric_names_in(exprs), "the dashboard")


class Image(unittest.TestCase):
    def test_runtime_stage_installs_a_package_for_every_linked_library(self):
        with open(os.path.join(DEPLOY, "docker", "Dockerfile")) as f:
            runtime = f.read().rsplit("FROM ", 1)[1]
        installed = set(re.findall(r"\b(lib[a-z0-9.+-]+|zlib1g)\b", runtime))
        ldd = run("ldd", BINARY).stdout
        missing = []
        for line in ldd.splitlines():
            parts = line.split("=>")
            if len(parts) != 2 or not parts[1].strip().startswith("/"):
                continue
            path = os.path.realpath(parts[1].split()[0])
            owner = run("dpkg", "-S", path).stdout or run("dpkg", "-S", path.replace("/usr/lib", "/lib", 1)).stdout
            package = owner.split(":")[0].strip()
            # libc6 and libgcc-s1 are in every Debian image; dependencies of the listed
            # packages (Kerberos, LDAP, ...) come with them.
            direct = parts[0].strip()
            if package and package not in installed and package not in ("libc6", "libgcc-s1") \
                    and direct in DIRECT_LIBRARIES:
                missing.append(f"{direct} ({package})")
        self.assertEqual(missing, [])


# The libraries the build links directly (CMakeLists.txt); the others are their dependencies.
DIRECT_LIBRARIES = {"libboost_json.so.1.81.0", "libboost_url.so.1.81.0", "libspdlog.so.1.10",
                    "libfmt.so.9", "libcrypto.so.3", "libssl.so.3", "libz.so.1", "libpq.so.5",
                    "libhiredis.so.0.14", "libstdc++.so.6"}


if __name__ == "__main__":
    unittest.main()
