"""deployment/nginx/pm-agent.conf (the production site) is valid nginx: `nginx -t` on a copy
whose include and certificate paths point into a temporary directory (a throwaway self-signed
certificate stands in for the real one)."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import SOURCE_DIR

NGINX_DIR = os.path.join(SOURCE_DIR, "deployment", "nginx")


class ProductionConfig(unittest.TestCase):
    def test_nginx_accepts_it(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        tmp = tempfile.mkdtemp(prefix="pm-agent-nginx.")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=agents.example.com", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=60)
        shutil.copy(os.path.join(NGINX_DIR, "pm-agent-proxy.conf"), tmp)
        with open(os.path.join(NGINX_DIR, "pm-agent.conf")) as f:
            site = f.read()
        site = (site.replace("/etc/nginx/conf.d/pm-agent-proxy.conf",
                             os.path.join(tmp, "pm-agent-proxy.conf"))
                .replace("/etc/ssl/certs/agents.example.com.pem", cert)
                .replace("/etc/ssl/private/agents.example.com.key", key))
        self.assertIn(cert, site)
        with open(os.path.join(tmp, "pm-agent.conf"), "w") as f:
            f.write(site)
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
                    f"http {{\n  access_log off;\n  include {tmp}/pm-agent.conf;\n}}\n")
        r = subprocess.run([nginx, "-t", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf"),
                            "-e", os.path.join(tmp, "error.log")],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
